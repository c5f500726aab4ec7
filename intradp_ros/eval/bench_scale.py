"""Scale benchmark: N robots (KAPAO-S 256x320 each, its own client) on one server in the testbed, for each N of
`--robots` (1 and 8 by default). Prints per-robot latency against the one-robot run, the server's share of it
(robot idle waiting for server tiles, server compute per frame), requests the server refused as busy, and lost
and wrong results (every published result is compared with local inference on the same frame).

    sudo -E scripts/bench_scale --robots 1,8 --seconds 120 --rate 0.5

On this 2-core host all robots' clients share the server's CPU: the latency growth is robot-side contention plus
server queueing, an upper bound of what separate robots would see. Exit status 1 when a result is lost or wrong.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

from intradp_ros.eval.fleet import FleetConfig, FleetRun, run_cli, run_fleet, wrong_results
from intradp_ros.eval.soak_report import RobotFigures, figures_table, robot_figures

REFUSED_BUSY_RE = re.compile(r"server: refused request \d+: \d+ requests of this robot already in flight")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--robots", default="1,8", help="comma list of fleet sizes, run one after the other")
    p.add_argument("--seconds", type=float, default=120.0, help="measured time per fleet after all ran distributed")
    p.add_argument("--rate", type=float, default=0.5, help="frames per second per robot (the same for every N)")
    p.add_argument("--deadline", type=float, default=3.0, help="client's per-frame deadline (s)")
    p.add_argument("--rate-mbit", type=float, default=400.0, help="shaped link rate (Mbit/s)")
    p.add_argument("--key-file", default="", help="shared secret: run the links authenticated (docs/security.md)")
    p.add_argument("--out", default="scale_out", help="folder for scale.json")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(n) for n in args.robots.split(",") if n.strip()]
    except ValueError:
        p.error(f"--robots must be a comma list of integers, got {args.robots!r}")
    if not args.sizes or min(args.sizes) < 1 or args.seconds <= 0 or args.rate <= 0:
        p.error("--robots sizes, --seconds and --rate must be positive")
    return args


def fleet_figures(run: FleetRun) -> list[RobotFigures]:
    wrong = wrong_results(run)
    for robot, why in wrong.items():
        for w in why[:5]:
            print(f"[scale] WRONG {robot} {w}")
    return [
        robot_figures(
            r, run.lines[r].of("sent"), run.lines[r].of("result"), run.lines[r].of("stats"), len(wrong[r]), run.window
        )
        for r in run.robots
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict] = {}
    reference = None
    ok = True
    for n in args.sizes:
        cfg = FleetConfig(
            robots=n,
            duration_s=args.seconds,
            rate_hz=args.rate,
            deadline_s=args.deadline,
            rate_mbit=args.rate_mbit,
            key_file=args.key_file,
            sample_every_s=10.0,
            tag=f"scale{n}",
        )
        run = run_fleet(cfg)
        figs = fleet_figures(run)
        busy = len(REFUSED_BUSY_RE.findall(run.server_log))
        lat = sorted(f.latency_p50 for f in figs)
        median = lat[len(lat) // 2]
        if reference is None and n == 1:
            reference = median
        print(
            f"\n[scale] {n} robot(s) x {args.rate:g} Hz, KAPAO-S 256x320, {args.seconds:g} s measured, "
            f"link {args.rate_mbit:g} Mbit/s; server log lines refusing busy requests: {busy}"
        )
        print(figures_table(figs, reference))
        peak = {name: max((s.rss_mb for s in ss), default=0.0) for name, ss in run.samples.items()}
        print(
            f"[scale] peak RSS: server {peak.get('server', 0):.0f} MB, clients "
            + ", ".join(f"{v:.0f}" for k, v in peak.items() if k != "server")
            + " MB"
        )
        lost = sum(f.lost for f in figs)
        wrong = sum(f.wrong for f in figs)
        ok = ok and lost == 0 and wrong == 0
        results[n] = {
            "robots": [{**asdict(f), "lost": f.lost} for f in figs],
            "median_latency_p50": median,
            "refused_busy_lines": busy,
            "peak_rss_mb": peak,
            "window": run.window,
        }
    if reference is not None:
        for n, r in results.items():
            print(
                f"[scale] {n} robot(s): median per-robot latency p50 {r['median_latency_p50']:.3f} s = "
                f"{r['median_latency_p50'] / reference:.2f} x the one-robot figure"
            )
    (out / "scale.json").write_text(
        json.dumps({"args": {k: v for k, v in vars(args).items()}, "runs": results}, indent=1)
    )
    print(f"[scale] {'PASS' if ok else 'FAIL'}: data in {out / 'scale.json'}")
    return 0 if ok else 1


def cli(argv: list[str] | None = None) -> int:
    """main() with the testbed's errors as one line (fleet.run_cli)."""
    return run_cli("bench_scale", main, argv)


if __name__ == "__main__":
    sys.exit(cli())
