"""Transport benchmark: TensorTile goodput and one-way latency over the bridged, shaped link beside iperf3.

For each tile size it measures
- one-way latency: ping-pong tiles (server answers with a 1-byte ack), median of stamp-to-receipt times;
- goodput: back-to-back tiles (synchronous publish), bytes / (first send stamp -> last server receipt);
and iperf3's TCP goodput on the same link (`iperf3 -s` in the server namespace, client in the robot namespace),
then prints the ratio tiles/iperf3 per size. Figures are noisy on shared 2-core machines: run it on an idle one.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TextIO

from intradp_ros.eval.echo_demo import DEFAULT_SIZES, fmt_size
from intradp_ros.eval.nodes import read_json_lines, script_argv, start_bridge
from intradp_ros.eval.testbed import Testbed, TestbedError

TARGET_RATIO = 0.90  # tiles of 1-16 MB should reach 90% of iperf3's goodput


def iperf3_goodput(tb: Testbed, seconds: float = 5.0, port: int = 5201, attempts: int = 5) -> float:
    """TCP goodput robot -> server in Mbit/s as iperf3 measures it (receiver side), on the testbed link."""
    problem = "not run"
    for _ in range(attempts):  # the server needs a moment to listen; a refused or failed run is retried
        server = tb.spawn(
            "server",
            ["iperf3", "-s", "-1", "-B", tb.server.ip, "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.3)
            res = tb.run(
                "robot",
                ["iperf3", "-c", tb.server.ip, "-p", str(port), "-t", f"{seconds:g}", "-J"],
                timeout=seconds + 20,
            )
            report = None
            try:
                report = json.loads(res.stdout)
                return report["end"]["sum_received"]["bits_per_second"] / 1e6
            except (ValueError, KeyError, TypeError):
                problem = (
                    report.get("error")
                    if isinstance(report, dict) and "error" in report
                    else (res.stdout + res.stderr).strip()[-300:]
                )
        finally:
            tb.stop(server)
        time.sleep(0.5)
    raise TestbedError(f"iperf3 gave no result in {attempts} attempts: {problem}")


def run_bench(
    rate_mbit: float = 90.0,
    sizes: Sequence[int] = DEFAULT_SIZES,
    pings: int = 5,
    stream_bytes: int = 32 << 20,
    iperf_seconds: float = 5.0,
    out: TextIO = sys.stdout,
) -> dict[int, dict]:
    """Run the benchmark, print the table, return {size: figures}."""
    if pings <= 0 or stream_bytes <= 0 or not sizes or min(sizes) <= 0:
        raise ValueError("pings, stream_bytes and sizes must be positive")
    lat: dict[int, list[float]] = defaultdict(list)
    goodput: dict[int, dict] = {}
    with Testbed(rate_mbit=rate_mbit, name="bench") as tb:
        print(tb.describe(), file=out)
        tb.start_masters()
        log = open(tb.workdir / "nodes.log", "ab")
        try:
            start_bridge(tb, "robot", log=log)
            tb.spawn(
                "server",
                script_argv("tile_echo_node", "server", "--mode", "ack"),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            size_arg = ",".join(map(str, sizes))
            budget = 120.0 + 8 * (pings * sum(sizes) + len(sizes) * stream_bytes + sum(sizes) * 4) * 8 / (
                rate_mbit * 1e6
            )
            for mode, extra in (
                ("pingpong", ["--repeats", str(pings)]),
                ("stream", ["--repeats", "1", "--stream-bytes", str(stream_bytes)]),
            ):
                sender = tb.spawn(
                    "robot",
                    script_argv("tile_echo_node", "sender", "--mode", mode, "--sizes", size_arg, *extra),
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
                for rec in read_json_lines(sender, timeout=budget):
                    if rec["kind"] == "tile":
                        lat[rec["bytes"]].append(rec["up_s"])
                    elif rec["kind"] == "stream":
                        goodput[rec["bytes"]] = rec
                        print(
                            f"  stream {fmt_size(rec['bytes']):>7}: {rec['count']} tiles in {rec['seconds']:.2f} s "
                            f"= {rec['goodput_mbit']:.1f} Mbit/s",
                            file=out,
                            flush=True,
                        )
                    elif rec["kind"] == "error":
                        raise TestbedError(f"{mode} run failed: {rec['error']} (logs: {tb.workdir / 'nodes.log'})")
                sender.wait(timeout=10)
            iperf = iperf3_goodput(tb, iperf_seconds)
            print(f"  iperf3 robot->server: {iperf:.1f} Mbit/s over {iperf_seconds:g} s", file=out)
        finally:
            log.close()

    figures: dict[int, dict] = {}
    for size in sorted(set(lat) | set(goodput)):
        g = goodput.get(size, {}).get("goodput_mbit", float("nan"))
        figures[size] = {
            "latency_ms": statistics.median(lat[size]) * 1e3 if lat[size] else float("nan"),
            "ideal_ms": size * 8 / (iperf * 1e6) * 1e3,
            "tile_mbit": g,
            "iperf_mbit": iperf,
            "ratio": g / iperf,
        }
    print(format_table(rate_mbit, figures), file=out)
    return figures


def format_table(rate_mbit: float, figures: dict[int, dict]) -> str:
    """Markdown table of the figures (pasted into docs/transport.md)."""
    rows = [
        f"link: tbf {rate_mbit:g} Mbit/s each way; latency = median one-way time of single tiles; "
        "goodput = back-to-back tiles",
        "",
        "| tile size | one-way latency ms | size / iperf3 rate ms | tile goodput Mbit/s | iperf3 Mbit/s "
        "| tiles/iperf3 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size, f in figures.items():
        flag = "" if size < (1 << 20) or f["ratio"] >= TARGET_RATIO else " (below target)"
        rows.append(
            f"| {fmt_size(size)} | {f['latency_ms']:.1f} | {f['ideal_ms']:.1f} | {f['tile_mbit']:.1f} | "
            f"{f['iperf_mbit']:.1f} | {f['ratio']:.2f}{flag} |"
        )
    big = [f["ratio"] for s, f in figures.items() if s >= (1 << 20)]
    if big:
        rows.append("")
        rows.append(
            f"1-16 MB tiles: worst ratio {min(big):.2f} (target >= {TARGET_RATIO:.2f}): "
            f"{'met' if min(big) >= TARGET_RATIO else 'NOT met'}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/bench_transport."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=90.0, help="link rate in Mbit/s each way (default 90)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="tile sizes in bytes")
    parser.add_argument("--pings", type=int, default=5, help="single tiles per size for the latency (default 5)")
    parser.add_argument("--stream-mb", type=float, default=32, help="MB sent back-to-back per size (default 32)")
    parser.add_argument("--iperf-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        figures = run_bench(args.rate, sizes, args.pings, int(args.stream_mb * (1 << 20)), args.iperf_seconds)
    except (TestbedError, ValueError) as err:
        print(f"bench_transport: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench_transport: interrupted; the testbed was torn down", file=sys.stderr)
        return 130
    return 0 if figures else 1
