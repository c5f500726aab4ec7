"""Engine-level offload benchmark without ROS (`scripts/bench_offload`): every system on the seeds' workloads.

Per workload (KAPAO-L 1280x960, VGG19 224, SCONet 256x32x256 by default) the robot half (ClientHalf) and the server
half (ServerHalf) run in one process over the in-process transport, throttled to the bandwidth traces' rates; no
rospy, no network namespaces, no tc: a machine with Python and torch is enough.

- Server half on CUDA where present (`--server-device auto`): the figures are real, k = 1. Without a GPU the
  server half runs on this CPU and time is dilated per workload: k = the measured CPU compute of a frame / the
  RTX 3080-class GPU time it stands for (eval/workloads.py), link rates are divided by k and every time printed
  is divided by k again ("undilated").
- Robot half on this CPU slowed by a documented factor (an in-process thread cannot be put alone in a cgroup):
  every operator it runs is followed by a sleep of (factor - 1) x its own time, so the robot's device-only
  frame takes ROBOT_OVER_GPU (20) x the reference GPU time, dilated by k.
- Non-model CPU work charged at its faithful cost: every tile goes through the wire codec (encode on the sender,
  decode for the receiver), timed, and the sender waits until that work has cost ROBOT_CPU_OVER_HOST (3) x its
  measured time on the robot and SERVER_CPU_OVER_HOST (1) x on the server, times k. The charged seconds per
  frame are the "non-model CPU" column.
- Plans: the plan book the server would solve for the robot and server profiles (device-only, server-only,
  DSCCS and SPSO-GA sending raw tensors as the seeds describe them, and Intra-DP), one plan per rate bucket.
- Codecs (`--codecs raw,lossless`, both by default): every system runs "as published" (raw tensors; Intra-DP
  solved without codec profiles) and "+codecs": the same plan given the lossless codec per transfer that the
  cost model predicts fastest at the frame's rate (Intra-DP solved with them, so it may pick another split).
  Codec profiles are measured on the frame itself (a bundled photograph letterboxed for KAPAO and VGG, a
  voxelised scan for SCONet: random inputs do not compress), robot-side coding charged as above. Bytes up and
  down are what crossed the link (compressed sizes).
- Beside every measured latency: the cost model's prediction for the plan that ran at that rate and the frame's
  physical floor, and per trace the goal lines (Intra-DP / best other system, energy rank among distributed ones).

Figures on a shared CPU are noisy; the output says which device ran the server and the k of each workload.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch

from intradp_ros.core.profiler import WIRE_COST_FIELDS
from intradp_ros.eval.offload_emulation import ChargedTransport, set_link_rate, slow_graph
from intradp_ros.eval.tables import CODEC_SUFFIX, codec_goal_lines
from intradp_ros.eval.workloads import (
    CODEC_GOALS,
    ROBOT_CPU_OVER_HOST,
    ROBOT_OVER_GPU,
    SERVER_CPU_OVER_HOST,
    Workload,
    dilation_k,
    input_wire_bytes,
    output_bytes,
    physical_floor,
    reference_gpu_s,
    robot_factor,
    seed_workloads,
)

MODES = ("device_only", "server_only", "dsccs", "spso_ga", "intradp")
VARIANTS = ("raw", "lossless")  # as published (raw tensors) / with the lossless codecs the cost model chooses
MB = 1e6


def bench_cache_dir() -> Path:
    """Where this benchmark caches its profiles and plan books (~/.cache/intradp_ros/bench_offload): its own
    folder, since its profiling settings (band overhead, sizes) differ from the nodes' entries for the same graph."""
    from intradp_ros.core.cache import default_cache_dir

    return default_cache_dir("bench_offload")


def system_name(mode: str, variant: str) -> str:
    """The record's system: the mode as published, or the mode + CODEC_SUFFIX with codecs."""
    return mode if variant == "raw" else mode + CODEC_SUFFIX


FRAMES = ("raw", "jpeg")  # the sample camera frame as its Image topic carries it (sensor noise) or its JPEG decoded


def sample_input(family: str, example: torch.Tensor, frame: str = "raw") -> tuple[torch.Tensor, str]:
    """(model input, what it is): a bundled photograph letterboxed to the input size (KAPAO, VGG) or a voxelised
    scan (SCONet) where its shape fits, else `example` (random: incompressible, so codecs rarely pay). `frame`
    "raw": the camera bag's Image frame, with its sensor noise (lossless codecs reach ~0.70x); "jpeg": the same
    frame after the bag's JPEG (quality 90) and decoding, as a camera publishing CompressedImage delivers it
    (smoother: ~0.44x)."""
    try:
        if family in ("kapao", "vgg19") and example.dtype == torch.uint8 and example.dim() == 4:
            from intradp_ros.eval.sample_data import photo_frames
            from intradp_ros.models.letterbox import letterbox

            rgb = next(iter(photo_frames(1)))
            if frame == "jpeg":
                from intradp_ros.core.codecs.camera import decode_camera_bytes
                from intradp_ros.eval.bench_wire import MAX_PIXELS, sample_jpeg

                rgb = decode_camera_bytes(sample_jpeg(), MAX_PIXELS)
            x, _info = letterbox(rgb, tuple(example.shape[-2:]))
            if x.shape == example.shape:
                kind = "JPEG-decoded" if frame == "jpeg" else "raw, with sensor noise"
                return x, f"sample photograph ({kind}, letterboxed)"
        if family == "sconet":
            from intradp_ros.eval.sample_data import SceneConfig, cloud_frames
            from intradp_ros.models.voxels import AGRNAV_GRID, grid_to_model_input, voxelize

            x = grid_to_model_input(voxelize(next(iter(cloud_frames(SceneConfig(frames=2)))), AGRNAV_GRID))
            if x.shape == example.shape and x.dtype == example.dtype:
                return x.contiguous(), "sample scan (voxelised)"
    except (OSError, ValueError, ImportError) as err:  # a missing sample must not stop the benchmark
        return example, f"random example (sample data unavailable: {err})"
    return example, "random example (no sample of this shape)"


def floor_ratios(cm: Any, g: Any) -> tuple[float, float]:
    """The smallest byte ratios any lossless codec achieves on the graph inputs (up) and outputs (down), 1.0
    where none applies: the bytes floor of a frame with codecs (coding time not counted)."""
    from intradp_ros.core.plan import DOWN, UP

    def best(nodes: Sequence[int], direction: str) -> float:
        return min([1.0] + [o.ratio for v in nodes for o in cm.codec_costs.options(v, direction)])

    return best(g.input_indices, UP), best(g.output_indices, DOWN)


# ============================================================================ measurement
@dataclass
class WorkloadSetup:
    """Everything measured once per workload before its frames run."""

    workload: Workload
    server_device: str
    reference_s: float  # GPU seconds the frame stands for
    server_frame_s: float  # measured server compute of a frame (profile, device-only)
    cpu_frame_s: float  # measured compute of a frame on this CPU
    k: float
    robot_factor: float
    upload_bytes: int  # cheapest upload: the input as the wire carries it (0/1 grids bit-packed)
    result_bytes: int
    notes: list[str] = field(default_factory=list)
    input_ratio: float = 1.0  # smallest lossless byte ratio on the input (the codec bytes floor)
    output_ratio: float = 1.0  # ... and on the result


def pick_server_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--server-device cuda asked for, but torch sees no CUDA device")
    return requested


def trace_rates(name: str, frames: int, spacing_s: float) -> list[float]:
    """Undilated trace rates (Mbit/s) frame i meets: the trace sampled every `spacing_s` seconds, looped."""
    from pathlib import Path

    from intradp_ros.eval.traces import load_trace

    shipped = Path(__file__).resolve().parents[2] / "config" / "traces" / f"{name}.txt"
    samples = load_trace(shipped if shipped.is_file() else Path(name))
    t_end = samples[-1][0]
    out = []
    for i in range(frames):
        t = (i * spacing_s) % max(t_end, 1e-9)
        rate = samples[0][1]
        for ts, r in samples:
            if ts > t:
                break
            rate = r
        out.append(rate)
    return out


class OffloadBench:
    """Runs the systems of one workload over the traces and returns one record per frame."""

    def __init__(
        self,
        workload: Workload,
        server_device: str = "auto",
        traces: Sequence[str] = ("indoor", "outdoor"),
        frames: int = 10,
        warmup: int = 1,
        robot_over_gpu: float = ROBOT_OVER_GPU,
        profile_repeats: int = 2,
        solver_seconds: float = 20.0,
        trace_spacing_s: float = 10.0,
        out: TextIO = sys.stdout,
        threads: int = 0,
        reference_s: float | None = None,
        variants: Sequence[str] = VARIANTS,
        sample: bool = True,
        systems: Sequence[str] = MODES,
        frame: str = "raw",
        cache_dir: Path | None = None,
    ) -> None:
        bad = [v for v in variants if v not in VARIANTS]
        if bad or not variants:
            raise ValueError(f"codec variants {list(variants)}: choose from {VARIANTS}")
        self.variants = list(variants)
        self.sample = sample
        if frame not in FRAMES:
            raise ValueError(f"frame {frame!r}: choose from {FRAMES}")
        self.frame = frame
        unknown = [m for m in systems if m not in MODES]
        if unknown or not systems:
            raise ValueError(f"systems {list(systems)}: choose from {MODES}")
        self.systems = [m for m in MODES if m in systems]
        self.workload = workload
        self.server_device = pick_server_device(server_device)
        self.traces = list(traces)
        self.frames = frames
        self.warmup = warmup
        self.robot_over_gpu = robot_over_gpu
        self.profile_repeats = profile_repeats
        self.solver_seconds = solver_seconds
        self.trace_spacing_s = trace_spacing_s
        self.out = out
        self.threads = threads
        self.reference_s = reference_s  # GPU seconds a frame stands for (default: eval/workloads.py's figure)
        # profiles and plan books of this benchmark (its own profiling settings: not the nodes' cache entries)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else bench_cache_dir()
        self.part_s: dict[str, float] = {}  # seconds per part (capture, profile, plan books, warm-up, frames)
        self.part_notes: dict[str, str] = {}

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _part(self, name: str, t0: float, note: str = "") -> None:
        """Record and print how long one part of the workload took (since perf_counter() was `t0`)."""
        self.part_s[name] = self.part_s.get(name, 0.0) + time.perf_counter() - t0
        if note:
            self.part_notes[name] = note
        self.say(
            f"[bench_offload] {self.workload.label}: {name} {self.part_s[name]:.1f} s" + (f" ({note})" if note else "")
        )

    def parts_text(self) -> str:
        """One line: each part's seconds (where the workload's time went)."""
        total = sum(self.part_s.values())
        parts = ", ".join(
            f"{n} {s:.0f} s" + (f" ({self.part_notes[n]})" if n in self.part_notes else "")
            for n, s in self.part_s.items()
        )
        return f"[bench_offload] {self.workload.label}: time {total:.0f} s = {parts}"

    def setup(self) -> tuple[WorkloadSetup, Any, Any, dict[str, Any], Any]:
        """Build the model, capture two graphs (robot, server), profile, compute k and the robot factor, solve
        the plan books (per variant: raw profiles, profiles with codecs): (setup, robot graph, server graph,
        books, cost model with codecs)."""
        from intradp_ros.core import capture
        from intradp_ros.core.cost_model import CostModel
        from intradp_ros.core.plan_book import build_plan_book
        from intradp_ros.core.profiler import cached_profile, calibrate_to_frames
        from intradp_ros.core.solver import SolverConfig
        from intradp_ros.eval.frame_cpu import cached_frame_cpu_s
        from intradp_ros.models.registry import build

        w = self.workload
        torch.manual_seed(0)
        model = build(w.model, **dict(w.options))
        x = model.input_spec.example()
        x, what = sample_input(w.family, x, self.frame) if self.sample else (x, "random example")
        self.input = x
        t0 = time.perf_counter()
        g_server = capture(model, x)
        g_robot = capture(model, x)
        self._part("capture", t0, f"{len(g_server)} nodes")
        t0 = time.perf_counter()
        kw: dict[str, Any] = {"repeats": self.profile_repeats, "warmup": 1, "sizes": 6, "band_overhead": True}
        # cached per graph, device, threads and CPU quota (core/profiler.profile_cache_path); the codec profiles
        # are measured on this run's input (`codec_input`), so a cache entry made on another input is refreshed
        cpu_prof, cpu_hit = cached_profile(g_server, [x], self.cache_dir, "cpu", codec_input=what, **kw)
        srv_hit = cpu_hit
        if self.server_device == "cpu":
            srv_prof = cpu_prof
        else:
            srv_prof, srv_hit = cached_profile(
                g_server, [x.to(self.server_device)], self.cache_dir, self.server_device, codec_input=what, **kw
            )
        self._part("profile", t0, "cached" if cpu_hit and srv_hit else f"measured, cached in {self.cache_dir}")
        # The CPU's frame time, and with it k and the robot's slow-down, from one thread's CPU seconds of a frame /
        # torch's threads (eval/frame_cpu.py, cached), not from the per-operator profile's wall times: those swing
        # with the host's load (VGG19 224's summed to 3.7 s against a 0.29 s forward pass on a loaded host, which
        # made k 16x too large, every robot sleep and link wait with it). The profile is scaled to that frame
        # (core/profiler.calibrate_to_frames: its per-operator shape kept), so the cost model predicts the same frame.
        t0 = time.perf_counter()
        threads = torch.get_num_threads()
        one_thread_s, frame_hit = cached_frame_cpu_s(w.model, dict(w.options), self.cache_dir / "frame_cpu")
        cpu_frame = one_thread_s / threads
        cpu_prof, cal = calibrate_to_frames(cpu_prof, [cpu_frame])
        if self.server_device == "cpu":
            srv_prof = cpu_prof
        self._part("frame CPU", t0, "cached" if frame_hit else "measured")
        ref = self.reference_s or reference_gpu_s(w.family, w.elements)
        server_frame = srv_prof.device_only_s()
        notes = [
            f"CPU frame {cpu_frame * 1e3:.0f} ms = one thread's CPU time {one_thread_s * 1e3:.0f} ms / {threads} "
            f"threads (load-independent); per-operator profile scaled x{cal.factor:.3f} to it"
        ]
        if self.server_device == "cpu":
            k = dilation_k(server_frame, ref)
            notes.append(
                f"no GPU: server on this CPU, k = {server_frame * 1e3:.0f} ms CPU / {ref * 1e3:.1f} ms reference GPU "
                f"= {k:.1f}; link rates / k, times printed / k"
            )
        else:
            k = 1.0
            notes.append(
                f"server on {self.server_device}: {server_frame * 1e3:.1f} ms per frame "
                f"(reference RTX 3080-class {ref * 1e3:.1f} ms); k = 1, figures are real time"
            )
        factor = robot_factor(cpu_frame, ref, k, self.robot_over_gpu)
        notes.append(
            f"robot half: this CPU slowed x{factor:.1f} (device-only {self.robot_over_gpu:g} x the reference GPU "
            f"time{', dilated' if k > 1 else ''}); non-model CPU work charged x{ROBOT_CPU_OVER_HOST * k:.3g} on the "
            f"robot and x{SERVER_CPU_OVER_HOST * k:.3g} on the server"
        )
        notes.append(f"input: {what}")
        # codec work is charged as ChargedTransport charges it: ROBOT/SERVER_CPU_OVER_HOST x this CPU, times k
        robot_prof = cpu_prof.scaled(
            factor, "robot (this CPU, slowed)", scale_overhead=False, codec_factor=ROBOT_CPU_OVER_HOST * k
        )
        # the server's non-model CPU work (codecs, per-tile wire work) is this CPU's, charged x SERVER_CPU_OVER_HOST x k
        srv_cpu = cpu_prof.scaled(1.0, "server CPU work", codec_factor=SERVER_CPU_OVER_HOST * k)
        srv_prof = dataclasses.replace(
            srv_prof.with_codecs(srv_cpu.codecs),
            **dict(zip(WIRE_COST_FIELDS, srv_cpu.wire_costs())),
        )
        self.slow_switch = slow_graph(g_robot, factor)
        setup = WorkloadSetup(
            w,
            self.server_device,
            ref,
            server_frame,
            cpu_frame,
            k,
            factor,
            input_wire_bytes(g_server),
            output_bytes(g_server),
            notes,
        )
        rates = sorted({r for t in self.traces for r in trace_rates(t, self.frames, self.trace_spacing_s)})
        grid = sorted({round(r / 8 / k, 6) for r in (min(rates) * 0.9, *rates[:: max(1, len(rates) // 6)])})
        t0 = time.perf_counter()
        cfg = SolverConfig(max_seconds=self.solver_seconds, table_seconds=self.solver_seconds * 2)
        books: dict[str, Any] = {}
        hits = []
        for variant in self.variants:
            with_codecs = variant != "raw"
            r, s = (robot_prof, srv_prof) if with_codecs else (robot_prof.with_codecs([]), srv_prof.with_codecs([]))
            books[variant], hit = build_plan_book(
                g_server, r, s, grid, config=cfg, deadline_s=1.0 * k, cache_dir=self.cache_dir
            )
            hits.append(hit)
        how = "cached" if all(hits) else f"{hits.count(False)} of {len(hits)} solved"
        self._part("plan books", t0, f"{', '.join(self.variants)}; {len(grid)} buckets; {how}")
        cm = CostModel(g_server, robot_prof, srv_prof)
        setup.input_ratio, setup.output_ratio = floor_ratios(cm, g_server)
        return setup, g_robot, g_server, books, cm

    def plan_for(self, books: dict[str, Any], cm: Any, mode: str, variant: str, rate_Bps: float) -> Any:
        """The plan a system runs at this rate: the raw book's as published; with codecs, Intra-DP's from the book
        solved with codec profiles and every other system's raw plan given the codecs that pay at this rate."""
        if variant == "raw":
            return books["raw"].plan_for(mode, rate_Bps / MB)
        if mode == "intradp":
            return books[variant].plan_for(mode, rate_Bps / MB)
        base = (books.get("raw") or books[variant]).plan_for(mode, rate_Bps / MB)
        return cm.with_codecs(base.with_codecs(None), rate_Bps)

    def predict(self) -> tuple[WorkloadSetup, list[dict[str, Any]]]:
        """Set-up only (capture, profiles, plan books), then one record per system, variant and trace rate with
        the cost model's prediction and the floor in place of a measurement (`predicted_only` True): the
        seeds' sizes where running their frames takes longer than there is time for."""
        if self.threads:
            torch.set_num_threads(self.threads)
        setup, _g_robot, _g_server, books, cm = self.setup()
        for n in setup.notes:
            self.say(f"[bench_offload] {setup.workload.label}: {n}")
        records: list[dict[str, Any]] = []
        for trace in self.traces:
            for i, mbit in enumerate(trace_rates(trace, self.frames, self.trace_spacing_s)):
                rate_Bps = mbit * 1e6 / 8 / setup.k
                for mode in self.systems:
                    for variant in self.variants:
                        if mode == "device_only" and variant != self.variants[0]:
                            continue
                        plan = self.plan_for(books, cm, mode, variant, rate_Bps)
                        pred = cm.predict(plan, rate_Bps)
                        rec = {
                            "system": system_name(mode, variant) if mode != "device_only" else mode,
                            "trace": trace,
                            "frame": i,
                            "link_mbit": mbit / setup.k,
                            "latency_s": pred.latency_s,
                            "predicted_s": pred.latency_s,
                            "floor_s": self._floor(cm, setup, plan, rate_Bps),
                            "bytes_up": pred.bytes_up,
                            "bytes_down": pred.bytes_down,
                            "predicted_bytes_up": pred.bytes_up,
                            "predicted_bytes_down": pred.bytes_down,
                            "plan_name": plan.name,
                            "plan_id": plan.plan_id,
                            "codecs": plan.codec_brief(),
                            "k": setup.k,
                            "error": "",
                            "predicted_only": True,
                        }
                        records.append(rec)
        return setup, records

    @staticmethod
    def _floor(cm: Any, setup: WorkloadSetup, plan: Any, rate_Bps: float) -> float:
        """The frame's physical floor (with codecs: the best lossless byte ratios on input and result)."""
        ratio_in, ratio_out = (setup.input_ratio, setup.output_ratio) if plan.codecs else (1.0, 1.0)
        return physical_floor(
            cm.robot.device_only_s(),
            setup.upload_bytes * ratio_in,
            cm.server.device_only_s(),
            setup.result_bytes * ratio_out,
            rate_Bps,
        ).floor_s

    def run(self) -> tuple[WorkloadSetup, list[dict[str, Any]]]:
        from intradp_ros.core.executor import ClientHalf, ServerHalf
        from intradp_ros.core.plan import Plan
        from intradp_ros.core.transport import inprocess_pair

        if self.threads:
            torch.set_num_threads(self.threads)
        setup, g_robot, g_server, books, cm = self.setup()
        for n in setup.notes:
            self.say(f"[bench_offload] {setup.workload.label}: {n}")
        k = setup.k
        robot_raw, server_raw = inprocess_pair(None, copy=False)
        robot_end = ChargedTransport(robot_raw, ROBOT_CPU_OVER_HOST * k, SERVER_CPU_OVER_HOST * k)
        server_end = ChargedTransport(server_raw, SERVER_CPU_OVER_HOST * k, ROBOT_CPU_OVER_HOST * k)
        all_plans = [p for b in books.values() for p in b.plans]
        server = ServerHalf(g_server, server_end, all_plans, device=setup.server_device, timeout=600.0)
        client = ClientHalf(g_robot, robot_end, timeout=600.0)
        robot_plans: dict[int, Any] = {}
        records: list[dict[str, Any]] = []
        t_warm = t_frames = 0.0
        warm_frames = counted = 0
        try:
            t0 = time.perf_counter()
            fitted = self._fit_robot(client, server, (robot_raw, robot_end), server_end, books, cm, g_robot, setup)
            robot_plans.update(fitted)
            self._part("robot fit", t0, setup.notes[-1])
            for trace in self.traces:
                # counted frame i meets the trace's rate at index warmup + i (as when warm-ups were trace frames)
                rates = trace_rates(trace, self.frames + self.warmup, self.trace_spacing_s)
                for mode in self.systems:
                    for variant in self.variants:
                        if mode == "device_only" and variant != self.variants[0]:
                            continue  # nothing crosses the link: codecs change nothing
                        for i, mbit in enumerate(rates):
                            if i < self.warmup:
                                continue
                            rate_Bps = mbit * 1e6 / 8 / k
                            plan = self.plan_for(books, cm, mode, variant, rate_Bps)
                            if plan.plan_id not in server.plans:
                                server.add_plan(plan)
                            rp = robot_plans.get(plan.plan_id)
                            if rp is None:
                                rp = robot_plans[plan.plan_id] = Plan.from_json(plan.to_json(), g_robot)
                                t0 = time.perf_counter()
                                for _ in range(self.warmup):  # first use of this plan: pay its one-off costs
                                    self._warm_frame(client, server, (robot_raw, robot_end), server_end, rp, plan)
                                    warm_frames += 1
                                t_warm += time.perf_counter() - t0
                            t0 = time.perf_counter()
                            set_link_rate(robot_raw, rate_Bps)
                            rec = self._frame(
                                client, server, (robot_raw, robot_end), server_end, rp, plan, cm, setup, rate_Bps
                            )
                            t_frames += time.perf_counter() - t0
                            counted += 1
                            system = system_name(mode, variant) if mode != "device_only" else mode
                            rec.update(system=system, trace=trace, frame=i - self.warmup, link_mbit=mbit / k)
                            records.append(rec)
                            self.say(_frame_text(rec, k))
        finally:
            client.close()
            server.close()
        self.part_s["warm-up"], self.part_notes["warm-up"] = t_warm, f"{warm_frames} frames, undilated"
        self.part_s["frames"], self.part_notes["frames"] = t_frames, f"{counted} counted"
        self.say(self.parts_text())
        return setup, records

    def _fit_robot(
        self,
        client: Any,
        server: Any,
        robot_ends: tuple[Any, ChargedTransport],
        server_end: ChargedTransport,
        books: dict[str, Any],
        cm: Any,
        g_robot: Any,
        setup: WorkloadSetup,
    ) -> dict[int, Any]:
        """Fit the robot's slow-down to its real frame: time device-only frames through the robot half at this
        CPU's speed (the first one warms the plan up) and set the factor that makes the device-only frame take its
        target, `robot_over_gpu` x the reference GPU frame x k (what the cost model's robot profile says). The
        sleeps multiply each operator's own time, and the executor's frame on a loaded host ran 2-4x the CPU
        frame k is taken from (KAPAO-L 1280x960: 2641 ms undilated against 598 ms), so a factor set from that
        estimate overshot. Returns {plan id: the robot's device-only plan} (its warm-up is done)."""
        from intradp_ros.core.plan import Plan

        plan = self.plan_for(books, cm, "device_only", self.variants[0], 1.0)
        if plan.plan_id not in server.plans:
            server.add_plan(plan)
        rp = Plan.from_json(plan.to_json(), g_robot)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            self._warm_frame(client, server, robot_ends, server_end, rp, plan)
            times.append(time.perf_counter() - t0)
        target = self.robot_over_gpu * setup.reference_s * setup.k
        fast = times[-1]
        factor = max(1.0, target / fast)
        self.slow_switch.factor = factor
        setup.robot_factor = factor
        setup.notes.append(
            f"robot fit: device-only frame through the robot half {fast:.2f} s at this CPU's speed, slowed "
            f"x{factor:.2f} to its target {target:.1f} s ({self.robot_over_gpu:g} x the reference GPU frame x k)"
        )
        return {plan.plan_id: rp}

    def _warm_frame(
        self,
        client: Any,
        server: Any,
        robot_ends: tuple[Any, ChargedTransport],
        server_end: ChargedTransport,
        robot_plan: Any,
        plan: Any,
    ) -> None:
        """One uncounted frame of a plan's first use, with the emulation off (robot at this CPU's speed, free link,
        no non-model charge): it only pays the plan's one-off costs, which the counted frames must not carry, and
        at the robot's and link's emulated speed it would take as long as a counted frame for nothing measured."""
        robot_raw, robot_end = robot_ends
        self.slow_switch.on = False
        robot_end.charging = server_end.charging = False
        set_link_rate(robot_raw, None)
        try:
            client.infer(robot_plan, self.input)
        except Exception as err:  # noqa: BLE001 - the counted frame will record the failure
            self.say(f"[bench_offload] {self.workload.label}: warm-up frame of {plan.name} failed: {err}")
        finally:
            self.slow_switch.on = True
            robot_end.charging = server_end.charging = True
            robot_end.take()
            server_end.take()

    def _frame(
        self,
        client: Any,
        server: Any,
        robot_ends: tuple[Any, ChargedTransport],
        server_end: ChargedTransport,
        robot_plan: Any,
        plan: Any,
        cm: Any,
        setup: WorkloadSetup,
        rate_Bps: float,
    ) -> dict[str, Any]:
        from intradp_ros.core.power import PowerModel

        robot_raw, robot_end = robot_ends
        robot_end.take()
        server_end.take()
        sent0, recv0 = robot_raw.bytes_sent, robot_raw._in.bytes
        error = ""
        t0 = time.perf_counter()
        try:
            client.infer(robot_plan, self.input)
        except Exception as err:  # noqa: BLE001 - one failed frame is recorded, the benchmark goes on
            error = f"{type(err).__name__}: {err}"
        latency = time.perf_counter() - t0
        st = client.last_stats
        sst = getattr(server, "last_stats", None)
        # bytes that crossed the link (compressed sizes; the server's late tiles of a failed frame may be missed)
        up, down = robot_raw.bytes_sent - sent0, robot_raw._in.bytes - recv0
        pred = cm.predict(plan, rate_Bps)
        floor = self._floor(cm, setup, plan, rate_Bps)
        compute = st.compute_s if st else 0.0
        transmit_only = min(max(latency - compute, 0.0), up / rate_Bps) if up else 0.0
        energy = PowerModel().energy(latency, compute, transmit_only)
        return {
            "latency_s": latency,
            "robot_compute_s": compute,
            "robot_transmit_only_s": transmit_only,
            "robot_wait_s": max(latency - compute - transmit_only, 0.0),
            "server_compute_s": sst.compute_s if sst else 0.0,
            "transmit_s": (up + down) / rate_Bps,
            "bytes_up": up,
            "bytes_down": down,
            "energy_j": energy,
            "mean_power_w": energy / latency if latency > 0 else 0.0,
            "plan_name": plan.name,
            "plan_id": plan.plan_id,
            "codecs": plan.codec_brief(),
            "predicted_bytes_up": pred.bytes_up,
            "predicted_bytes_down": pred.bytes_down,
            "predicted_s": pred.latency_s,
            "floor_s": floor,
            "nonmodel_cpu_s": robot_end.take() + server_end.take(),
            "k": setup.k,
            "fell_back_local": False,
            "error": error,
        }


def _frame_text(rec: dict[str, Any], k: float) -> str:
    if rec["error"]:
        return f"  [{rec['trace']:>7} {rec['system']:>11}] frame {rec['frame']:>2}  ERROR {rec['error']}"
    return (
        f"  [{rec['trace']:>7} {rec['system']:>11}] frame {rec['frame']:>2}  {rec['latency_s'] / k * 1e3:8.1f} ms  "
        f"predicted {rec['predicted_s'] / k * 1e3:8.1f}  floor {rec['floor_s'] / k * 1e3:8.1f}  "
        f"plan {rec['plan_name']} [{rec['codecs']}]  up {rec['bytes_up'] / 1e3:.0f} kB  "
        f"down {rec['bytes_down'] / 1e3:.0f} kB  link {rec['link_mbit'] * k:.1f} Mbit/s"
    )


def report(setup: WorkloadSetup, records: Sequence[dict[str, Any]]) -> str:
    """The prediction/floor table (undilated), the seeds' table and the goal lines of one workload."""
    from intradp_ros.eval.tables import check_goals, format_prediction_table, format_table, summarize

    sums = summarize(records)
    w = setup.workload
    head = (
        f"{w.label} ({w.model}): server on {setup.server_device}, k = {setup.k:.3g}, robot slowed "
        f"x{setup.robot_factor:.1f}; reference GPU {setup.reference_s * 1e3:.1f} ms, measured server frame "
        f"{setup.server_frame_s / setup.k * 1e3:.1f} ms undilated ({setup.server_frame_s * 1e3:.1f} ms measured)"
    )
    parts = [
        head,
        format_prediction_table(sums, title="latency beside prediction and floor (undilated)", k=setup.k),
        format_table(sums, title="seeds' table (undilated)", time_unit="ms", k=setup.k),
    ]
    goals = check_goals(summarize([r for r in records if not str(r["system"]).endswith(CODEC_SUFFIX)]))
    parts.append(
        "Goals (as published, raw tensors):\n"
        + ("\n".join(g.describe() for g in goals) if goals else "(no Intra-DP results)")
    )
    parts.append(codec_report(setup, records))
    return "\n\n".join(parts)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def codec_report(setup: WorkloadSetup, records: Sequence[dict[str, Any]], predicted_only: bool = False) -> str:
    """Per trace and system: mean bytes up/down per frame (what crossed the link), and the codec goal line:
    Intra-DP+codecs mean latency / raw server-only mean latency, measured and predicted, beside the target.
    `predicted_only`: the records hold predictions (`OffloadBench.predict`), said as such."""
    k = setup.k
    ok = [r for r in records if not r["error"]]
    what = "PREDICTED (no frames run)" if predicted_only else "what crossed the link"
    lines = [f"{setup.workload.label}: bytes per frame (mean, {what}) and codecs used:"]
    lines.append(f"{'trace':>8} {'system':>20} {'up kB':>10} {'down kB':>10} {'pred up kB':>10} {'ms':>9}  codecs")
    traces = sorted({r["trace"] for r in ok})
    for t in traces:
        for system in sorted({r["system"] for r in ok if r["trace"] == t}):
            rs = [r for r in ok if r["trace"] == t and r["system"] == system]
            used = sorted({r["codecs"] for r in rs})
            up, down = _mean([r["bytes_up"] for r in rs]), _mean([r["bytes_down"] for r in rs])
            pred_up, ms = _mean([r["predicted_bytes_up"] for r in rs]), _mean([r["latency_s"] for r in rs]) / k * 1e3
            lines.append(
                f"{t:>8} {system:>20} {up / 1e3:10.1f} {down / 1e3:10.1f} {pred_up / 1e3:10.1f} {ms:9.1f}  "
                + " | ".join(used)
            )
    target = CODEC_GOALS.get(setup.workload.family)
    lines.append(
        "Codec goal (Intra-DP + lossless codecs + streaming vs raw server-only, undilated means"
        + (", predictions only):" if predicted_only else "):")
    )
    lines += codec_goal_lines(ok, target)
    return "\n".join(lines)


def workloads_for(args: argparse.Namespace) -> list[Workload]:
    """The seeds' workloads, or smaller sizes with --small (the unit test's and --quick's CPU fallback)."""
    chosen = [w for w in seed_workloads() if w.family in args.workloads]
    if args.kapao_size:
        h, w_ = (int(v) for v in args.kapao_size.split(","))
        chosen = [
            Workload(f"KAPAO-L {w_}x{h}", w.model, w.family, dict(w.options, input_size=(h, w_)))
            if w.family == "kapao"
            else w
            for w in chosen
        ]
    if args.small:
        small = {
            "kapao": Workload(
                "KAPAO-S 128x128 (small)", "kapao_s6", "kapao", {"input_size": (128, 128), "head": "candidates"}
            ),
            "vgg19": Workload("VGG19 32 (small)", "torchvision:vgg19", "vgg19", {"input_size": (32, 32)}),
            "sconet": Workload(
                "SCONet 32x32x32 (small)", "sconet", "sconet", {"grid_xzy": (32, 32, 32), "head": "completion"}
            ),
        }
        chosen = [small[w.family] for w in chosen]
    return chosen


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_offload", description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="kapao,vgg19,sconet", type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--frames", type=int, default=10, help="counted frames per system and trace")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument(
        "--quick", action="store_true", help="at most 3 counted frames, solver at most 5 s per bucket (same sizes)"
    )
    p.add_argument("--small", action="store_true", help="small inputs (smoke test; not the seeds' sizes)")
    p.add_argument("--kapao-size", default=None, help="KAPAO 'H,W' instead of 960,1280")
    p.add_argument("--traces", default="indoor,outdoor", type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--server-device", default="auto", help="auto (cuda if present), cpu or cuda")
    p.add_argument("--robot-over-gpu", type=float, default=ROBOT_OVER_GPU, help="robot device-only / reference GPU")
    p.add_argument("--solver-seconds", type=float, default=20.0, help="plan search limit per bucket")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--reference-ms",
        type=float,
        default=None,
        help="GPU milliseconds a frame stands for (default: the RTX 3080-class figure scaled by input elements)",
    )
    p.add_argument(
        "--codecs",
        default=",".join(VARIANTS),
        type=lambda s: [x for x in s.split(",") if x],
        help="variants to run: raw (as published) and/or lossless (the codecs the cost model chooses)",
    )
    p.add_argument(
        "--systems",
        default=",".join(MODES),
        type=lambda s: [x for x in s.split(",") if x],
        help="systems to run (default all five; e.g. server_only,intradp to save time)",
    )
    p.add_argument(
        "--predict-only",
        action="store_true",
        help="set-up only: the cost model's predictions and floors per system and codec variant, no frames run",
    )
    p.add_argument(
        "--frame",
        default="raw",
        choices=FRAMES,
        help="camera frame for KAPAO/VGG: raw (the Image topic's, sensor noise) or jpeg (the CompressedImage decoded)",
    )
    p.add_argument("--random-input", action="store_true", help="the model's random example instead of sample data")
    p.add_argument("--csv", default=None, help="write every frame's record to this CSV")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.frames = min(args.frames, 3)
        args.solver_seconds = min(args.solver_seconds, 5.0)
    bad = [w for w in args.workloads if w not in ("kapao", "vgg19", "sconet")]
    if bad:
        print(f"bench_offload: unknown workloads {bad} (kapao, vgg19, sconet)", file=sys.stderr)
        return 2
    all_records: list[dict[str, Any]] = []
    status = 0
    timings: list[str] = []
    for w in workloads_for(args):
        t_workload = time.perf_counter()
        bench = None
        try:
            bench = OffloadBench(
                w,
                args.server_device,
                args.traces,
                args.frames,
                args.warmup,
                args.robot_over_gpu,
                3,  # the median of 3 passes: one pass on a loaded host read 0.1-1.8 s for 1 ms operators
                args.solver_seconds,
                threads=args.threads,
                reference_s=args.reference_ms / 1e3 if args.reference_ms else None,
                variants=args.codecs,
                sample=not args.random_input,
                systems=args.systems,
                frame=args.frame,
            )
            setup, records = bench.predict() if args.predict_only else bench.run()
        except (ValueError, RuntimeError, MemoryError) as err:
            print(f"[bench_offload] {w.label}: failed: {err}", flush=True)
            status = 1
            continue
        finally:
            if bench is not None:
                timings.append(f"{bench.parts_text()}; wall {time.perf_counter() - t_workload:.0f} s")
        if args.predict_only:
            print("\n" + codec_report(setup, records, predicted_only=True) + "\n", flush=True)
        else:
            print("\n" + report(setup, records) + "\n", flush=True)
        all_records += [dict(r, model=w.model) for r in records]
        if any(r["error"] for r in records):
            status = 1
    if timings:
        print("[bench_offload] where the time went:\n" + "\n".join(timings), flush=True)
    if args.csv and all_records:
        from intradp_ros.eval.stats_recorder import write_csv

        write_csv(args.csv, all_records)
        print(f"[bench_offload] wrote {args.csv}")
    return status
