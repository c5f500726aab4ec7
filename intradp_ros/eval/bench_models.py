"""Local forward time of every robot model at its default input and a smaller one, printed as a table.

Run through `scripts/bench_models`. Figures on the shared 2-core CI machines are noisy: they say how heavy each
model is for the time-dilation choices in the testbed, not how fast a real robot or GPU server is.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from intradp_ros.models.registry import build

# (model name, label, build options): default input first, then a smaller one.
CASES: dict[str, list[tuple[str, dict]]] = {
    "kapao_s6": [("1280x1280", {}), ("640x640", {"input_size": (640, 640)})],
    "kapao_m6": [("1280x1280", {}), ("640x640", {"input_size": (640, 640)})],
    "kapao_l6": [("1280x1280", {}), ("640x640", {"input_size": (640, 640)})],
    "sconet": [("256x32x256", {}), ("128x32x128", {"grid_xzy": (128, 32, 128)})],
    "sconet_ds": [("256x32x256", {}), ("128x32x128", {"grid_xzy": (128, 32, 128)})],
}


@dataclass
class BenchRow:
    """One measured (model, input) case."""

    model: str
    input: str
    params: int
    input_mb: float
    times_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)


def time_forward(name: str, options: dict, repeats: int, warmup: int, device: str) -> BenchRow:
    """Build a model and time `repeats` forwards after `warmup` unmeasured ones."""
    model = build(name, **options).to(device)
    x = model.input_spec.example(device=device)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    return BenchRow(name, "x".join(str(s) for s in x.shape[2:]), params, model.input_spec.nbytes / 1e6, times)


def format_table(rows: Sequence[BenchRow]) -> str:
    """Markdown table with the ratio of each case to its model's default-input time."""
    lines = [
        "| model | input | parameters | input MB (uint8) | median forward s | min s | vs default |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    default: dict[str, float] = {}
    for r in rows:
        default.setdefault(r.model, r.median_s)
        lines.append(
            f"| {r.model} | {r.input} | {r.params:,} | {r.input_mb:.2f} | {r.median_s:.3f} | "
            f"{min(r.times_s):.3f} | {r.median_s / default[r.model]:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--small-only", action="store_true", help="only the smaller input of each model")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        cases = CASES[name][1:] if args.small_only else CASES[name]
        for _label, options in cases:
            rows.append(time_forward(name, options, args.repeats, args.warmup, args.device))
            print(f"  {name} {rows[-1].input}: median {rows[-1].median_s:.3f} s", flush=True)
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(f"\nForward time ({dev}, torch {torch.__version__}, {args.repeats} runs after {args.warmup} warm-up):")
    print(format_table(rows))
    return 0
