"""The tile echo demo: TensorTiles robot -> server -> robot over two bridged masters and a shaped link.

It builds a Testbed (two namespaces, tbf at `rate_mbit` or a replayed trace, a roscore on each side), starts the
master bridge on the robot side, an echo node on the server and a sender on the robot, prints one live line per
tile (size, one-way times, achieved Mbit/s) and a summary table per size, and tears everything down.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from intradp_ros.eval.nodes import read_json_lines, script_argv, start_bridge
from intradp_ros.eval.testbed import Testbed, TestbedError

DEFAULT_SIZES = (64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20)


def fmt_size(nbytes: int) -> str:
    """64 kB / 1 MB style (binary units, as the tiles are sized)."""
    if nbytes >= 1 << 20:
        return f"{nbytes / (1 << 20):g} MB"
    return f"{nbytes / (1 << 10):g} kB"


def mbit(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds / 1e6 if seconds > 0 else float("inf")


@dataclass
class EchoResults:
    """Per-size one-way times collected from the sender's JSON lines."""

    up: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    down: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, rec: dict) -> None:
        self.up[rec["bytes"]].append(rec["up_s"])
        self.down[rec["bytes"]].append(rec["down_s"])

    def table(self, rate_mbit: float | None) -> str:
        """Summary per size: tiles, median one-way up/down, achieved Mbit/s, and the ideal time at the set rate."""
        head = f"{'size':>8} {'tiles':>5} {'up ms':>9} {'down ms':>9} {'up Mbit/s':>10} {'down Mbit/s':>11}"
        if rate_mbit:
            head += f" {'ideal ms':>9} {'up/ideal':>8}"
        rows = [head, "-" * len(head)]
        for size in sorted(self.up):
            up, down = statistics.median(self.up[size]), statistics.median(self.down[size])
            row = (
                f"{fmt_size(size):>8} {len(self.up[size]):>5} {up * 1e3:>9.1f} {down * 1e3:>9.1f} "
                f"{mbit(size, up):>10.1f} {mbit(size, down):>11.1f}"
            )
            if rate_mbit:
                ideal = size * 8 / (rate_mbit * 1e6)
                row += f" {ideal * 1e3:>9.1f} {up / ideal:>8.2f}"
            rows.append(row)
        return "\n".join(rows)


def tile_line(rec: dict) -> str:
    """One live line per echoed tile."""
    n = rec["bytes"]
    return (
        f"tile {rec['request_id']:>3}  {fmt_size(n):>7}  up {rec['up_s'] * 1e3:8.1f} ms "
        f"({mbit(n, rec['up_s']):6.1f} Mbit/s)  down {rec['down_s'] * 1e3:8.1f} ms "
        f"({mbit(n, rec['down_s']):6.1f} Mbit/s)  rtt {rec['rtt_s'] * 1e3:8.1f} ms"
    )


def run_echo_demo(
    rate_mbit: float = 90.0,
    trace: str | None = None,
    sizes: Sequence[int] = DEFAULT_SIZES,
    rounds: int = 4,
    robot_cpu: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the demo end to end; returns 0 when every tile came back."""
    if rounds <= 0 or not sizes or min(sizes) <= 0:
        raise ValueError("rounds must be > 0 and sizes positive")
    results = EchoResults()
    ok = False
    with Testbed(rate_mbit=rate_mbit, name="demo") as tb:
        print(tb.describe(), file=out)
        if robot_cpu is not None:
            print(tb.try_slow_robot(robot_cpu)[1], file=out)
        tb.start_masters()
        log = open(tb.workdir / "nodes.log", "ab")
        try:
            start_bridge(tb, "robot", log=log)
            tb.spawn(
                "server",
                script_argv("tile_echo_node", "server", "--mode", "echo"),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            replay = None
            if trace:
                replay = tb.replay_trace(trace, loop=True)
                print(f"replaying {trace} (looped)", file=out)
            sender = tb.spawn(
                "robot",
                script_argv(
                    "tile_echo_node",
                    "sender",
                    "--mode",
                    "pingpong",
                    "--sizes",
                    ",".join(map(str, sizes)),
                    "--repeats",
                    str(rounds),
                ),
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            budget = 60.0 + rounds * sum(2 * 4 * s * 8 / (min(rate_mbit, 90.0) * 1e6) for s in sizes)
            print(
                f"{rounds} rounds of {', '.join(fmt_size(s) for s in sizes)} on /intradp/robot1/up -> "
                "/intradp/robot1/down",
                file=out,
            )
            for rec in read_json_lines(sender, timeout=budget):
                if rec["kind"] == "tile":
                    results.add(rec)
                    rate_now = f"  [link {replay.rate_mbit:g} Mbit/s]" if replay and replay.rate_mbit else ""
                    print(tile_line(rec) + rate_now, file=out, flush=True)
                elif rec["kind"] == "error":
                    print(f"error: {rec['error']} (node logs: {tb.workdir / 'nodes.log'})", file=out)
                elif rec["kind"] == "done":
                    ok = True
            if not ok and not results.up:
                tb.keep_logs = True
                print(f"no tiles came back; logs kept in {tb.workdir}", file=out)
        finally:
            log.close()
    print("\nsummary (median per size; one-way = header stamp on one side to receipt on the other)", file=out)
    print(results.table(None if trace else rate_mbit), file=out)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/tile_echo_demo."""
    import argparse

    parser = argparse.ArgumentParser(description="TensorTile echo over two bridged masters and a shaped link")
    parser.add_argument("--rate", type=float, default=90.0, help="link rate in Mbit/s each way (default 90)")
    parser.add_argument("--trace", help="replay this bandwidth trace instead of a fixed rate (looped)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds over all sizes (default 4: 20 tiles)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="tile sizes in bytes")
    parser.add_argument("--robot-cpu", type=float, help="cgroup cpu quota of the robot side (share of one CPU)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        return run_echo_demo(args.rate, args.trace, sizes, args.rounds, args.robot_cpu)
    except (TestbedError, ValueError) as err:
        print(f"tile_echo_demo: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tile_echo_demo: interrupted; the testbed was torn down", file=sys.stderr)
        return 130
