"""Benchmark: does the robot profile predict the throttled robot? Per-operator profile vs whole frames inside a
cgroup CPU quota, for several CFS periods, before and after `calibrate_to_frames`.

For each period a fresh cpu group is made (and removed afterwards), the busy-loop slow-down is measured
(`measure_slowdown`), and a child process inside the group profiles the model per operator (raw prediction),
times `--frames` device-only inferences through the engine's executor (the client's local path) and calibrates
the profile to them, then times `--check` more frames (not used for the calibration) and a plain
`model(x)` forward. Printed per period: raw per-op prediction, measured frame time, factor, calibrated
prediction, held-out frame time and the ratios. Timings on a shared 2-core machine are noisy.

    python -m intradp_ros.eval.throttle_profile --model torchvision:resnet18 --input-size 224 224 \\
        --fraction 0.1 --periods 100000 10000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from intradp_ros.eval import cgroup as cg
from intradp_ros.eval.sysexec import TestbedError


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Runs inside the group: profile, calibrate, check (all on the CPU)."""
    import torch

    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.executor import ClientHalf
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.profiler import calibrate_to_frames, cpu_quota, measure_frames, profile_graph
    from intradp_ros.core.session import ModelConfig
    from intradp_ros.core.transport import inprocess_pair
    from intradp_ros.models.replica import load_replica

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg: dict[str, Any] = {"name": args.model, "seed": 0, "weights": ""}
    if args.input_size:
        cfg["input_size"] = list(args.input_size)
    rep = load_replica(ModelConfig.from_dict(cfg), "cpu")
    g, x = rep.graph, rep.example
    t0 = time.perf_counter()
    raw = profile_graph(g, [x], "cpu", warmup=1, repeats=args.repeats)
    profile_s = time.perf_counter() - t0
    plan = Plan.device_only(g)
    robot_end, _server_end = inprocess_pair(None)
    half = ClientHalf(g, robot_end, "cpu")
    try:
        frames = measure_frames(lambda: half.infer(plan, x), args.frames, warmup=1)
        cal_prof, cal = calibrate_to_frames(raw, frames)
        check = measure_frames(lambda: half.infer(plan, x), args.check, warmup=0)
    finally:
        half.close()
    with torch.no_grad():
        forward = measure_frames(lambda: rep.model(x), args.check, warmup=0)
    predicted = CostModel(g, cal_prof, cal_prof).latency(Plan.device_only(g), 1e9)
    return {
        "quota": cpu_quota(),
        "threads": torch.get_num_threads(),
        "profile_s": profile_s,
        "raw_s": cal.raw_s,
        "frames_s": frames,
        "measured_s": cal.measured_s,
        "factor": cal.factor,
        "calibrated_s": predicted,
        "check_s": check,
        "forward_s": forward,
        "step_overhead_s": raw.step_overhead_s,
    }


def run_period(args: argparse.Namespace, period_us: int | None) -> dict[str, Any]:
    """One configuration: inside a fresh group with `period_us` (None: unthrottled, no group)."""
    argv = [
        sys.executable,
        "-m",
        "intradp_ros.eval.throttle_profile",
        "--child",
        "--model",
        args.model,
        "--frames",
        str(args.frames),
        "--check",
        str(args.check),
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
    ]
    if args.input_size:
        argv += ["--input-size", *[str(v) for v in args.input_size]]
    out: dict[str, Any] = {"period_us": period_us, "fraction": args.fraction if period_us else None}
    group = cg.CpuGroup(f"intradp-throttle-bench-{os.getpid()}", period_us) if period_us else None
    try:
        if group is not None:
            group.create(args.fraction)
            out.update(quota_us=group.quota_us, period_us=group.period_us)
            out["busy_loop_slowdown"] = cg.measure_slowdown(group)
            argv = group.wrap(argv)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout, check=False)
        out["child_wall_s"] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise TestbedError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        out.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        if group is not None:
            group.remove()
    return out


def describe(r: dict[str, Any]) -> str:
    """One block of figures and ratios for a configuration."""
    med = statistics.median
    head = (
        "unthrottled"
        if not r["period_us"]
        else (
            f"quota {r['quota_us']} us / period {r['period_us']} us ({r['fraction']:g} CPU), busy-loop slow-down "
            f"x{r['busy_loop_slowdown']:.2f}"
        )
    )
    head += f", {r['threads']} torch thread(s)"
    return "\n".join(
        [
            head,
            f"  per-op profile, device-only prediction (raw) {r['raw_s'] * 1e3:9.1f} ms   (profiling took "
            f"{r['profile_s']:.1f} s)",
            f"  measured device-only frames (executor)       {r['measured_s'] * 1e3:9.1f} ms   "
            f"{['%.0f' % (t * 1e3) for t in r['frames_s']]}",
            f"  measured / raw                               x{r['measured_s'] / r['raw_s']:.2f}",
            f"  calibrated prediction (cost model)           {r['calibrated_s'] * 1e3:9.1f} ms   "
            f"factor {r['factor']:.3f}",
            f"  held-out frames (executor)                   {med(r['check_s']) * 1e3:9.1f} ms   "
            f"calibrated / held-out x{r['calibrated_s'] / med(r['check_s']):.2f}",
            f"  plain model(x) forward                       {med(r['forward_s']) * 1e3:9.1f} ms",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="torchvision:resnet18")
    ap.add_argument("--input-size", type=int, nargs=2, default=[224, 224])
    ap.add_argument("--fraction", type=float, default=0.1, help="CPU share of the throttled robot")
    ap.add_argument(
        "--periods",
        type=int,
        nargs="+",
        default=[100_000, 10_000],
        help="CFS periods (us) to compare; 0 = unthrottled run",
    )
    ap.add_argument("--frames", type=int, default=3, help="calibration frames")
    ap.add_argument("--check", type=int, default=3, help="held-out frames")
    ap.add_argument("--repeats", type=int, default=1, help="profiling repeats")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the child (0: torch's default)")
    ap.add_argument("--timeout", type=float, default=1200.0)
    ap.add_argument("--json", default="", help="also write the figures here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    results: list[dict[str, Any]] = []
    for p in args.periods:
        r = run_period(args, p or None)
        results.append(r)
        print(describe(r), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
