"""Prediction, floor and non-model columns for the system benchmark's records (after the runs).

The testbed's nodes report what they measured (InferenceStats); this module adds, per frame:
- `predicted_s`: the cost model's latency for the plan that ran (found by its plan id in the plan book rebuilt
  from the same profiles the nodes cached: the server's profile, the client's own profile measured inside the CPU
  throttle), at the shaped link rate of that moment;
- `floor_s`: the frame's physical floor at that rate (eval/workloads.physical_floor);
- `nonmodel_cpu_s`: an explicit, documented estimate of the frame's non-model CPU work at its faithful cost: the
  wire work's measured seconds per byte on this CPU x the bytes each side sent, plus each lossless codec the plan
  names at this CPU's profiled encode/decode cost (`codec_charge_s`), charged x3 on the robot
  (ROBOT_CPU_OVER_HOST) and x1 on the server, x k (dilated like everything else). The testbed's client runs its
  codec inside the same CPU quota as the model, so this column shows how much the undilated figures would grow
  (the ROS-free engine benchmark charges the same cost inside the run: eval/bench_offload.py);
- `k`: the workload's dilation.

All times stay in the testbed's (dilated) seconds, like the records.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intradp_ros.eval.workloads import (
    ROBOT_CPU_OVER_HOST,
    SERVER_CPU_OVER_HOST,
    input_wire_bytes,
    output_bytes,
    physical_floor,
)

MB = 1e6
# the server's default plan_cache_tolerance (ros/server_node.py): a renewed handshake whose profile is close to a
# cached book's gets that book without a file of its own, so the prediction must look it up the same way
PLAN_CACHE_TOLERANCE = 0.25
# systems whose client sends the camera's own file for a plan that names no input codec (the demo's server-only
# with camera passthrough: its book plan is the raw server_only one); predicted as the bytes they really send
CAMERA_FILE_SYSTEMS = frozenset({"server_only_jpeg"})
HANDSHAKE_GLOB = "*_handshake_*.json"  # profiler.handshake_profiles_path: <fingerprint>_handshake_<robot>.json


def codec_seconds_per_byte(nbytes: int = 1 << 20, repeats: int = 5) -> float:
    """Median seconds per byte of encode_tile + decode_tile of one raw uint8 tile on this CPU."""
    import numpy as np

    from intradp_ros.core.codec import decode_tile, encode_tile
    from intradp_ros.core.tile import CODEC_RAW, Tile

    arr = np.random.default_rng(0).integers(0, 255, size=(nbytes // 1024, 1024), dtype=np.uint8)
    tile = Tile(1, 1, 0, 0, 0, arr.shape[0], arr, CODEC_RAW, 0, "robot1")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = decode_tile(encode_tile(tile))
        np.asarray(out.data).sum()  # touch the decoded bytes, as a consumer would
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] / arr.nbytes


def nonmodel_charge_s(bytes_up: int, bytes_down: int, per_byte_s: float, k: float) -> float:
    """Faithful non-model CPU seconds of one frame (dilated by k): the robot encodes what it sends up and decodes
    what comes down at ROBOT_CPU_OVER_HOST x this CPU's cost, the server the reverse at SERVER_CPU_OVER_HOST x."""
    half = per_byte_s / 2.0  # encode and decode take about the same time per byte
    robot = ROBOT_CPU_OVER_HOST * half * (bytes_up + bytes_down)
    server = SERVER_CPU_OVER_HOST * half * (bytes_up + bytes_down)
    return (robot + server) * k


def codec_charge_s(host_cm: Any, plan: Any, k: float) -> float:
    """Faithful CPU seconds (dilated by k) of the lossless codecs `plan` names: each coded transfer's encode and
    decode at this host's profiled cost (`host_cm`: the server's own, unthrottled profile on both sides), charged
    ROBOT_CPU_OVER_HOST x on the robot's side and SERVER_CPU_OVER_HOST x on the server's. The testbed's robot codes
    inside its CPU quota, whose dilated time makes it several times FASTER than this CPU in undilated terms (0.1
    CPU at k = 120: 12x), so the measured latency leaves a CPU-heavy codec (lossless WebP) nearly free; this
    charge says what it would cost a robot."""
    from intradp_ros.core.vocabulary import Direction

    codecs = dict(getattr(plan, "codecs", None) or {})
    if host_cm is None or not codecs:
        return 0.0
    cp = host_cm.compile(plan)
    total = 0.0
    for t, nbytes in zip(cp.transfers, cp.nbytes.tolist()):
        codec = codecs.get((t.node, t.direction))
        opt = None if codec is None else host_cm.codec_costs.option(t.node, t.direction, codec, nbytes)
        if opt is None:
            continue
        enc, dec = opt.encode_s(nbytes), opt.decode_s(nbytes)
        robot_s, server_s = (enc, dec) if t.direction == Direction.UP else (dec, enc)
        total += robot_s * ROBOT_CPU_OVER_HOST + server_s * SERVER_CPU_OVER_HOST
    return total * k


@dataclass
class PredictionContext:
    """The cost model and plan book a run is judged against."""

    cm: Any
    book: Any
    upload_bytes: int
    result_bytes: int
    k: float
    codec_per_byte_s: float
    notes: list[str]
    host_cm: Any = None  # both sides at this host's (the server profile's) speed: codec_charge_s


def as_sent(plan: Any, system: str, cm: Any) -> Any:
    """`plan` priced as the client of `system` sends it: for CAMERA_FILE_SYSTEMS, the whole input up as the camera
    file (CODEC_CAMERA) where the robot's profile offers that file and the plan names no codec for it; else as is."""
    if system not in CAMERA_FILE_SYSTEMS or getattr(plan, "codecs", None) is None:
        return plan
    from intradp_ros.core.plan_book import camera_ratio
    from intradp_ros.core.tile import CODEC_CAMERA
    from intradp_ros.core.vocabulary import Direction

    if camera_ratio(cm.robot) <= 0:
        return plan
    inputs = [n.index for n in plan.graph.nodes if n.is_input]
    if len(inputs) != 1 or (inputs[0], Direction.UP) in plan.codecs:
        return plan
    return plan.with_codecs({**plan.codecs, (inputs[0], Direction.UP): CODEC_CAMERA})


def annotate(records: Sequence[dict[str, Any]], ctx: PredictionContext) -> int:
    """Fill predicted_s, floor_s, nonmodel_cpu_s and k of every record with a result; returns how many frames
    ran a plan the rebuilt plan book does not hold (predicted with that mode's plan for the frame's rate)."""
    by_id = ctx.book.by_id()
    missing = 0
    for rec in records:
        rec["k"] = ctx.k
        rate_mbit = float(rec.get("link_mbit", float("nan")))
        if rec.get("error") or not (rate_mbit > 0 and math.isfinite(rate_mbit)):
            continue
        rate_Bps = rate_mbit * 1e6 / 8
        system = str(rec.get("system") or rec.get("mode"))
        plan = by_id.get(int(rec.get("plan_id", -1)))
        if plan is None:
            missing += 1
            plan = ctx.book.plan_for(system.partition("+")[0], rate_Bps / MB)  # the mode of "server_only+codecs"
        plan = as_sent(plan, system, ctx.cm)
        rec["predicted_s"] = float(ctx.cm.latency(plan, rate_Bps))
        rec["floor_s"] = physical_floor(
            ctx.cm.robot.device_only_s(), ctx.upload_bytes, ctx.cm.server.device_only_s(), ctx.result_bytes, rate_Bps
        ).floor_s
        rec["nonmodel_cpu_s"] = nonmodel_charge_s(
            int(rec.get("bytes_up", 0)), int(rec.get("bytes_down", 0)), ctx.codec_per_byte_s, ctx.k
        ) + codec_charge_s(ctx.host_cm, plan, ctx.k)
    return missing


def snapshot_handshake(client_cache_dir: Path, since: float, dest: Path) -> Path | None:
    """Copy to `dest` the handshake profiles a client wrote at or after `since` (wall clock: the start of its run),
    or None when it wrote none. The client keeps one such file per robot and graph, so the next run's client
    overwrites it: each run's copy lets the prediction price every system's frames with the profiles its own client
    sent (a device-only client's carry no camera entry, an Intra-DP client's do)."""
    import shutil

    folder = client_cache_dir / "profiles"
    if not folder.is_dir():
        return None
    fresh = []
    for f in folder.glob(HANDSHAKE_GLOB):
        mtime = f.stat().st_mtime
        if mtime >= since:
            fresh.append((mtime, f))
    if not fresh:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(max(fresh)[1], dest)
    return dest


def client_profiles(
    g: Any, client_cache_dir: Path, notes: list[str], handshake_file: Path | None = None
) -> tuple[Any, Any]:
    """(robot profile, server profile) from the client's cache: the two of an accepted handshake (the very
    profiles the server solved the book for: calibrated, with the camera entry): `handshake_file` (a run's own
    copy, `snapshot_handshake`) when given and readable, else the newest in the cache; else the client's
    per-operator profile (newest of the graph: the client's file is named by its own threads and CPU quota, which
    this process does not share) and no server profile; (None, None) when it has none."""
    import dataclasses

    from intradp_ros.core.profiler import Profile, ProfileError, read_handshake_profiles

    got = read_handshake_profiles(handshake_file, g) if handshake_file is not None else None
    if got is not None:
        how = f"the run's own client handshake ({handshake_file.name})"
    else:
        folder = client_cache_dir / "profiles"
        if not folder.is_dir():
            return None, None
        newest = sorted(folder.glob(f"{g.fingerprint}_handshake_*.json"), key=lambda f: f.stat().st_mtime)
        got = read_handshake_profiles(newest[-1], g) if newest else None
        how = "the client's last accepted handshake"
    if got is not None:
        robot, server = got
        if server is not None and server.mac_s_per_byte == 0.0:  # an unauthenticated server prices no tile MACs
            robot = dataclasses.replace(robot, mac_s_per_byte=0.0)
        notes.append(f"robot and server profiles: {how} (calibrated, camera entry)")
        return robot, server
    folder = client_cache_dir / "profiles"
    if not folder.is_dir():
        return None, None
    plain = [
        f
        for f in sorted(folder.glob(f"{g.fingerprint}_*.json"), key=lambda f: f.stat().st_mtime)
        if "_handshake_" not in f.name and not f.name.endswith(".calibration.json")
    ]
    for f in reversed(plain):
        try:
            robot = Profile.from_json(f.read_text(), g)
        except (OSError, ProfileError):
            continue
        notes.append("robot profile: the client's own (measured inside the CPU throttle, not calibrated)")
        return robot, None
    return None, None


def server_plan_book(server_argv: Sequence[str], g: Any, robot: Any, server: Any) -> tuple[Any, str]:
    """(book, how it was found) for the profiles a server started with `server_argv` priced: its cached book by
    the server's own keys (exact, else within its plan_cache_tolerance), else solved here with the same settings
    (said as such: the server may have solved for other profiles)."""
    from intradp_ros.core.plan_book import build_plan_book, lookup_plan_book, parse_grid
    from intradp_ros.core.power import PowerModel
    from intradp_ros.ros.server_node import server_book_keys, settings_from_argv, solver_config

    settings = settings_from_argv(server_argv)
    keys = server_book_keys(settings, g, robot, server)
    tolerance = float(settings.plan_cache_tolerance)
    book = lookup_plan_book(g, keys, tolerance)
    if book is not None:
        exact = "exact profiles" if keys.path.is_file() else f"close profiles, within {tolerance:g}"
        return book, f"plan book from the server's cache ({exact}; key {keys.context}_{keys.key})"
    book, _hit = build_plan_book(
        g,
        robot,
        server,
        parse_grid(settings.grid),
        PowerModel(),
        solver_config(settings),
        float(settings.deadline),
        keys.folder,
        codecs=str(settings.codecs),
    )
    return (
        book,
        f"plan book solved again: the server's cache has none for these profiles (key {keys.context}_{keys.key})",
    )


def capture_workload(model: str, options: dict[str, Any]) -> tuple[Any, Any]:
    """(graph, example input) of `model` built as the nodes build it (seed 0): captured once per evaluation."""
    import torch

    from intradp_ros.core import capture
    from intradp_ros.models.registry import build

    torch.manual_seed(0)
    net = build(model, **options)
    x = net.input_spec.example()
    return capture(net, x), x


def build_context(
    model: str,
    options: dict[str, Any],
    client_cache_dir: Path,
    grid_MBps: Sequence[float],
    deadline_s: float,
    solver_seconds: float,
    k: float,
    robot_slowdown: float | None,
    say: Callable[[str], None] = print,
    calibration_file: Path | None = None,
    server_argv: Sequence[str] | None = None,
    handshake_file: Path | None = None,
    captured: tuple[Any, Any] | None = None,
    codec_per_byte_s: float | None = None,
) -> PredictionContext:
    """Profiles as the nodes used them (`client_profiles`: the client's last accepted handshake; else its own
    per-operator profile, calibrated to the frames in `calibration_file` as the client calibrated it before its
    handshake; else the server profile x the measured robot slow-down), the plan book for
    them (the one the server solved, from its cache, when the profiles match), and the codec's cost on this CPU.
    `server_argv`: the server's command line; its plan book is then looked up with the server's own cache keys
    (ros/server_node.server_book_keys on the settings it parsed: grid, deadline, solver, codec policy, cache
    folder, tolerance), so a setting the server gets never makes the prediction solve another book.
    `handshake_file`: one run's copy of its client's handshake (`snapshot_handshake`); `captured`: the workload's
    (graph, example input) when the caller captured it already (`capture_workload`); `codec_per_byte_s`: the
    codec's cost when the caller measured it already."""
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.plan_book import build_plan_book, camera_ratio
    from intradp_ros.core.plan_table import default_cache_dir
    from intradp_ros.core.power import PowerModel
    from intradp_ros.core.profiler import cached_profile
    from intradp_ros.core.solver import SolverConfig

    notes = []
    g, x = captured if captured is not None else capture_workload(model, options)
    robot, server = client_profiles(g, Path(client_cache_dir), notes, handshake_file)
    if robot is not None and server is None and calibration_file is not None:
        from intradp_ros.core.calibration_file import read_frame_times
        from intradp_ros.core.profiler import calibrate_to_frames

        times = read_frame_times(calibration_file, g.fingerprint)
        if times is not None:
            robot, cal = calibrate_to_frames(robot, times)
            notes.append(f"calibrated as the client did (x{cal.factor:.3f} to its {cal.frames} frames)")
        else:
            notes.append("not calibrated (no calibration frames of this graph)")
    if server is None:
        from intradp_ros.models.profile_inputs import profile_input

        sample, what = profile_input(x)  # as the server profiles (its cache entry is shared)
        server, hit = cached_profile(g, [sample], default_cache_dir(), "cpu", codec_input=what, repeats=1)
        notes.append(f"server profile {'from the server cache' if hit else 'measured now'}")
    if robot is None:
        factor = robot_slowdown or 20.0
        robot = server.scaled(factor, "robot (server profile x measured slow-down)")
        notes.append(f"robot profile: server profile x {factor:.1f} (no client profile cached)")
    if server_argv is not None:
        book, how = server_plan_book(server_argv, g, robot, server)
        notes.append(how)
    else:
        book, hit = build_plan_book(
            g,
            robot,
            server,
            grid_MBps,
            PowerModel(),
            SolverConfig(max_seconds=solver_seconds),
            deadline_s,
            tolerance=PLAN_CACHE_TOLERANCE,
        )
        notes.append(f"plan book {'from cache (the one the server solved)' if hit else 'solved again'}")
    per_byte = codec_per_byte_s if codec_per_byte_s is not None else codec_seconds_per_byte()
    say(f"[evaluate] prediction: {'; '.join(notes)}; wire codec {per_byte * 1e9:.2f} ns/byte on this CPU")
    upload = input_wire_bytes(g)
    ratio = camera_ratio(robot)
    if 0 < ratio < 1:  # the camera file is the cheapest upload there is: the floor of every frame
        upload = int(upload * ratio)
        notes.append(f"floor: the input uploaded as the camera file ({ratio:.3f} of its pixels, observed)")
    return PredictionContext(
        CostModel(g, robot, server), book, upload, output_bytes(g), k, per_byte, notes, CostModel(g, server, server)
    )
