"""Network namespaces joined by a veth pair: the robot/server link of the testbed."""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from dataclasses import dataclass

from intradp_ros.eval.sysexec import TestbedError, run_cmd

# Private /30 subnets for testbeds are carved from this block; they exist only inside the testbed's namespaces.
LINK_BLOCK = ipaddress.IPv4Network("10.128.0.0/9")
MAX_NAME = 15  # Linux IFNAMSIZ - 1


@dataclass(frozen=True)
class LinkAddresses:
    """The two ends of one testbed's /30: robot gets the first host, server the second."""

    robot_ip: str
    server_ip: str
    prefix: int = 30


def link_addresses(index: int) -> LinkAddresses:
    """Addresses of the `index`-th /30 in LINK_BLOCK (wraps around the block)."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    n_subnets = LINK_BLOCK.num_addresses // 4
    base = int(LINK_BLOCK.network_address) + 4 * (index % n_subnets)
    return LinkAddresses(str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2)))


def list_namespaces() -> list[str]:
    """Names of the network namespaces that exist now."""
    proc = run_cmd(["ip", "netns", "list"], "listing network namespaces")
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def create_namespace(ns: str) -> None:
    """Create `ns` with its loopback up."""
    if ns in list_namespaces():
        raise TestbedError(f"network namespace {ns} already exists (a stale testbed? see 'intradp_testbed cleanup')")
    run_cmd(["ip", "netns", "add", ns], f"creating namespace {ns}")
    run_cmd(["ip", "-n", ns, "link", "set", "lo", "up"], f"bringing up lo in {ns}")


def create_veth(ns_a: str, dev_a: str, ip_a: str, ns_b: str, dev_b: str, ip_b: str, prefix: int = 30) -> None:
    """Create a veth pair whose ends are born inside the namespaces (nothing appears in the root namespace)."""
    for dev in (dev_a, dev_b):
        if len(dev) > MAX_NAME:
            raise TestbedError(f"interface name {dev!r} is longer than {MAX_NAME} characters")
    run_cmd(
        ["ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b],
        f"creating veth pair {dev_a}/{dev_b}",
    )
    for ns, dev, ip in ((ns_a, dev_a, ip_a), (ns_b, dev_b, ip_b)):
        run_cmd(["ip", "-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", dev], f"addressing {dev} in {ns}")
        run_cmd(["ip", "-n", ns, "link", "set", dev, "up"], f"bringing up {dev} in {ns}")


def namespace_pids(ns: str) -> list[int]:
    """Pids of processes living in `ns` (empty if the namespace is gone)."""
    proc = run_cmd(["ip", "netns", "pids", ns], f"listing processes in {ns}", check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def kill_namespace_processes(ns: str, grace_s: float = 2.0) -> None:
    """SIGTERM then SIGKILL whatever still runs in `ns`, so the namespace can really go away."""
    pids = namespace_pids(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            if pids:
                time.sleep(0.05)
        if not pids:
            return


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def delete_namespace(ns: str) -> None:
    """Kill processes in `ns` and delete it (its veth end and qdiscs go with it); quiet if already gone."""
    if ns not in list_namespaces():
        return
    kill_namespace_processes(ns)
    run_cmd(["ip", "netns", "del", ns], f"deleting namespace {ns}", check=False)
