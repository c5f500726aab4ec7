"""Offline evaluation by rosbag replay (`rosrun intradp_ros evaluate ...`, docs/evaluation.md).

For every bandwidth trace and every system (intradp, device_only, server_only, dsccs, spso_ga) the same input bag
runs through the same client node (its `mode` parameter picks the system) on the testbed:

    server ns: roscore, intradp_server (model replica, handshake, plan book, probe endpoint)
    robot ns:  roscore, master_bridge, bandwidth_monitor, <client> (the only process in the CPU-throttled cgroup),
               eval_driver (publishes the bag's frames in lockstep, records InferenceStats into a bag)

Masters, bridge and server stay up for the whole evaluation; monitor, client and driver start fresh for each
system, and the trace replay starts from its first sample when the driver starts counting frames, so every system
sees the same frames under the same bandwidth schedule. Time dilation (docs/evaluation.md): with factor k the
shaped rates are the trace's divided by k and the trace plays k times slower (and the bandwidth buckets are
divided by k); measured times are k times those of the system the testbed stands for, and the tables also show
them divided by k.

Results in --out: stats.csv (one row per frame), stats_<trace>_<system>.bag (InferenceStats, BandwidthEstimate,
PlanSwitch as received), tables.md, eval_<trace>.png, summary.json, logs/ (node output).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from intradp_ros.core.progress import ProgressBar
from intradp_ros.eval.frame_cpu import (  # noqa: F401 - measure_frame_s and the path: re-exported (demo, tests)
    cached_frame_cpu_s,
    frame_cpu_cache_path,
    measure_frame_s,
)
from intradp_ros.eval.nodes import read_json_lines, script_argv, start_bridge
from intradp_ros.eval.predict import snapshot_handshake
from intradp_ros.eval.stats_recorder import CSV_FIELDS, consistency_problems, read_csv, write_csv
from intradp_ros.eval.tables import (
    CODEC_SUFFIX,
    SYSTEMS,
    check_goals,
    codec_goal_lines,
    fell_back_local,
    format_plans,
    format_prediction_table,
    format_table,
    frame_line,
    has_bench_columns,
    summarize,
)
from intradp_ros.eval.testbed import Testbed, TestbedError, replay_schedule
from intradp_ros.eval.traces import load_trace, write_trace
from intradp_ros.eval.workloads import CODEC_GOALS

REPO = Path(__file__).resolve().parents[2]
TRACE_DIR = REPO / "config" / "traces"
ROBOT = "robot1"
DEFAULT_GRID_MBYTE = (0.5, 50.0, 1.0)  # lo, hi, step of the undilated bucket grid (the scheduler's default)


@dataclass
class ModelSetup:
    """Which client node runs the model and with what settings (shared by client and server)."""

    model: str
    client: str  # script name: kapao_client / agrnav_client
    bag_key: str  # "camera" or "cloud" (sample_data.ensure_sample_bags)
    settings: dict[str, str] = field(default_factory=dict)  # node settings both sides get (input_size, grid_xzy)


def model_setup(model: str, input_size: str | None = None, grid_xzy: str | None = None) -> ModelSetup:
    """KAPAO models replay the camera bag through kapao_client, torchvision models (VGG19) through
    torchvision_client, SCONet the point-cloud bag through agrnav_client."""
    if model.startswith("kapao") or model.startswith("torchvision:"):
        s = ModelSetup(model, "kapao_client" if model.startswith("kapao") else "torchvision_client", "camera")
        if input_size:
            s.settings["input_size"] = input_size
    elif model.startswith("sconet"):
        s = ModelSetup(model, "agrnav_client", "cloud")
        if grid_xzy:
            s.settings["grid_xzy"] = grid_xzy
    else:
        raise ValueError(
            f"evaluate runs kapao_*, torchvision:* (camera bag) and sconet* (point-cloud bag) models, not {model!r}"
        )
    return s


def build_options(setup: ModelSetup, head: str | None = None) -> dict[str, Any]:
    """Registry build options of the replica the client runs (input_size / grid_xzy as tuples, and the client's
    default head: KAPAO candidates, SCONet completion; `head` overrides it, "detections"/"logits" drop it)."""
    out: dict[str, Any] = {}
    for key in ("input_size", "grid_xzy"):
        if setup.settings.get(key):
            out[key] = tuple(int(v) for v in str(setup.settings[key]).replace(" ", ",").split(",") if v)
    default = {"kapao_client": "candidates", "agrnav_client": "completion"}.get(setup.client)
    chosen = head or default
    if default and chosen not in ("detections", "logits"):
        out["head"] = chosen
    return out


def workload_family(model: str) -> str:
    """Which reference GPU time a model stands for (eval/workloads.REFERENCE_GPU)."""
    if model.startswith("kapao"):
        return "kapao"
    if model.startswith("sconet"):
        return "sconet"
    if model == "torchvision:vgg19" or model.startswith("torchvision:vgg19"):
        return "vgg19"
    raise ValueError(f"no reference GPU time for {model!r}: pass --dilation K")


CLIENT_HEARTBEAT_TIMEOUT_S = 1.0  # the client's defaults (ros/client_node.ClientSettings), undilated
CLIENT_REPORT_TIMEOUT_S = 0.5
TILE_STALL_S = 2.0  # both nodes' default tile_stall_s


def empty_class_offset(logits: Any, occupancy: Any, density: float) -> float:
    """What to add to class 0's logit (empty) so that `density` of the voxels empty in `occupancy` come out
    completed (argmax != 0). `logits` [C, ...] and `occupancy` [...] are torch tensors of one frame."""
    import numpy as np

    if not (0.0 < density < 1.0):
        raise ValueError(f"density must be in (0, 1), got {density!r}")
    margin = (logits[1:].max(0).values - logits[0])[occupancy == 0]  # > 0: the voxel comes out completed
    return float(np.quantile(margin.float().numpy(), 1.0 - density))


# The trained SCONet completes about 1 % of the grid (the completion head's density hint); seeded random weights
# complete about half of the empty voxels, a result of tens of MB that no trained model sends.
SCONET_COMPLETION_DENSITY = 0.01


def sparse_sconet_weights(grid_xyz: tuple[int, int, int], density: float, seed: int = 0) -> Path:
    """A checkpoint of SCONet's seeded random weights (the init the nodes use without one) with the empty class's
    output bias raised so that `density` of the empty voxels of the first sample scan come out completed, as a
    trained model's do; cached by grid, density and seed. Both the client and the server load it, so results
    stay exact (one model, two replicas)."""
    import torch

    from intradp_ros.core.plan_table import default_cache_dir
    from intradp_ros.eval.sample_data import SceneConfig, cloud_frames
    from intradp_ros.models.registry import build
    from intradp_ros.models.voxels import AGRNAV_GRID, grid_to_model_input, voxelize

    x, z, y = grid_xyz
    path = default_cache_dir() / "bench_weights" / f"sconet_{x}x{z}x{y}_density{density:g}_seed{seed}.pt"
    if path.is_file():
        return path
    if (x, y, z) != tuple(AGRNAV_GRID.size_xyz):
        raise ValueError(f"sparse SCONet weights are calibrated on the {AGRNAV_GRID.size_xyz} sample grid")
    torch.manual_seed(seed)
    net = build("sconet", grid_xzy=grid_xyz)
    occupancy = grid_to_model_input(voxelize(next(iter(cloud_frames(SceneConfig())))))
    with torch.inference_mode():
        offset = empty_class_offset(net(occupancy)[0], occupancy[0, 0], density)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["seg_head_1_1.conv_classes.bias"][0] += offset
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": state}, str(tmp))
    tmp.replace(path)
    return path


def auto_dilation(model: str, options: dict[str, Any], frame_s: float) -> tuple[float, str]:
    """(k, why): measured CPU-server compute of a frame / the GPU time it stands for."""
    from intradp_ros.eval.workloads import Workload, dilation_k, reference_gpu_s

    family = workload_family(model)
    ref = reference_gpu_s(family, Workload(model, model, family, options).elements)
    k = dilation_k(frame_s, ref)
    return k, (
        f"k = {frame_s * 1e3:.0f} ms measured CPU-server frame / {ref * 1e3:.2f} ms RTX 3080-class GPU frame = {k:.1f}"
    )


def cacheable_k(k: float) -> float:
    """k rounded to a multiple of 10 (an integer below 10, never below 1): the plan book's bucket grid is divided
    by k and the book is cached per grid, so equal k on every run means the server solves each book once."""
    if not (k > 0 and math.isfinite(k)):
        raise ValueError(f"k must be > 0 and finite, got {k!r}")
    return float(max(1, round(k / 10) * 10 if k >= 10 else round(k)))


def cpu_dilation(model: str, options: dict[str, Any], cpu_s: float, threads: int) -> tuple[float, str]:
    """(k, why) from one thread's CPU seconds of a frame: the CPU server's frame is taken as cpu_s / threads (its
    torch threads), k = that / the reference GPU frame, rounded by `cacheable_k`."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    measured, why = auto_dilation(model, options, cpu_s / threads)
    k = cacheable_k(measured)
    return k, (
        f"{why}, rounded to {k:g} (the CPU-server frame is one thread's CPU time {cpu_s:.2f} s / {threads} threads: "
        "CPU time does not grow with the host's load; cached per model, size and CPU)"
    )


def auto_kapao_size(
    model: str, robot_cpu: float, budget_s: float, frame_cpu: Callable[[str, dict[str, Any]], float] | None = None
) -> tuple[str, str]:
    """('H,W', why): the largest KAPAO size whose device-only frame on the testbed (one thread's CPU time of a
    frame at 1280x960 scaled by pixels, / the robot's CPU quota) fits `budget_s`; never below 512x640."""
    from intradp_ros.eval.workloads import KAPAO_SIZES, kapao_size_for_budget, scaled_kapao_s

    top = tuple(KAPAO_SIZES[0])
    cpu_s = (frame_cpu or (lambda m, o: cached_frame_cpu_s(m, o)[0]))(model, {"input_size": top})
    t_top = cpu_s / robot_cpu
    hw, why = kapao_size_for_budget(lambda hw: scaled_kapao_s(t_top, top, hw), budget_s)
    return f"{hw[0]},{hw[1]}", why


# codec variant -> (server codec policy, suffix of the systems' names in the records)
CODEC_VARIANTS: dict[str, tuple[str, str]] = {"raw": ("raw", ""), "lossless": ("all", CODEC_SUFFIX)}


@dataclass
class EvalConfig:
    """Everything one evaluation run is configured with (written to summary.json)."""

    model: str = "kapao_l6"
    input_size: str | None = None  # "H,W" for KAPAO (multiples of 64)
    grid_xzy: str | None = None  # "X,Z,Y" for SCONet
    systems: Sequence[str] = SYSTEMS
    traces: Sequence[str] = ("indoor", "outdoor")
    frames: int = 10
    warmup: int = 2
    robot_cpu: float = 0.05  # cgroup quota of the client (share of one CPU); 0.05 ~ 20x slower
    dilation: float | None = None  # time-dilation factor k; None: per workload (measured CPU frame / GPU frame)
    rate_hz: float | None = None  # camera rate (undilated frames/s; the driver publishes at rate / k); None: lockstep
    frame_budget: float = 60.0  # seconds a device-only KAPAO frame may take on the testbed (input_size "auto")
    bag: str | None = None
    out: str = "eval_out"
    frame_timeout: float = 120.0
    startup_timeout: float = 600.0
    gap: float = 0.5  # idle seconds between frames (lets the monitor probe)
    server_device: str = "auto"
    deadline: float = 1.0  # SPSO-GA deadline (undilated seconds; the nodes get k x this)
    solver_seconds: float = 5.0
    grid_buckets: int = 16  # buckets of the (dilated) grid the server solves
    extra_client: dict[str, str] = field(default_factory=dict)
    extra_server: dict[str, str] = field(default_factory=dict)
    # codec variants, one server start each: "raw" (every system as published, raw tensors) and "lossless" (every
    # system given the lossless codecs that pay, records named <system>+codecs); empty: the server's default policy
    codecs: Sequence[str] = ()
    key_file: str = ""  # shared secret of server and client: authenticated links (docs/security.md); "": none

    def validate(self) -> None:
        if self.key_file:  # a bad key file fails here, not as a node that never starts
            from intradp_ros.core.auth import load_secret

            load_secret(self.key_file)
        bad_codecs = [v for v in self.codecs if v not in CODEC_VARIANTS]
        if bad_codecs:
            raise ValueError(f"unknown codec variants {bad_codecs}; choose from {', '.join(CODEC_VARIANTS)}")
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad:
            raise ValueError(f"unknown systems {bad}; choose from {', '.join(SYSTEMS)}")
        if self.frames <= 0 or self.warmup < 0:
            raise ValueError("frames must be > 0 and warmup >= 0")
        if self.dilation is not None and not (self.dilation > 0 and math.isfinite(self.dilation)):
            raise ValueError(f"dilation must be > 0, got {self.dilation!r}")
        if self.rate_hz is not None and not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f"rate must be > 0 frames/s, got {self.rate_hz!r}")
        if not (0 < self.robot_cpu <= 1.0):
            raise ValueError(f"robot_cpu must be in (0, 1], got {self.robot_cpu!r}")
        for t in self.traces:
            trace_path(t)


def trace_path(name: str) -> Path:
    """A shipped trace by name (indoor, outdoor) or a trace file path."""
    p = TRACE_DIR / f"{name}.txt"
    if p.is_file():
        return p
    if Path(name).is_file():
        return Path(name)
    raise ValueError(f"no trace {name!r} (shipped: {', '.join(sorted(q.stem for q in TRACE_DIR.glob('*.txt')))})")


def trace_label(name: str) -> str:
    return Path(name).stem


def dilate_trace(samples: Sequence[tuple[float, float]], k: float) -> list[tuple[float, float]]:
    """The trace as the dilated testbed plays it: times x k, rates / k."""
    return [(t * k, r / k) for t, r in samples]


def dilated_grid(k: float, buckets: int) -> str:
    """Bucket edges in MB/s for the dilated link: the undilated grid's range / k, `buckets` edges, as 'a,b,...'."""
    lo, hi, _ = DEFAULT_GRID_MBYTE
    edges = [lo / k * (hi / lo) ** (i / max(buckets - 1, 1)) for i in range(buckets)]
    return ",".join(f"{e:.4g}" for e in edges)


def flags(settings: dict[str, Any]) -> list[str]:
    """{"input_size": "256,320"} -> ["--input-size", "256,320"]."""
    out: list[str] = []
    for k, v in settings.items():
        out += ["--" + k.replace("_", "-"), str(v)]
    return out


def link_series(samples: Sequence[tuple[float, float]], t_end: float) -> list[tuple[float, float]]:
    """The rate schedule a looped replay applies from its start up to t_end."""
    out: list[tuple[float, float]] = []
    index = 0
    while True:
        sched = replay_schedule(samples, 1.0, index)
        out += [(t, r) for t, r in sched if t <= t_end]
        if not sched or sched[-1][0] >= t_end:
            return out
        index += 1


def rate_at(series: Sequence[tuple[float, float]], t: float) -> float:
    rate = float("nan")
    for ts, r in series:
        if ts > t:
            break
        rate = r
    return rate


class RunPhases:
    """Where one run's wall time goes: start-up (nodes, the client's profile and calibration, the handshake and the
    server's plan-book solve) until the client is ready, the warm-up frames, then the counted frames. Marks come
    from the driver's records; `line()` is printed after every run so a slow benchmark shows its cost."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        import time

        self.clock = clock or time.monotonic
        self.t0 = self.clock()
        self.marks: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        """The time `phase` ended (the first mark of a phase counts)."""
        self.marks.setdefault(phase, self.clock() - self.t0)

    def line(self) -> str:
        total = self.clock() - self.t0
        ready = self.marks.get("ready")
        start = self.marks.get("start")
        parts = [f"run took {total:.0f} s"]
        if ready is not None:
            parts.append(f"start-up {ready:.0f} s (nodes, client profile + calibration, handshake, plan book)")
        if start is not None:
            parts.append(f"warm-up {start - (ready if ready is not None else 0.0):.0f} s")
            parts.append(f"counted frames {total - start:.0f} s")
        return "; ".join(parts)


class Evaluation:
    """Runs the configured systems over the configured traces on one testbed and collects the records."""

    def __init__(self, cfg: EvalConfig, out: TextIO = sys.stdout) -> None:
        cfg.validate()
        self.cfg = cfg
        self.out = out
        self.notes: list[str] = []
        if cfg.input_size == "auto":
            if not cfg.model.startswith("kapao"):
                raise ValueError("--input-size auto picks a KAPAO size; give 'H,W' for other models")
            cfg.input_size, why = auto_kapao_size(cfg.model, cfg.robot_cpu, cfg.frame_budget)
            self.notes.append(f"KAPAO input {why}")
        self.setup = model_setup(cfg.model, cfg.input_size, cfg.grid_xzy)
        if cfg.model == "sconet" and not (cfg.extra_client.get("weights") or cfg.extra_server.get("weights")):
            x, z, y = build_options(self.setup).get("grid_xzy", (256, 32, 256))
            weights = str(sparse_sconet_weights((x, z, y), SCONET_COMPLETION_DENSITY))
            cfg.extra_client["weights"] = cfg.extra_server["weights"] = weights
            self.notes.append(
                f"SCONet weights: seeded random init with the empty class's bias raised so "
                f"{SCONET_COMPLETION_DENSITY:.0%} of the empty voxels complete, as a trained model's do "
                f"(random weights complete about half: tens of MB per frame); {weights}"
            )
        if cfg.dilation is None:
            import torch

            options = build_options(self.setup, self.cfg.extra_client.get("head"))
            cpu_s, hit = cached_frame_cpu_s(cfg.model, options)
            cfg.dilation, why = cpu_dilation(cfg.model, options, cpu_s, torch.get_num_threads())
            self.notes.append(f"time dilation {why}{' (from the cache)' if hit else ''}")
        else:
            self.notes.append(f"time dilation k = {cfg.dilation:g} (given)")
        self.out_dir = Path(cfg.out).resolve()
        self.log_dir = self.out_dir / "logs"
        self.records: list[dict[str, Any]] = []
        self.links: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self.robot_slowdown: float | None = None
        self.problems: list[str] = []
        # the eval_driver's last /diagnostics status of every node, per (trace, system) run (the demo's table)
        self.health: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # ---- node command lines ----------------------------------------------------------------------------------
    def server_argv(self, variant: str | None = None) -> list[str]:
        """The server's command line; `variant` (CODEC_VARIANTS) sets its codec policy."""
        cfg = self.cfg
        s: dict[str, Any] = {
            "robots": ROBOT,
            "model": cfg.model,
            "device": cfg.server_device,
            "grid": dilated_grid(cfg.dilation, cfg.grid_buckets),
            "deadline": cfg.deadline * cfg.dilation,
            "solver_seconds": cfg.solver_seconds,
            # the server drops a tile subscriber that accepts no byte this long: dilated like the client's limit
            # (undilated, server-only's 3.69 MB of KAPAO-L 1280x960 pixels behind the dilated link lost it every frame)
            "tile_stall_s": TILE_STALL_S * cfg.dilation,
        }
        if variant is not None:
            s["codecs"] = CODEC_VARIANTS[variant][0]
        s.update(self.setup.settings)
        if cfg.key_file:
            s["key_file"] = cfg.key_file
        s.update(cfg.extra_server)
        return script_argv("intradp_server", *flags(s))

    def client_cache_dir(self) -> Path:
        """The client's own profile cache: it profiles itself inside the CPU throttle, so it must not share the
        server's cache (both are 'cpu' to the profiler and would read each other's profile)."""
        from intradp_ros.core.plan_table import default_cache_dir

        return default_cache_dir() / f"robot_cpu{self.cfg.robot_cpu:g}"

    def client_argv(self, system: str) -> list[str]:
        return script_argv(self.setup.client, *flags(self.client_settings(system)))

    def client_settings(self, system: str = "intradp") -> dict[str, Any]:
        """Every setting the client of `system` starts with (the prediction looks its profile up with them)."""
        k = self.cfg.dilation
        s = {
            "robot": ROBOT,
            "mode": system,
            "model": self.cfg.model,
            "cache_dir": self.client_cache_dir(),
            "deadline": 3.0 * k,
            "max_age": 3.0 * k,
            # the client's own waits stretch with every other time on the testbed: undilated, a 1 s heartbeat
            # timeout at k = 71 declared the link down every few seconds and distributed frames ran locally
            "heartbeat_timeout": CLIENT_HEARTBEAT_TIMEOUT_S * k,
            "report_timeout": CLIENT_REPORT_TIMEOUT_S * k,
            # undilated, a server that read nothing for 2 s (a load spike; 29 ms of undilated time at k = 70) had its
            # tile subscription dropped mid-upload, and KAPAO-L's server-only frames finished locally
            "tile_stall_s": TILE_STALL_S * k,
            # every system's client reuses the first one's calibration frames: one calibration (minutes at the
            # seeds' sizes inside the quota) and one calibrated profile, so one plan-book solve per workload
            "calibration_file": self.out_dir / "calibration_frames.json",
        }
        if self.cfg.robot_cpu < 1.0:
            s["threads"] = 1  # under a quota below one CPU more threads burn it in spin-waits (2x slower frames)
        s.update(self.setup.settings)
        if self.cfg.key_file:
            s["key_file"] = self.cfg.key_file
        s.update(self.cfg.extra_client)
        return s

    def monitor_argv(self) -> list[str]:
        return script_argv(
            "bandwidth_monitor", "--robot", ROBOT, "--buckets", dilated_grid(self.cfg.dilation, self.cfg.grid_buckets)
        )

    def driver_argv(self, bag: str, record: Path, system: str) -> list[str]:
        cfg = self.cfg
        # the client's diagnostics once it holds the plan book; no frame before it (warm-up frames shared the quota
        # with the client's profiling and calibration: slower start-up and a skewed profile)
        ready = ["--ready-status", "plan_book=received", "--quiet-until-ready", "true"]
        pacing = (
            ["--pacing", "lockstep"]
            if cfg.rate_hz is None
            else ["--pacing", "rate", "--rate", f"{cfg.rate_hz / cfg.dilation:.6g}"]
        )
        return script_argv(
            "eval_driver",
            *ready,
            "--robot",
            ROBOT,
            "--bag",
            bag,
            "--frames",
            str(cfg.frames),
            *pacing,
            "--warmup",
            str(cfg.warmup),
            "--gap",
            str(cfg.gap),
            "--frame-timeout",
            str(cfg.frame_timeout),
            "--startup-timeout",
            str(cfg.startup_timeout),
            "--record",
            str(record),
            "--output",
            "json",
            "--dilation",
            str(cfg.dilation),
        )

    # ---- running ---------------------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        # calibration frames are shared by this evaluation's clients only (timed under today's load and quota)
        (self.out_dir / "calibration_frames.json").unlink(missing_ok=True)
        bag = cfg.bag or self._sample_bag()
        self.say(
            f"[evaluate] {cfg.model} {self.setup.settings or ''} on {', '.join(cfg.traces)}; systems "
            f"{', '.join(cfg.systems)}; {cfg.frames} frames each (+{cfg.warmup} warm-up) from {bag}"
        )
        for note in self.notes:
            self.say(f"[evaluate] {note}")
        if cfg.rate_hz is not None:
            self.say(
                f"[evaluate] camera rate {cfg.rate_hz:g} Hz undilated: "
                f"frames published at {cfg.rate_hz / cfg.dilation:.4g} Hz"
            )
        self.say(
            f"[evaluate] time dilation k = {cfg.dilation:g}: link rates / k, traces played k x slower, "
            f"bucket grid {dilated_grid(cfg.dilation, cfg.grid_buckets)} MB/s; results in {self.out_dir}"
        )
        with Testbed(rate_mbit=100.0 / cfg.dilation, name="eval") as tb:
            tb.start_masters()
            logs = {name: open(self.log_dir / f"{name}.log", "ab") for name in ("bridge", "server")}
            try:
                start_bridge(tb, "robot", log=logs["bridge"])
                self.say(tb.describe())
                variants: list[str | None] = list(cfg.codecs) or [None]
                total = len(cfg.traces) * len(cfg.systems) * len(variants)
                n = 0
                runs = ProgressBar("evaluate: runs (trace x system)", unit="run", mininterval=0)
                for variant in variants:
                    suffix = CODEC_VARIANTS[variant][1] if variant is not None else ""
                    if variant is not None:
                        self.say(
                            f"\n[evaluate] codec variant {variant}: server codec policy {CODEC_VARIANTS[variant][0]}"
                        )
                    server = tb.spawn(
                        "server",
                        self.server_argv(variant),
                        stdout=logs["server"],
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                    if variant == variants[0]:
                        self.robot_slowdown = self._slow_robot(tb)
                    for trace in cfg.traces:
                        samples = dilate_trace(load_trace(trace_path(trace)), cfg.dilation)
                        scaled = self.out_dir / "traces" / f"{trace_label(trace)}_k{cfg.dilation:g}.txt"
                        scaled.parent.mkdir(exist_ok=True)
                        write_trace(
                            scaled,
                            samples,
                            [f"{trace} with times x {cfg.dilation:g} and rates / {cfg.dilation:g} (time dilation)"],
                        )
                        for system in run_order(cfg.systems):
                            n += 1
                            label = system + suffix
                            self.say(f"\n[evaluate] run {n}/{total}: {trace_label(trace)} / {label}")
                            self._run_one(tb, trace_label(trace), system, bag, scaled, samples, label)
                            runs(n, total)
                    if len(variants) > 1:
                        tb.stop(server)  # the next variant's server solves its own plan books
                runs.close()
            finally:
                for f in logs.values():
                    f.close()
        return self.report()

    def _slow_robot(self, tb: Testbed) -> float | None:
        """Throttle the client's CPU; where no cgroup CPU controller is available (v2 nor v1) say so and run
        unthrottled: the figures then stand for a robot as fast as this CPU."""
        cfg = self.cfg
        try:
            slowdown, line = tb.try_slow_robot(cfg.robot_cpu)
        except (TestbedError, OSError, RuntimeError) as err:
            slowdown, line = None, f"robot NOT slowed down, running unthrottled: {err}"
        if slowdown is None:
            self.say(f"[evaluate] client {line}: the client runs UNTHROTTLED")
            self.problems.append(f"robot CPU throttle unavailable: ran unthrottled ({line})")
            self.notes.append("robot CPU throttle unavailable: the client ran unthrottled")
        else:
            self.say(f"[evaluate] client {line}")
        return slowdown

    def _spawn_client(self, tb: Testbed, mode: str, log: Any) -> subprocess.Popen:
        """The client, started outside the robot's CPU quota and joining it once its model is loaded (building and
        capturing KAPAO-L 1280x960 took minutes at 0.1 CPU at every start: start-up, not robot compute); its
        profile, calibration and frames all run inside the quota. Without a quota it simply starts."""
        group = tb.cpu_group
        if group.fraction is None:
            return tb.spawn(
                "robot", self.client_argv(mode), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        fd = os.open(group.path / "cgroup.procs", os.O_WRONLY)  # `ip netns exec` hides /sys/fs/cgroup: pass it open
        try:
            argv = self.client_argv(mode) + ["--join-cgroup-fd", str(fd)]
            return spawn_unthrottled(
                tb, "robot", argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(fd,)
            )
        finally:
            os.close(fd)

    def _sample_bag(self) -> str:
        from intradp_ros.eval.sample_data import ensure_sample_bags

        return str(ensure_sample_bags()[self.setup.bag_key])

    def _run_one(
        self,
        tb: Testbed,
        trace: str,
        mode: str,
        bag: str,
        scaled: Path,
        samples: Sequence[tuple[float, float]],
        label: str | None = None,
    ) -> None:
        """One trace and system: the client runs `mode`; records and logs name it `label` (default the mode)."""
        cfg = self.cfg
        system = label or mode
        tag = f"{trace}_{system}"
        started = time.time()
        log = open(self.log_dir / f"{tag}.log", "ab")
        procs: list[subprocess.Popen] = []
        phases = RunPhases()
        try:
            if tb.replay is not None:
                tb.replay.stop()
                tb.replay.join(timeout=5)
            tb.set_rate(samples[0][1])
            procs.append(
                spawn_unthrottled(
                    tb, "robot", self.monitor_argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            )
            procs.append(self._spawn_client(tb, mode, log))
            driver = spawn_unthrottled(
                tb,
                "robot",
                self.driver_argv(bag, self.out_dir / f"stats_{tag}.bag", mode),
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            procs.append(driver)
            budget = cfg.startup_timeout + cfg.warmup * cfg.frame_timeout + cfg.frames * (cfg.frame_timeout + cfg.gap)
            series: list[tuple[float, float]] = []
            got = 0
            for rec in read_json_lines(driver, timeout=budget):
                kind = rec.get("kind")
                if kind == "start":
                    phases.mark("ready")
                    phases.mark("start")
                    tb.replay_trace(scaled, loop=True)
                    series = link_series(samples, budget)
                elif kind == "warmup":
                    self.say(
                        f"[{system:>11}] warm-up frame {rec['index']}: "
                        + (f"result (plan {rec.get('plan_name')})" if rec["received"] else "no result")
                    )
                elif kind == "client_ready":
                    phases.mark("ready")
                    self.say(f"[{system:>11}] client ready: {rec['log']}")
                elif kind == "warning":
                    self.say(f"[{system:>11}] warning: {rec['warning']}")
                    self.problems.append(f"{tag}: {rec['warning']}")
                elif kind == "stats" and int(rec.get("frame", -1)) >= 0:
                    link = rate_at(series, float(rec["t_s"]))
                    row = dict(rec, system=system, trace=trace, link_mbit=link)
                    for p in consistency_problems(row) + system_problems(row):
                        self.problems.append(f"{tag} frame {rec['frame']}: {p}")
                    self.records.append({k: row.get(k, "") for k in CSV_FIELDS})
                    got += 1
                    self.say(frame_line(row, cfg.dilation, link))
                elif kind == "lost":
                    self.records.append(_lost_record(system, trace, rec))
                    self.say(f"[{system:>11}] frame {rec['frame']:>3}  LOST (no result within {cfg.frame_timeout:g} s)")
                elif kind == "plan":
                    self.say(
                        f"[{system:>11}] plan switch -> {rec['plan_name']} at estimate "
                        f"{rec['estimate_mbit_per_s']:.2f} Mbit/s"
                    )
                elif kind == "health":
                    self.health[(trace, system)] = list(rec.get("statuses", []))
                elif kind == "error":
                    self.say(f"[{system:>11}] driver error: {rec['error']} (log {self.log_dir / (tag + '.log')})")
                    self.problems.append(f"{tag}: driver error: {rec['error']}")
            t_end = max(
                [
                    float(r["t_s"])
                    for r in self.records
                    if r["trace"] == trace and r["system"] == system and not math.isnan(float(r["t_s"]))
                ]
                + [1.0]
            )
            self.links[(trace, system)] = [(t, r) for t, r in series if t <= t_end]
            self.say(f"[evaluate] {trace}/{system}: {got}/{cfg.frames} frames with a result; {phases.line()}")
        except TestbedError as err:
            self.say(f"[evaluate] {trace}/{system} failed: {err}")
            self.problems.append(f"{tag}: run failed: {err}")
        finally:
            if tb.replay is not None:
                tb.replay.stop()
            for p in reversed(procs):
                tb.stop(p)
            log.close()
            snapshot_handshake(self.client_cache_dir(), started, self.handshake_copy(trace, system))

    # ---- results ---------------------------------------------------------------------------------------------
    def report(self) -> int:
        """Write CSV, tables, plots and summary.json; print the tables and the goal check."""
        self._annotate()
        write_csv(self.out_dir / "stats.csv", self.records)
        text, goals = render_report(self.records, self.cfg.dilation, self.cfg.model)
        summary = self.summary_dict(goals)
        text += "\n" + self.dilation_note(summary)
        problems = ("\n\nproblems:\n  " + "\n  ".join(self.problems)) if self.problems else ""
        (self.out_dir / "tables.md").write_text(text + problems + "\n")
        from intradp_ros.eval.plots import plot_run

        pngs = plot_run(self.records, self.out_dir, "eval", self.links, self.cfg.dilation) if self.records else []
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.say("\n" + text)
        if self.problems:
            self.say("\nproblems:\n  " + "\n  ".join(self.problems[:30]))
        self.say(
            f"\n[evaluate] wrote {self.out_dir / 'stats.csv'}, tables.md, summary.json, "
            f"{', '.join(p.name for p in pngs)} and stats_<trace>_<system>.bag"
        )
        failed = any("driver error" in p or "run failed" in p for p in self.problems)
        return 0 if self.records and not failed else 1

    def handshake_copy(self, trace: str, system: str) -> Path:
        """Where the run of `system` on `trace` keeps its client's handshake profiles (predict.snapshot_handshake)."""
        return self.out_dir / "handshakes" / f"{trace}_{system}.json"

    def variant_of(self, system: str) -> str | None:
        """The codec variant a record's system label ran under (its suffix, CODEC_VARIANTS), None without variants."""
        variants = list(self.cfg.codecs)
        for v in variants:
            if CODEC_VARIANTS[v][1] and system.endswith(CODEC_VARIANTS[v][1]):
                return v
        return next((v for v in variants if not CODEC_VARIANTS[v][1]), variants[0] if variants else None)

    def _annotate(self) -> None:
        """Predicted latency, floor and non-model CPU estimate beside every frame (eval/predict.py), each run's frames
        priced with the profiles its own client sent (its handshake copy; else the newest in the client's cache)
        and the plan book of its codec variant's server; a failure leaves the columns empty and says why."""
        if not self.records:
            return
        import dataclasses

        from intradp_ros.eval.predict import annotate, build_context, capture_workload, codec_seconds_per_byte

        cfg = self.cfg
        try:
            options = build_options(self.setup, self.cfg.extra_client.get("head"))
            captured = capture_workload(cfg.model, options)
            per_byte = codec_seconds_per_byte()
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for rec in self.records:
                runs.setdefault((str(rec["trace"]), str(rec["system"])), []).append(rec)
            contexts: dict[tuple[bytes | None, str | None], Any] = {}
            run_context: dict[tuple[str, str], Any] = {}
            for trace, system in runs:
                copy = self.handshake_copy(trace, system)
                handshake = copy if copy.is_file() else None
                variant = self.variant_of(system)
                key = (handshake.read_bytes() if handshake else None, variant)
                if key not in contexts:
                    self.say(f"[evaluate] prediction for {trace}/{system}:")
                    contexts[key] = build_context(
                        cfg.model,
                        options,
                        self.client_cache_dir(),
                        [float(v) for v in dilated_grid(cfg.dilation, cfg.grid_buckets).split(",")],
                        cfg.deadline * cfg.dilation,
                        cfg.solver_seconds,
                        cfg.dilation,
                        self.robot_slowdown,
                        self.say,
                        calibration_file=self.out_dir / "calibration_frames.json",
                        server_argv=self.server_argv(variant),
                        handshake_file=handshake,
                        captured=captured,
                        codec_per_byte_s=per_byte,
                    )
                run_context[(trace, system)] = contexts[key]
            # one physical floor per workload: the cheapest upload any client observed (the camera file where one
            # client verified it), whichever client's profiles priced the frames
            upload = min(ctx.upload_bytes for ctx in contexts.values())
            missing = 0
            for run, recs in runs.items():
                missing += annotate(recs, dataclasses.replace(run_context[run], upload_bytes=upload))
            if missing:
                self.problems.append(
                    f"prediction: {missing} frames ran a plan the rebuilt plan book does not hold "
                    "(predicted with that system's plan for the frame's rate)"
                )
        except Exception as err:  # noqa: BLE001 - the measured tables stand without the prediction
            self.problems.append(f"prediction columns left empty: {type(err).__name__}: {err}")

    def summary_dict(self, goals: Sequence[Any]) -> dict[str, Any]:
        sums = summarize(self.records)
        dev = [s for (t, name), s in sums.items() if name == "device_only" and s.frames]
        srv = [
            r
            for r in self.records
            if r["system"] == "server_only" and not r["error"] and float(r["server_compute_s"]) > 0
        ]
        ratio = None
        if dev and srv:
            dev_lat = sum(s.latency_mean_s for s in dev) / len(dev)
            ratio = dev_lat / (sum(float(r["server_compute_s"]) for r in srv) / len(srv))
        return {
            "config": asdict(self.cfg),
            "robot_cpu_quota": self.cfg.robot_cpu,
            "robot_slowdown_busy_loop": self.robot_slowdown,
            "robot_over_server_compute": ratio,
            "dilation_k": self.cfg.dilation,
            "notes": self.notes,
            "summaries": {f"{t}/{s}": asdict(v) for (t, s), v in sums.items()},
            "goals": [asdict(g) for g in goals],
            "problems": self.problems,
        }

    def dilation_note(self, summary: dict[str, Any]) -> str:
        r = summary.get("robot_over_server_compute")
        sd = summary.get("robot_slowdown_busy_loop")
        return (
            (
                f"Robot slow-down: cgroup quota {self.cfg.robot_cpu:g} CPU, measured x{sd:.1f} on a busy loop"
                if sd
                else "Robot slow-down: not measured"
            )
            + (f"; measured device-only latency / server compute per frame = {r:.1f}x" if r else "")
            + f". Time dilation k = {self.cfg.dilation:g} (link rates / k, trace time x k; undilated = measured / k)."
        )


def system_problems(row: dict[str, Any]) -> list[str]:
    """A frame that does not stand for its system: an offloading system's frame that fell back to local inference
    (its fallback flag: the server's part missed its deadline or the link failed mid-frame), or a server-only
    client that ran the frame on the robot while its link to the server was down (e.g. a heartbeat missed on a
    loaded host right after the handshake), without an error or a fallback flag. Device-only frames, and plans
    that choose the robot for the whole frame (Intra-DP, DSCCS or SPSO-GA on a slow link), are not fallbacks."""
    system = str(row.get("system") or row.get("mode") or "")
    base = system.split("+", 1)[0]
    if base == "device_only":
        return []
    if fell_back_local(row):
        return [f"fell back to local inference: counted as a {system} frame, it is not one"]
    if base == "server_only" and row.get("plan_name") == "device_only":
        return [f"the {system} client ran this frame on the robot (its link was down): not a {system} figure"]
    return []


def run_order(systems: Sequence[str]) -> list[str]:
    """Distributed systems first (the first run pays the client's profiling and the server's plan-book solve,
    both cached afterwards), then device-only, and Intra-DP last (it finds the books the others made cached)."""
    head = [s for s in systems if s not in ("device_only", "intradp")]
    return head + [s for s in systems if s == "device_only"] + [s for s in systems if s == "intradp"]


def _lost_record(system: str, trace: str, rec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {k: 0 for k in CSV_FIELDS}
    row.update(
        system=system,
        trace=trace,
        frame=rec["frame"],
        t_s=rec.get("t_s", float("nan")),
        link_mbit=float("nan"),
        robot=ROBOT,
        model="",
        mode=system,
        plan_name="",
        fell_back_local=False,
        error="lost: no result within the frame timeout",
    )
    return row


def render_report(records: Sequence[dict[str, Any]], k: float, title: str) -> tuple[str, list]:
    """The tables (measured, and undilated when k != 1) and the goal lines, as Markdown text."""
    sums = summarize(records)
    parts = [format_table(sums, title=f"{title}: measured on the testbed (dilated times)")]
    if k != 1.0:
        parts.append(format_table(sums, title=f"{title}: undilated (measured / k, k = {k:g})", time_unit="ms", k=k))
    if has_bench_columns(sums):
        parts.append(
            format_prediction_table(
                sums, title=f"{title}: measured beside predicted and the physical floor (undilated, k = {k:g})", k=k
            )
        )
    parts.append(format_plans(records))  # which plans ran, and how many bands went up (tiles up per frame)
    # A frame that fell back to local inference does not stand for its system (system_problems): the goal lines
    # compare only frames that ran as their system, so a baseline's fallback cannot make Intra-DP look fast.
    # With codec variants, the goals compare the systems as published (raw tensors) with each other, and the
    # codec goal line Intra-DP given the codecs with raw server-only (never Intra-DP with a '+codecs' system).
    clean = [r for r in records if not system_problems(r)]
    published = [r for r in clean if not str(r["system"]).endswith(CODEC_SUFFIX)]
    goals = check_goals(summarize(published))
    left_out = len(records) - len(clean)
    note = f" (leaving out {left_out} frames that fell back to local inference)" if left_out else ""
    variants = " (the systems as published, raw tensors)" if len(published) < len(clean) else ""
    parts.append(
        f"Goals{variants}{note}:\n" + ("\n".join(g.describe() for g in goals) if goals else "(no Intra-DP results)")
    )
    if len(published) < len(clean):
        try:
            target = CODEC_GOALS.get(workload_family(title))
        except ValueError:
            target = None
        parts.append(
            "Codec goal (Intra-DP + lossless codecs + streaming vs raw server-only, undilated means):\n"
            + "\n".join(codec_goal_lines(clean, target, add_nonmodel=True))
        )
    return "\n\n".join(parts), goals


def spawn_unthrottled(tb: Testbed, side: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """Spawn a harness process (monitor, driver) outside the robot CPU throttle: only the client stands for the
    slow robot computer; the measuring tools must not be slowed by it."""
    group = tb.cpu_group
    saved = group.fraction
    group.fraction = None
    try:
        return tb.spawn(side, argv, **kwargs)
    finally:
        group.fraction = saved


def build_parser() -> argparse.ArgumentParser:
    d = EvalConfig()
    p = argparse.ArgumentParser(
        prog="evaluate",
        description="rosbag-replay evaluation of every system on the "
        "testbed (root), or tables/plots from an earlier run's CSV (--from-csv)",
    )
    p.add_argument("--model", default=d.model, help="kapao_s6/m6/l6 (camera bag) or sconet/sconet_ds (clouds)")
    p.add_argument(
        "--input-size",
        default=None,
        help="input 'H,W' (KAPAO: multiples of 64; 'auto': the largest KAPAO size from 1280x960 down to 512x640 "
        "whose device-only frame fits --frame-budget)",
    )
    p.add_argument(
        "--frame-budget", type=float, default=d.frame_budget, help="seconds a device-only frame may take (auto size)"
    )
    p.add_argument("--rate", type=float, default=None, help="camera rate in undilated Hz (default: lockstep)")
    p.add_argument("--grid-xzy", default=None, help="SCONet grid 'X,Z,Y'")
    p.add_argument("--systems", default=",".join(d.systems), help="comma list (default all five)")
    p.add_argument("--traces", default=",".join(d.traces), help="trace names or files (default indoor,outdoor)")
    p.add_argument("--frames", type=int, default=d.frames, help="counted frames per system and trace")
    p.add_argument("--warmup", type=int, default=d.warmup, help="uncounted warm-up frames per run")
    p.add_argument("--robot-cpu", type=float, default=d.robot_cpu, help="client cgroup quota (share of one CPU)")
    p.add_argument(
        "--dilation",
        default="auto",
        help="time-dilation factor k, or 'auto': "
        "measured CPU-server frame / the RTX 3080-class GPU frame it stands for",
    )
    p.add_argument("--bag", default=None, help="input bag (default: the sample bag for the model)")
    p.add_argument("--out", default=d.out, help="output folder")
    p.add_argument("--frame-timeout", type=float, default=d.frame_timeout)
    p.add_argument("--startup-timeout", type=float, default=d.startup_timeout)
    p.add_argument("--gap", type=float, default=d.gap, help="idle seconds between frames")
    p.add_argument("--server-device", default=d.server_device, help="auto, cpu or cuda")
    p.add_argument("--deadline", type=float, default=d.deadline, help="SPSO-GA deadline in undilated seconds")
    p.add_argument("--solver-seconds", type=float, default=d.solver_seconds, help="server solver limit per bucket")
    p.add_argument("--grid-buckets", type=int, default=d.grid_buckets, help="bandwidth buckets of the plan book")
    p.add_argument(
        "--client-arg", action="append", default=[], metavar="NAME=VALUE", help="extra client setting (repeatable)"
    )
    p.add_argument(
        "--server-arg", action="append", default=[], metavar="NAME=VALUE", help="extra server setting (repeatable)"
    )
    p.add_argument(
        "--codecs",
        default="",
        help="codec variants, one server start each: raw (every system as published) and/or lossless (every system "
        "with the lossless codecs that pay, named <system>+codecs); default: the server's policy (Intra-DP's codecs)",
    )
    p.add_argument("--from-csv", default=None, help="only re-tabulate and plot this stats.csv (no testbed)")
    p.add_argument(
        "--repredict",
        action="store_true",
        help="with --from-csv: compute the predicted, floor and non-model columns again (the run's --model, size, "
        "--dilation and --robot-cpu; calibration frames from the CSV's folder) and rewrite stats.csv and tables.md "
        "there",
    )
    p.add_argument("--key-file", default="", help="shared secret (mode 600): run server and client authenticated")
    return p


def _pairs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def repredict(args: argparse.Namespace) -> int:
    """Prediction columns of an earlier run computed again with today's code and caches, from its stats.csv and
    the calibration frames its clients shared; stats.csv and tables.md in its folder are rewritten."""
    if args.dilation == "auto":
        raise ValueError("--repredict needs the run's --dilation K (its tables print k)")
    csv_path = Path(args.from_csv).resolve()
    records = read_csv(csv_path)
    cfg = EvalConfig(
        model=args.model,
        input_size=args.input_size,
        grid_xzy=args.grid_xzy,
        robot_cpu=args.robot_cpu,
        dilation=float(args.dilation),
        out=str(csv_path.parent),
        deadline=args.deadline,
        solver_seconds=args.solver_seconds,
        grid_buckets=args.grid_buckets,
        extra_client=_pairs(args.client_arg),
        extra_server=_pairs(args.server_arg),
        # the run's codec variants, as its records name them (a '+codecs' system ran under the "all" policy)
        codecs=[v for v in args.codecs.split(",") if v]
        or (list(CODEC_VARIANTS) if any(str(r["system"]).endswith(CODEC_SUFFIX) for r in records) else []),
    )
    ev = Evaluation(cfg)
    ev.records = records
    try:
        summary = json.loads((csv_path.parent / "summary.json").read_text())
        ev.robot_slowdown = summary.get("robot_slowdown_busy_loop")
    except (OSError, ValueError):
        pass
    ev._annotate()
    write_csv(csv_path, ev.records)
    text, goals = render_report(ev.records, cfg.dilation, cfg.model)
    text += "\n" + ev.dilation_note(ev.summary_dict(goals))
    (csv_path.parent / "tables.md").write_text(text + "\n")
    print(text)
    if ev.problems:
        print("\nproblems:\n  " + "\n  ".join(ev.problems[:30]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/evaluate."""
    args = build_parser().parse_args(argv)
    try:
        if args.from_csv and args.repredict:
            return repredict(args)
        if args.from_csv:
            records = read_csv(args.from_csv)
            ks = [float(r["k"]) for r in records if math.isfinite(float(r.get("k", float("nan"))))]
            k = float(args.dilation) if args.dilation != "auto" else (ks[0] if ks else 1.0)
            title = next((str(r["model"]) for r in records if r.get("model")), args.model)
            text, _ = render_report(records, k, title)
            print(text)
            from intradp_ros.eval.plots import plot_run

            for p in plot_run(records, Path(args.out), "eval", None, k):
                print(f"wrote {p}")
            return 0
        cfg = EvalConfig(
            model=args.model,
            input_size=args.input_size,
            grid_xzy=args.grid_xzy,
            systems=[s for s in args.systems.split(",") if s],
            traces=[t for t in args.traces.split(",") if t],
            frames=args.frames,
            warmup=args.warmup,
            robot_cpu=args.robot_cpu,
            dilation=None if args.dilation == "auto" else float(args.dilation),
            rate_hz=args.rate,
            frame_budget=args.frame_budget,
            bag=args.bag,
            out=args.out,
            frame_timeout=args.frame_timeout,
            startup_timeout=args.startup_timeout,
            gap=args.gap,
            server_device=args.server_device,
            deadline=args.deadline,
            solver_seconds=args.solver_seconds,
            grid_buckets=args.grid_buckets,
            extra_client=_pairs(args.client_arg),
            extra_server=_pairs(args.server_arg),
            codecs=[v for v in args.codecs.split(",") if v],
            key_file=args.key_file,
        )
        return Evaluation(cfg).run()
    except (TestbedError, ValueError, OSError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evaluate: interrupted; the testbed was torn down", file=sys.stderr)
        return 130
