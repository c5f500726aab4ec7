"""Soak run: 2 robots (KAPAO-S 256x320) on one server in the testbed for `--minutes` (30 by default) under a
looped changing bandwidth trace (outdoor WiFi, deep fades), sampling the server's and clients' resident memory and
thread counts every few seconds. Prints each process's growth slope (MB/h, threads/h) against its bound, the
robots' lost and wrong results (compared with local inference on the same frames), and saves a PNG.

    sudo -E scripts/soak --minutes 30            # the documented run (make soak)
    sudo -E scripts/soak --minutes 3 --warmup-minutes 1   # a short check

Exit status 0 when every process stays under both bounds and no result is lost or wrong, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from intradp_ros.eval.fleet import FleetConfig, run_cli, run_fleet, wrong_results
from intradp_ros.eval.plots import plot_soak
from intradp_ros.eval.soak_report import MB_PER_H_BOUND, THREADS_PER_H_BOUND, figures_table, growth, robot_figures

DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "config" / "traces" / "outdoor.txt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="measured duration after all robots ran distributed")
    p.add_argument("--robots", type=int, default=2)
    p.add_argument("--rate", type=float, default=1.0, help="frames per second per robot (keep it low: 2 shared cores)")
    p.add_argument("--trace", default=str(DEFAULT_TRACE), help="bandwidth trace replayed in a loop ('' for none)")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between process samples")
    p.add_argument("--warmup-minutes", type=float, default=3.0, help="left out of the slopes (start-up settling)")
    p.add_argument("--mb-per-h", type=float, default=MB_PER_H_BOUND, help="memory growth bound per process")
    p.add_argument("--threads-per-h", type=float, default=THREADS_PER_H_BOUND, help="thread growth bound")
    p.add_argument("--deadline", type=float, default=3.0, help="client's per-frame deadline (s)")
    p.add_argument("--key-file", default="", help="shared secret: run the links authenticated (docs/security.md)")
    p.add_argument("--out", default="soak_out", help="folder for soak.png and soak.json")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.robots < 1 or args.rate <= 0 or args.sample_every <= 0:
        p.error("--minutes, --robots, --rate and --sample-every must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = FleetConfig(
        robots=args.robots,
        duration_s=args.minutes * 60.0,
        rate_hz=args.rate,
        deadline_s=args.deadline,
        trace=args.trace,
        sample_every_s=args.sample_every,
        key_file=args.key_file,
        tag="soak",
    )
    began = time.time()
    run = run_fleet(cfg)
    wrong = wrong_results(run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # slopes start at the measured window (+ warm-up): model loading and plan solves before it are not a leak
    window_start = run.window[0] + args.warmup_minutes * 60.0
    grows = [
        growth(name, [s for s in samples if s.t >= window_start], 0.0, args.mb_per_h, args.threads_per_h)
        for name, samples in run.samples.items()
    ]
    figures = [
        robot_figures(
            r,
            run.lines[r].of("sent"),
            run.lines[r].of("result"),
            run.lines[r].of("stats"),
            len(wrong[r]),
            run.window,
        )
        for r in run.robots
    ]
    print(
        f"\n[soak] {args.robots} robots x {args.rate:g} Hz, KAPAO-S 256x320, {args.minutes:g} min measured, trace "
        f"{Path(args.trace).name if args.trace else 'none'} ({run.rate_changes} rate changes, "
        f"{run.rate_samples_skipped} late samples skipped); slopes leave out the "
        f"first {args.warmup_minutes:g} min; run took {(time.time() - began) / 60:.1f} min"
    )
    for g in grows:
        print("[soak] " + g.line())
    print(figures_table(figures))
    for r, why in wrong.items():
        for w in why[:5]:
            print(f"[soak] WRONG {r} {w}")
    latency = {
        r: [(float(s["t"]), float(s["latency_s"])) for s in run.lines[r].of("stats") if not s["error"]]
        for r in run.robots
    }
    png = plot_soak(
        run.samples,
        out / "soak.png",
        f"soak: {args.robots} robots x {args.rate:g} Hz, KAPAO-S 256x320, trace {Path(args.trace).name}",
        latency,
    )
    lost = sum(f.lost for f in figures)
    n_wrong = sum(f.wrong for f in figures)
    passed = all(g.passed for g in grows) and lost == 0 and n_wrong == 0
    summary = {
        "args": vars(args),
        "window": run.window,
        "growth": [{**asdict(g), "passed": g.passed} for g in grows],
        "robots": [{**asdict(f), "lost": f.lost} for f in figures],
        "rate_changes": run.rate_changes,
        "rate_samples_skipped": run.rate_samples_skipped,
        "samples": {n: [asdict(s) for s in ss] for n, ss in run.samples.items()},
        "passed": passed,
    }
    (out / "soak.json").write_text(json.dumps(summary, indent=1))
    print(f"[soak] {'PASS' if passed else 'FAIL'}: {lost} lost, {n_wrong} wrong; plot {png}, data {out / 'soak.json'}")
    return 0 if passed else 1


def cli(argv: list[str] | None = None) -> int:
    """main() with the testbed's errors as one line (fleet.run_cli)."""
    return run_cli("soak", main, argv)


if __name__ == "__main__":
    sys.exit(cli())
