"""How steady the bandwidth monitor is on a steady shaped link: estimates and plan switches over minutes.

    sudo -E python -m intradp_ros.eval.monitor_check --rate 4.65 --seconds 300

Builds a Testbed at `--rate` Mbit/s (tbf bucket following the rate), the probe server on the server side, the
monitor and `rostopic echo -p` of its two topics on the robot side, runs for `--seconds` with the link otherwise
idle, and prints the estimate's median, 5th and 95th percentiles, how far they are from the shaped rate, and the
number of PlanSwitch messages after the first (goal: at most one per minute on a steady link).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from intradp_ros.eval.nodes import script_argv, start_bridge
from intradp_ros.eval.testbed import Testbed
from intradp_ros.ros.names import BANDWIDTH, DEFAULT_BASE, PLAN, RobotNames

ROBOT = "robot1"


def _field_column(header: str, name: str) -> int:
    cols = header.lstrip("%").strip().split(",")
    return cols.index(name)


def _values(text: str, name: str) -> list[float]:
    lines = [x for x in text.splitlines() if x.strip()]
    if not lines:
        return []
    col = _field_column(lines[0], name)
    out = []
    for line in lines[1:]:
        parts = line.split(",")
        if len(parts) > col:
            try:
                out.append(float(parts[col]))
            except ValueError:
                continue
    return out


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def run(rate_mbit: float, seconds: float, monitor_args: Sequence[str] = ()) -> int:
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    with Testbed(rate_mbit=rate_mbit, name="mon") as tb:
        tb.start_masters()
        start_bridge(tb, "robot")
        tb.spawn("server", script_argv("bandwidth_probe_server", "--robots", ROBOT), **quiet)
        tb.spawn("robot", script_argv("bandwidth_monitor", "--robot", ROBOT, *monitor_args), **quiet)
        files = [tb.workdir / "estimates.csv", tb.workdir / "plans.csv"]  # files, not pipes: nothing blocks
        procs = []
        for path, topic in zip(files, (BANDWIDTH, PLAN), strict=True):
            with open(path, "w") as out:
                argv = ["rostopic", "echo", "-p", RobotNames(ROBOT, "/" + DEFAULT_BASE).name(topic)]
                procs.append(tb.spawn("robot", argv, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        time.sleep(seconds)
        for p in procs:
            tb.stop(p)
        outputs = [path.read_text() for path in files]
        burst = tb.burst_bytes
    mbit = _values(outputs[0], "field.mbit_per_s")
    buckets = _values(outputs[1], "field.bucket_mbyte_per_s")
    if not mbit:
        print("no BandwidthEstimate received", file=sys.stderr)
        return 1
    settle = mbit[min(len(mbit) - 1, 25) :]  # the first ~5 s (25 messages at 5 Hz) are start-up
    med = statistics.median(settle)
    lo, hi = percentile(settle, 0.05), percentile(settle, 0.95)
    switches = max(len(buckets) - 1, 0)
    print(f"# monitor on a steady {rate_mbit:g} Mbit/s link (tbf bucket {burst} B), {seconds:g} s, link otherwise idle")
    print(
        f"estimate median {med:.2f} Mbit/s ({med / rate_mbit:.1%} of the shaped rate), 5-95 % {lo:.2f}..{hi:.2f}, "
        f"min {min(settle):.2f}, max {max(settle):.2f} Mbit/s, {len(mbit)} estimates"
    )
    per_min = switches / (seconds / 60.0)
    print(
        f"plan switches after the first announcement: {switches} ({per_min:.2f} per minute; goal <= 1), "
        f"buckets {sorted(set(buckets))} MB/s"
    )
    return 0 if per_min <= 1.0 and abs(med - rate_mbit) / rate_mbit < 0.15 else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m intradp_ros.eval.monitor_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=4.65, help="shaped rate in Mbit/s (4.65: indoor trace mean / 20)")
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("monitor_args", nargs="*", help="extra bandwidth_monitor flags (after --)")
    args = p.parse_args(argv)
    return run(args.rate, args.seconds, args.monitor_args)


if __name__ == "__main__":
    sys.exit(main())
