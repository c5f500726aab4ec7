"""One thread's CPU seconds of a frame (cached): the load-independent measure of a model's compute on this CPU.

The system benchmark (eval/evaluate.py) and the engine benchmark (eval/bench_offload.py) both set their time
dilation k from it (the CPU server's frame = these seconds / its torch threads), so both see the same k for a
workload and neither k swings with the host's load. No ROS: the engine benchmark runs without it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def measure_frame_s(
    model: str,
    options: dict[str, Any],
    repeats: int = 3,
    clock: Callable[[], float] | None = None,
    threads: int | None = None,
) -> float:
    """Forward seconds of one frame on this CPU: the least of `repeats` after a warm-up (the least disturbed: other
    jobs on the host only ever add time). By default wall time with torch's default threads, as the CPU server runs
    it; `clock=time.thread_time, threads=1` gives one thread's CPU seconds, which load does not inflate."""
    import time

    import torch

    from intradp_ros.models.registry import build

    tick = clock or time.perf_counter
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        net = build(model, **options)
        x = net.input_spec.example()
        times = []
        with torch.inference_mode():
            net(x)
            for _ in range(repeats):
                t0 = tick()
                net(x)
                times.append(tick() - t0)
        return min(times)
    finally:
        torch.set_num_threads(before)


def frame_cpu_cache_path(model: str, options: dict[str, Any], cache_dir: Path | None = None) -> Path:
    """Where one thread's CPU seconds of a frame of `model` built with `options` on this CPU are cached: keyed by
    model, options, CPU name and torch version (a new CPU or torch measures again)."""
    import hashlib

    import torch

    from intradp_ros.core.plan_table import default_cache_dir
    from intradp_ros.core.profiler import describe_device

    key = json.dumps(
        {
            "model": model,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(options.items())},
            "cpu": describe_device(torch.device("cpu")).get("name"),
            "torch": torch.__version__,
        },
        sort_keys=True,
    )
    root = cache_dir if cache_dir is not None else default_cache_dir() / "frame_cpu"
    return root / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def cached_frame_cpu_s(
    model: str,
    options: dict[str, Any],
    cache_dir: Path | None = None,
    measure: Callable[[str, dict[str, Any]], float] | None = None,
) -> tuple[float, bool]:
    """(one thread's CPU seconds of a frame, True if read from the cache). CPU time does not grow with the host's
    load (wall time swung 5-6x under other jobs, and with it k, the bucket grid and so every cached plan book), so
    it is measured once per model, options and CPU and cached: later runs skip the forward passes (minutes at the
    seeds' sizes) and reuse the plan books solved for the same k."""
    import time

    path = frame_cpu_cache_path(model, options, cache_dir)
    try:
        value = float(json.loads(path.read_text())["cpu_s"])
        if value > 0 and math.isfinite(value):
            return value, True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if measure is None:
        value = measure_frame_s(model, options, repeats=2, clock=time.thread_time, threads=1)
    else:
        value = measure(model, options)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"measured CPU frame time must be > 0 and finite, got {value!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"model": model, "options": str(options), "cpu_s": value}))
    tmp.replace(path)
    return value, False
