"""The benchmark's workloads at the seeds' sizes, and the arithmetic every benchmark table shares.

- Reference GPU times: what one frame costs on the RTX 3080-class server the seeds measured (KAPAO-L 1280x960
  about 30 ms, VGG19 224 about 2 ms, SCONet 256x32x256 about 10 ms), scaled by input elements for other sizes.
- Time dilation per workload: k = measured CPU-server compute time of a frame / the GPU time it stands for, so
  a CPU-only testbed keeps the seeds' balance of compute and transmission (link rates / k, times / k).
- The physical floor of a frame: the least time any plan could take on that frame at that rate, the minimum of
  device-only compute and (cheapest upload / rate + server compute + result bytes / rate).
- The largest KAPAO size whose device-only frame fits a time budget (never below 512x640).

ROS-free and torch-free: pure arithmetic, unit-tested in test/unit/eval/test_workloads.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# (GPU seconds per frame, input elements it was measured at): RTX 3080-class figures of the seeds.
REFERENCE_GPU: dict[str, tuple[float, int]] = {
    "kapao": (30e-3, 1280 * 960),
    "vgg19": (2e-3, 224 * 224),
    "sconet": (10e-3, 256 * 32 * 256),
}
# KAPAO sizes tried from the seeds' 1280x960 down (H, W; multiples of 64); 512x640 is the smallest allowed.
KAPAO_SIZES: Sequence[tuple[int, int]] = ((960, 1280), (768, 1024), (640, 832), (512, 640))
# Robot speed relative to the reference GPU: a Jetson-class robot computes these CNNs about 20x slower than the
# RTX 3080-class server (the testbed's default robot quota, 0.1 CPU against the 2-thread CPU server, is ~20x).
ROBOT_OVER_GPU = 20.0
# Non-model CPU work (codecs, hashing, MACs, serialisation) on a Jetson-class robot CPU is about 3x slower than
# one core of this machine; on the real server it runs at this CPU's speed (the model runs on accelerators).
ROBOT_CPU_OVER_HOST = 3.0
SERVER_CPU_OVER_HOST = 1.0


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: registry model name, build options and the family its reference time is for."""

    label: str
    model: str
    family: str  # key of REFERENCE_GPU
    options: dict[str, object] = field(default_factory=dict)

    @property
    def elements(self) -> int:
        """Input elements per frame the reference time is scaled by (pixels; voxels for SCONet)."""
        if self.family == "sconet":
            x, z, y = self.options.get("grid_xzy", (256, 32, 256))  # type: ignore[misc]
            return int(x) * int(z) * int(y)
        h, w = self.options.get("input_size", (960, 1280) if self.family == "kapao" else (224, 224))  # type: ignore[misc]
        return int(h) * int(w)


# issue 12's goals: Intra-DP with lossless codecs (and streaming) / raw server-only, per workload family
CODEC_GOALS = {"kapao": 0.65, "vgg19": 0.6, "sconet": 0.4}


def seed_workloads() -> tuple[Workload, ...]:
    """The three workloads at the seeds' sizes, with the heads the ROS clients run by default (KAPAO: the sparse
    candidate head; SCONet: the completed-voxel head)."""
    return (
        Workload("KAPAO-L 1280x960", "kapao_l6", "kapao", {"input_size": (960, 1280), "head": "candidates"}),
        Workload("VGG19 224", "torchvision:vgg19", "vgg19", {"input_size": (224, 224)}),
        Workload("SCONet 256x32x256", "sconet", "sconet", {"grid_xzy": (256, 32, 256), "head": "completion"}),
    )


def reference_gpu_s(family: str, elements: int) -> float:
    """GPU seconds per frame the workload stands for: the reference figure scaled by input elements."""
    if family not in REFERENCE_GPU:
        raise ValueError(f"no reference GPU time for {family!r} (have {', '.join(REFERENCE_GPU)})")
    if elements <= 0:
        raise ValueError(f"input elements must be > 0, got {elements}")
    seconds, ref_elements = REFERENCE_GPU[family]
    return seconds * elements / ref_elements


def dilation_k(measured_server_s: float, reference_s: float) -> float:
    """k = measured server compute of a frame / the GPU time it stands for (1 where the server is that fast)."""
    if not (measured_server_s > 0 and reference_s > 0 and math.isfinite(measured_server_s)):
        raise ValueError(f"need positive finite times, got {measured_server_s!r} / {reference_s!r}")
    return max(1.0, measured_server_s / reference_s)


def robot_factor(
    cpu_device_only_s: float, reference_s: float, k: float, robot_over_gpu: float = ROBOT_OVER_GPU
) -> float:
    """How much slower than this CPU the robot half must run: its device-only frame is `robot_over_gpu` x the
    reference GPU time, dilated by k. At least 1 (the robot cannot be faster than the CPU it runs on)."""
    if not (cpu_device_only_s > 0 and reference_s > 0 and k > 0):
        raise ValueError("need positive times and k")
    return max(1.0, robot_over_gpu * reference_s * k / cpu_device_only_s)


@dataclass(frozen=True)
class Floor:
    """The physical floor of one frame at one rate and which way reaches it."""

    floor_s: float
    device_only_s: float
    offload_s: float  # upload / rate + server compute + result / rate

    @property
    def via(self) -> str:
        return "device" if self.device_only_s <= self.offload_s else "offload"


def physical_floor(
    device_only_s: float, upload_bytes: float, server_s: float, result_bytes: float, rate_Bps: float
) -> Floor:
    """min(device-only compute, cheapest upload / rate + server compute + result bytes / rate): no plan that
    runs either side whole in one band can beat it (a split plan can: it overlaps part of the upload with robot
    compute; so can a streamed plan, whose server computes bands while the rest of the input is still arriving: a
    ratio below 1 against the floor means the plan beat both whole ways)."""
    if rate_Bps <= 0 or not math.isfinite(rate_Bps):
        raise ValueError(f"rate must be > 0 and finite, got {rate_Bps!r}")
    if min(device_only_s, upload_bytes, server_s, result_bytes) < 0:
        raise ValueError("times and byte counts must be >= 0")
    offload = upload_bytes / rate_Bps + server_s + result_bytes / rate_Bps
    return Floor(min(device_only_s, offload), device_only_s, offload)


def kapao_size_for_budget(
    device_only_s_at: Callable[[tuple[int, int]], float],
    budget_s: float,
    sizes: Sequence[tuple[int, int]] = KAPAO_SIZES,
) -> tuple[tuple[int, int], str]:
    """(H, W) of the largest KAPAO size whose device-only frame (`device_only_s_at((h, w))`, seconds as the
    benchmark runs it) fits `budget_s`, and the reason printed with it; the smallest size if none fits."""
    tried = []
    for hw in sizes:
        t = device_only_s_at(hw)
        tried.append(f"{hw[1]}x{hw[0]} {t:.1f} s")
        if t <= budget_s:
            if hw == tuple(sizes[0]):
                return hw, f"{hw[1]}x{hw[0]}: a device-only frame takes {t:.1f} s, within the {budget_s:g} s budget"
            return hw, (
                f"{hw[1]}x{hw[0]}: larger sizes exceed the {budget_s:g} s device-only frame budget ({'; '.join(tried)})"
            )
    hw = tuple(sizes[-1])
    return hw, (  # type: ignore[return-value]
        f"{hw[1]}x{hw[0]} (the smallest allowed): no size fits the {budget_s:g} s budget ({'; '.join(tried)})"
    )


def scaled_kapao_s(measured_s: float, measured_hw: tuple[int, int], hw: tuple[int, int]) -> float:
    """A KAPAO frame time at `hw` estimated from one measured at `measured_hw` (compute scales with pixels)."""
    return measured_s * (hw[0] * hw[1]) / (measured_hw[0] * measured_hw[1])


def input_wire_bytes(g: Any) -> int:
    """Bytes of a graph's inputs on the wire, raw (binary 0/1 occupancy inputs travel bit-packed): the cheapest
    upload the systems have today."""
    total = 0
    for i in g.input_indices:
        n = g.nodes[i]
        b = n.extent * n.bytes_per_row
        total += (b + 7) // 8 if n.binary else b
    return total


def output_bytes(g: Any) -> int:
    """Bytes of a graph's outputs (the result a server-only plan sends down)."""
    return sum(g.nodes[o].extent * g.nodes[o].bytes_per_row for o in g.output_indices)


def ratio(a: float, b: float | None) -> float:
    """a / b, NaN where b is missing, zero or NaN."""
    if b is None or not (b > 0) or math.isnan(a):
        return float("nan")
    return a / b
