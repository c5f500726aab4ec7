"""Checks that the testbed link charges every byte: timed TCP transfers across the shaped veth pair.

    sudo -E python -m intradp_ros.eval.link_check            # 256 kB after 2 s idle at the k=20 trace rates
    sudo -E python -m intradp_ros.eval.link_check --floor    # goodput per bucket size (how MIN_BURST_BYTES was chosen)

A transfer after an idle gap is where a token bucket lies: the bucket is full, and its bytes cross at line
rate. `idle_transfer` times one such transfer (connect, stay idle `idle_s`, send `nbytes`, wait for the
receiver's one-byte acknowledgement) and `IdleTransferRow.ratio` compares it with nbytes / rate: a faithful
link gives about 0.9-1.0 (less the bucket's bytes, plus TCP/IP header overhead and slow start).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from intradp_ros.eval import shaping
from intradp_ros.eval.sysexec import TestbedError
from intradp_ros.eval.testbed import Testbed
from intradp_ros.eval.traces import load_trace

__all__ = ["IdleTransferRow", "idle_transfer", "idle_transfer_check", "trace_mean_rates", "DEFAULT_K", "main"]

DEFAULT_K = 20.0
PORT = 50555

_RECEIVER = """
import socket, sys
n = int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[3]))); s.listen(1); s.settimeout(30)
print("ready", flush=True)
c, _ = s.accept(); c.settimeout(60)
got = 0
while got < n:
    b = c.recv(1 << 16)
    if not b:
        sys.exit("sender closed after %d of %d bytes" % (got, n))
    got += len(b)
c.sendall(b"k"); c.close(); s.close()
"""

_SENDER = """
import socket, sys, time
host, n, port, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + 10
while True:
    try:
        c = socket.create_connection((host, port), timeout=5); break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.05)
c.settimeout(60)
time.sleep(idle)
data = bytes(n)
t0 = time.monotonic()
c.sendall(data)
if c.recv(1) != b"k":
    sys.exit("no acknowledgement")
print(time.monotonic() - t0, flush=True)
c.close()
"""


@dataclass(frozen=True)
class IdleTransferRow:
    """One timed transfer: `nbytes` at `rate_mbit` with a `burst_bytes` bucket took `seconds`."""

    label: str
    rate_mbit: float
    burst_bytes: int
    nbytes: int
    idle_s: float
    seconds: float

    @property
    def ideal_s(self) -> float:
        """nbytes / rate: what the transfer costs on a link without a bucket (headers not counted)."""
        return self.nbytes * 8.0 / (self.rate_mbit * 1e6)

    @property
    def ratio(self) -> float:
        return self.seconds / self.ideal_s

    @property
    def goodput_mbit(self) -> float:
        return self.nbytes * 8.0 / self.seconds / 1e6


def idle_transfer(tb: Testbed, nbytes: int, idle_s: float, port: int = PORT, timeout: float = 60.0) -> float:
    """Seconds to send `nbytes` robot -> server over TCP after `idle_s` of idle link (until the receiver's
    acknowledgement arrives). Raises TestbedError when either end fails."""
    import subprocess
    import sys as _sys

    receiver = tb.spawn(
        "server",
        [_sys.executable, "-c", _RECEIVER, tb.server.ip, str(nbytes), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready = receiver.stdout.readline() if receiver.stdout else ""
        if ready.strip() != "ready":
            raise TestbedError(f"transfer receiver did not start: {receiver.stderr.read() if receiver.stderr else ''}")
        out = tb.run(
            "robot",
            [_sys.executable, "-c", _SENDER, tb.server.ip, str(nbytes), str(port), str(idle_s)],
            timeout=timeout + idle_s,
        )
        if out.returncode != 0:
            raise TestbedError(f"transfer sender failed: {out.stderr.strip()[-300:]}")
        receiver.wait(timeout=10)
        if receiver.returncode != 0:
            raise TestbedError(f"transfer receiver failed: {receiver.stderr.read() if receiver.stderr else ''}")
        return float(out.stdout.strip())
    finally:
        if receiver.poll() is None:
            tb.stop(receiver)
        for stream in (receiver.stdout, receiver.stderr):
            if stream is not None:
                stream.close()


def trace_mean_rates(k: float = DEFAULT_K) -> list[tuple]:
    """[(trace name, mean rate / k in Mbit/s)] of the shipped traces (indoor, outdoor)."""
    traces = Path(__file__).resolve().parents[2] / "config" / "traces"
    out = []
    for name in ("indoor", "outdoor"):
        rates = [r for _, r in load_trace(traces / f"{name}.txt")]
        out.append((name, round(statistics.fmean(rates) / k, 3)))
    return out


def idle_transfer_check(
    tb: Testbed,
    rates: Sequence[tuple],
    nbytes: int = 256_000,
    idle_s: float = 2.0,
    repeats: int = 3,
    burst: int | None = None,
) -> list[IdleTransferRow]:
    """One row per (label, rate) and repeat: the testbed set to that rate (its own bucket, or `burst` bytes)."""
    rows = []
    for label, rate in rates:
        tb.set_rate(rate)
        if burst is not None:
            for side in (tb.robot, tb.server):
                shaping.change_tbf(side.ns, side.dev, rate, burst)
            tb.burst_bytes = burst
        for _ in range(repeats):
            seconds = idle_transfer(tb, nbytes, idle_s)
            rows.append(IdleTransferRow(label, tb.rate_mbit, tb.burst_bytes, nbytes, idle_s, seconds))
    return rows


def format_rows(rows: Sequence[IdleTransferRow]) -> str:
    lines = [
        f"{'link':>10s} {'rate Mbit/s':>11s} {'bucket B':>9s} {'bytes':>8s} {'idle s':>6s} {'took ms':>8s} "
        f"{'size/rate ms':>12s} {'ratio':>6s} {'goodput':>8s}"
    ]
    for r in rows:
        lines.append(
            f"{r.label:>10s} {r.rate_mbit:11.3f} {r.burst_bytes:9d} {r.nbytes:8d} {r.idle_s:6.1f} "
            f"{r.seconds * 1e3:8.1f} {r.ideal_s * 1e3:12.1f} {r.ratio:6.3f} {r.goodput_mbit:8.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m intradp_ros.eval.link_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=float, default=DEFAULT_K, help="time-dilation factor: trace mean rates / k (20)")
    p.add_argument("--bytes", type=int, default=256_000, help="transfer size (256000)")
    p.add_argument("--idle", type=float, default=2.0, help="idle seconds before the transfer (2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--burst", type=int, default=None, help="bucket in bytes instead of the rate-following one")
    p.add_argument(
        "--floor", action="store_true", help="instead: goodput of 1 s transfers per bucket size at 4.65 and 110 Mbit/s"
    )
    args = p.parse_args(argv)
    with Testbed(rate_mbit=10.0, name="lnk") as tb:
        if args.floor:
            rows = []
            for rate in (4.65, 110.0):
                for burst in (2048, 4096, 8192, 16384, 65536):
                    rows += idle_transfer_check(
                        tb, [(f"{burst // 1024}KiB", rate)], int(rate * 1e6 / 8), 0.0, args.repeats, burst
                    )
            print(format_rows(rows))
            return 0
        rates = trace_mean_rates(args.k)
        rows = idle_transfer_check(tb, rates, args.bytes, args.idle, args.repeats, args.burst)
        print(f"# {args.bytes} B robot->server after {args.idle:g} s idle, trace mean rates / k={args.k:g}")
        print(format_rows(rows))
        worst = min(r.ratio for r in rows)
        print(f"# worst ratio took/(size/rate) = {worst:.3f} (goal >= 0.90)")
        return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
