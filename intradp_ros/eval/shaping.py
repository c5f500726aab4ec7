"""Token-bucket (tbf) shaping of a veth end's egress; both ends shaped gives both directions."""

from __future__ import annotations

import json
import math

from intradp_ros.eval.sysexec import TestbedError, run_cmd

# `tbf rate 90mbit burst 256kb latency 50ms` on each veth end measured 86 Mbit/s with iperf3 at 90.
BURST = "256kb"
LATENCY = "50ms"
MIN_RATE_MBIT = 0.1  # tbf refuses rate 0; deep fades in traces are clamped to this


def validate_rate(rate_mbit: float) -> float:
    """Return the rate tbf will be given; ValueError for non-numbers, non-finite or negative rates."""
    try:
        rate = float(rate_mbit)
    except (TypeError, ValueError):
        raise ValueError(f"rate must be a number of Mbit/s, got {rate_mbit!r}") from None
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"rate must be finite and >= 0 Mbit/s, got {rate_mbit!r}")
    return max(rate, MIN_RATE_MBIT)


def _tbf_args(rate_mbit: float) -> list:
    return ["tbf", "rate", f"{int(round(rate_mbit * 1000))}kbit", "burst", BURST, "latency", LATENCY]


def add_tbf(ns: str, dev: str, rate_mbit: float) -> None:
    """Install the root tbf on `dev` in `ns`."""
    rate = validate_rate(rate_mbit)
    run_cmd(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *_tbf_args(rate)], f"shaping {dev} in {ns}")


def change_tbf(ns: str, dev: str, rate_mbit: float) -> None:
    """Change the rate of the existing tbf on the fly (queued packets stay)."""
    rate = validate_rate(rate_mbit)
    run_cmd(
        ["tc", "-n", ns, "qdisc", "change", "dev", dev, "root", *_tbf_args(rate)], f"changing the rate of {dev} in {ns}"
    )


def remove_qdisc(ns: str, dev: str) -> None:
    """Remove the root qdisc of `dev`; quiet if it (or the namespace) is already gone."""
    run_cmd(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], f"removing qdisc of {dev} in {ns}", check=False)


def current_rate_bits(ns: str, dev: str) -> int:
    """Rate of the root tbf on `dev` in bit/s as the kernel reports it (for checks)."""
    proc = run_cmd(["tc", "-n", ns, "-j", "qdisc", "show", "dev", dev], f"reading qdisc of {dev} in {ns}")
    for q in json.loads(proc.stdout or "[]"):
        if q.get("kind") == "tbf":
            return int(q["options"]["rate"]) * 8  # tc's JSON gives bytes per second
    raise TestbedError(f"no tbf qdisc on {dev} in {ns}")
