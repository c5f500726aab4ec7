"""The generic Intra-DP client node (robot side), a thin ROS shell; the KAPAO, AGRNav and torchvision clients plug
an adapter (sensor message -> model input, model output -> result messages) into it.

The session logic is ROS-free and shared with the IntraDP API (intradp_ros.core.robot_session): the handshake
protocol and link health decide whether a frame may use the server, `choose_plan` picks the mode's plan at the latest
PlanSwitch bucket, `FrameRunner` runs it within the frame deadline and finishes it locally when the server stops
answering; intradp_ros.results.frame_stats makes each frame's InferenceStats. This module wires them to ROS:
subscriptions (sensor frames into a one-slot mailbox, plan switches, link estimates, server reports), the
handshake service, the result and stats publishers, and four threads (session, watchdog, worker, stats).

One frame: the newest sensor message (queue_size 1, stale frames dropped) is converted and checked against the
model's input spec; the plan comes from the `mode` (intradp, device_only, server_only, dsccs, spso_ga: the same
node and code path for all). If the server stops answering (peer disconnected, heartbeat failed, a tile missing
past the frame's budget), the frame is finished locally and following frames run locally until an accepted
handshake/heartbeat and a connected tile link say the server is back; then distributed inference resumes without
a restart. Topic names: intradp_ros.ros.names (relative to the node's namespace).
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rospy
import torch
from std_msgs.msg import String

from intradp_ros.core.auth import AuthError, load_secret
from intradp_ros.core.cache import default_cache_dir
from intradp_ros.core.calibration_file import read_frame_times, write_frame_times
from intradp_ros.core.codecs.profile import CodecProfile
from intradp_ros.core.executor import ExecutionError
from intradp_ros.core.frame_slot import LatestFrameSlot
from intradp_ros.core.health import DropCounter
from intradp_ros.core.link_health import LinkHealth
from intradp_ros.core.log_throttle import LogThrottle
from intradp_ros.core.plan import Plan
from intradp_ros.core.plan_book import PlanBook, validate_mode
from intradp_ros.core.power import PowerModel
from intradp_ros.core.profiler import (
    Profile,
    ProfileError,
    cached_profile,
    calibrate_to_frames,
    handshake_profiles_path,
    measure_frames,
    quota_clock,
    write_handshake_profiles,
)
from intradp_ros.core.progress import ProgressBar
from intradp_ros.core.robot_session import (
    FrameRunner,
    ReportBox,
    SessionIds,
    SessionProtocol,
    choose_plan,
    deadline_miss,
)
from intradp_ros.core.session import ModelConfig, Replica
from intradp_ros.core.session_auth import ClientKeys
from intradp_ros.core.tile_ledger import report_arrivals
from intradp_ros.core.vocabulary import Side
from intradp_ros.models.replica import load_replica
from intradp_ros.msg import BandwidthEstimate, InferenceStats, PlanSwitch, ServerReport
from intradp_ros.results.frame_stats import FrameRecord, FrameStats, frame_stats
from intradp_ros.ros.diagnostics import RANDOM_WEIGHTS_BANNER, UNAUTHENTICATED_BANNER, client_diagnostics
from intradp_ros.ros.names import RobotNames
from intradp_ros.ros.node_params import (
    Spec,
    build_parser,
    cli_args,
    forward_core_logging,
    from_mapping,
    resolve,
    setting,
    spec_of,
)
from intradp_ros.ros.probe_server import validate_robot
from intradp_ros.ros.session_link import handshake_call
from intradp_ros.ros.session_transport import RecordingTransport, RobotClientHalf


@dataclass
class ClientSettings:
    """Settings every client node has (an adapter adds its own: they stay in the settings mapping)."""

    robot: str = setting("robot1", "robot name: topics <names_base>/<robot>/...")
    names_base: str = setting(
        "intradp",
        "base of the robot's topic and service names: relative (default) follows the node's namespace "
        "(<group ns>, ROS_NAMESPACE); '/intradp' reaches a server outside the namespace",
    )
    model: str = setting("", "registry model name")
    input_size: list = setting([], "model input H W (KAPAO, torchvision)")
    grid_xzy: list = setting([], "SCONet grid X Z Y")
    weights: str = setting("", "checkpoint (empty: seeded random weights; the server must use the same)")
    seed: int = setting(0, "init seed when no checkpoint is given")
    head: str = setting(
        "",
        "model head: KAPAO 'candidates' (sparse, default) or 'detections'; SCONet 'completion' "
        "(sparse, default) or 'logits'; the server must serve the same",
    )
    mode: str = setting("intradp", "intradp, device_only, server_only, dsccs or spso_ga")
    device: str = setting("cpu", "robot-side torch device")
    threads: int = setting(
        0,
        "torch intra-op threads (0: torch's default); under a CPU quota below one CPU use 1: "
        "several threads burn the quota in spin-waits (measured 2x slower frames at 0.1 CPU)",
    )
    deadline: float = setting(2.0, "per-frame deadline (s): distributed work gets this minus the local fallback time")
    max_age: float = setting(1.0, "frames older than this when the worker is free are dropped (s)")
    heartbeat_period: float = setting(0.5, "seconds between heartbeats / handshake attempts")
    handshake_timeout: float = setting(
        600.0,
        "longest wait for a full handshake: the server's first plan-book solve of a model takes minutes "
        "(measured 72 s for KAPAO-S); every timeout and retry is logged",
    )
    heartbeat_timeout: float = setting(1.0, "longest wait for a heartbeat answer (s)")
    report_timeout: float = setting(0.5, "longest wait for the server's report of a request before stats go out (s)")
    initial_bandwidth: float = setting(0.0, "bucket (MB/s) used before the first PlanSwitch; 0: the grid's middle")
    profile_repeats: int = setting(3, "profiling repeats per tile size for the client profile")
    calibrate_frames: int = setting(
        3,
        "device-only frames timed at start (after one warm-up) to scale the per-operator "
        "profile to the real frame time (a CPU quota makes short per-operator timings "
        "too fast); measured at every start unless calibration_file holds them; 0 disables",
    )
    cache_dir: str = setting("", "profile cache (default $INTRADP_CACHE or ~/.cache/intradp_ros)")
    join_cgroup_fd: int = setting(
        -1,
        "an open descriptor of a cgroup.procs file (inherited from the launcher) this process writes its pid to "
        "once the model is loaded: a benchmark starts the client outside the robot's CPU quota so building and "
        "capturing the model (minutes at 0.1 CPU: start-up, not robot compute) runs at full speed, while the "
        "profile, calibration and frames run inside (a descriptor, because `ip netns exec` hides /sys/fs/cgroup); "
        "-1: stay where started",
    )
    calibration_file: str = setting(
        "",
        "share the calibration frames between client starts (a benchmark's systems): read the device-only frame "
        "times from this JSON file when it holds them for this graph, else time them and write it; empty: time "
        "them at every start",
    )
    fallback_margin: float = setting(1.5, "local fallback time is budgeted as this many times the measured local time")
    key_file: str = setting(
        "",
        "shared secret file, mode 600, the same on the server (docs/security.md): authenticated handshake and "
        "tiles; empty: the link is unauthenticated (warned about at start and in /diagnostics)",
    )
    tile_stall_s: float = setting(
        2.0, "a subscriber of the robot's up tiles that accepts no byte for this long while tiles wait is dropped (s)"
    )


COMMON_SPEC: Spec = spec_of(ClientSettings)


class ClientAdapter:
    """What a concrete client provides; the runtime calls these from its worker thread."""

    input_type: Any = None
    default_input_topic = "input"

    def configure(self, settings: dict[str, Any]) -> None:
        """Read the adapter's own settings (raise ValueError for bad ones) before the runtime starts."""

    def model_options(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Build options beyond name and sizes (the output head), part of the model id the server must serve."""
        return {"head": settings["head"]} if settings.get("head") else {}

    def setup(self, runtime: ClientRuntime) -> None:
        """Create result publishers (runtime.settings holds every setting)."""

    def convert(self, msg: Any) -> tuple[torch.Tensor, Any]:
        """(model input, context for post-processing); raise ValueError (with the reason) for bad input."""
        raise NotImplementedError

    def codec_profiles(self) -> list[CodecProfile]:
        """Codec entries the adapter adds to the robot's profile (the KAPAO client's verified camera passthrough:
        its observed JPEG/pixel ratio). A change makes the session handshake again, so the plan book matches."""
        return []

    def profile_input(self, example: torch.Tensor) -> tuple[torch.Tensor, str]:
        """(input the robot's profile is measured on, its name): codec ratios need a realistic frame (a random
        example never compresses); `example` and "" unless the adapter has a real one. A cached profile whose
        codecs were measured on another input gets them measured again (core/profiler.cached_profile)."""
        return example, ""

    def postprocess(self, outputs: Any, ctx: Any) -> Any:
        raise NotImplementedError

    def publish(self, result: Any, ctx: Any, header: Any, request_id: int) -> None:
        raise NotImplementedError


def join_cgroup(procs_fd: int) -> None:
    """Move this whole process (every thread) into the cgroup whose `cgroup.procs` is open as `procs_fd` (v1 and
    v2 alike), then close it. Raises OSError naming the descriptor when it cannot: a client that should run
    throttled must not run unthrottled silently."""
    import os

    try:
        os.write(procs_fd, f"{os.getpid()}\n".encode())
    except OSError as e:
        raise OSError(f"cannot join the cgroup through descriptor {procs_fd}: {e}") from e
    finally:
        try:
            os.close(procs_fd)
        except OSError:
            pass


def client_keys(key_file: str, robot: str) -> ClientKeys:
    """The robot's session keys from its key file (AuthError for a bad file: the node refuses to start), or
    inert keys and a loud warning without one."""
    if key_file:
        keys = ClientKeys(load_secret(key_file), robot)
        rospy.loginfo("client %s: authenticated link (key file %s): handshakes and tiles are MACed", robot, key_file)
        return keys
    rospy.logwarn(UNAUTHENTICATED_BANNER, f"client {robot}")
    return ClientKeys(None, robot)


def model_config(settings: dict[str, Any], options: dict[str, Any] | None = None) -> ModelConfig:
    """The replica to load: model name and sizes from the settings, head options from the adapter."""
    d: dict[str, Any] = {"name": settings["model"], "seed": settings["seed"], "weights": settings["weights"]}
    d.update(options or {})
    if settings.get("input_size"):
        d["input_size"] = [int(v) for v in settings["input_size"]]
    if settings.get("grid_xzy"):
        d["grid_xzy"] = [int(v) for v in settings["grid_xzy"]]
    return ModelConfig.from_dict(d)


class ClientRuntime:
    """Frames in, distributed (or local) inference, results and stats out: ROS wiring around the robot session."""

    def __init__(self, adapter: ClientAdapter, settings: dict[str, Any]) -> None:
        self.adapter = adapter
        self.s = settings  # every setting, the adapter's included
        self.cfg: ClientSettings = from_mapping(ClientSettings, settings)
        self.robot = validate_robot(self.cfg.robot)
        self.names = RobotNames(self.robot, self.cfg.names_base)
        self.mode = validate_mode(self.cfg.mode)
        self.device = torch.device(self.cfg.device)
        if self.cfg.threads > 0:
            torch.set_num_threads(int(self.cfg.threads))
        t0 = time.perf_counter()
        self.replica: Replica = load_replica(model_config(settings, adapter.model_options(settings)), self.device)
        g = self.replica.graph
        if self.cfg.join_cgroup_fd >= 0:
            join_cgroup(self.cfg.join_cgroup_fd)
            rospy.loginfo("client %s: joined the robot's CPU cgroup after loading the model", self.robot)
        rospy.loginfo(
            "client %s: %s loaded in %.1f s (graph %s, %d nodes, weights %s), mode %s",
            self.robot,
            self.replica.model_id,
            time.perf_counter() - t0,
            g.fingerprint,
            len(g.nodes),
            self.replica.weights_fingerprint,
            self.mode,
        )
        if not settings["weights"]:
            rospy.logwarn(RANDOM_WEIGHTS_BANNER, f"client {self.robot}")
        self.device_plan = Plan.device_only(g)
        self.keys = client_keys(self.cfg.key_file, self.robot)
        self.transport = RecordingTransport(
            Side.ROBOT,
            self.robot,
            g,
            auth=self.keys.tiles,
            namespace=self.cfg.names_base,
            stall_s=self.cfg.tile_stall_s,
        )
        self.half = RobotClientHalf(g, self.transport, self.device, timeout=self.cfg.deadline, robot=self.robot)
        self.health = LinkHealth()
        # the bandwidth monitor takes its buckets and predicted latencies from the server's plan book
        self.book_pub = rospy.Publisher(self.names.plan_book, String, queue_size=1, latch=True)
        self.session = SessionProtocol(
            SessionIds.of(self.robot, self.replica),
            g,
            handshake_call(self.names, self.keys),
            self.health,
            on_book=self._on_book,
            revision=lambda: tuple(self.adapter.codec_profiles()),
        )
        self.runner = FrameRunner(
            self.half,
            self.device_plan,
            self.cfg.deadline,
            self.cfg.fallback_margin,
            self.health,
            label=f"client {self.robot}",
        )
        self.slot = LatestFrameSlot(self.cfg.max_age)
        self.profile: Profile | None = None
        self.bucket: float | None = self.cfg.initial_bandwidth or None
        self.estimate_mbit = 0.0
        self.power = PowerModel()
        self._infer_lock = threading.Lock()  # one inference at a time: sensor frames or calibration frames
        self.reports: ReportBox[ServerReport] = ReportBox(64)
        self._frames: queue.Queue[FrameRecord | None] = queue.Queue(maxsize=100)
        self._stop = threading.Event()
        self.frames_done = 0
        self.frames_dropped_bad = 0
        self._frame_log = LogThrottle(10.0)  # per-frame error lines, with counts
        self.drops = DropCounter()  # bad input by cause (unsupported_encoding, malformed), logged throttled
        self.deadline_misses = self.local_fallbacks = 0
        self.estimate_at: float | None = None
        self.stats_pub = rospy.Publisher(self.names.stats, InferenceStats, queue_size=20)
        self.subs = [
            rospy.Subscriber(self.names.plan, PlanSwitch, self._on_plan, queue_size=5),
            rospy.Subscriber(self.names.bandwidth, BandwidthEstimate, self._on_estimate, queue_size=5),
            rospy.Subscriber(self.names.server_report, ServerReport, self._on_report, queue_size=50),
        ]
        adapter.setup(self)
        self.diagnostics = client_diagnostics(self)
        self.dead_threads: list[str] = []  # threads that died while the node runs (the watchdog reports them)
        self.threads = [
            threading.Thread(target=self._guarded(f, n), name=n, daemon=True)
            for f, n in (
                (self._session_loop, "intradp-session"),
                (self._watchdog_loop, "intradp-watchdog"),
                (self._worker_loop, "intradp-worker"),
                (self._stats_loop, "intradp-stats"),
            )
        ]

    @property
    def book(self) -> PlanBook | None:
        return self.session.book

    # ------------------------------------------------------------------ lifecycle
    def start(self, input_topic: str) -> None:
        self.input_sub = rospy.Subscriber(
            input_topic, self.adapter.input_type, self.slot.put, queue_size=1, buff_size=64 << 20, tcp_nodelay=True
        )
        for t in self.threads:
            t.start()
        rospy.loginfo(
            "client %s: listening on %s, stats on %s",
            self.robot,
            rospy.resolve_name(input_topic),
            rospy.resolve_name(self.names.stats),
        )

    def stop(self) -> None:
        self._stop.set()
        self.diagnostics.stop()
        self.slot.close()
        try:
            self._frames.put_nowait(None)
        except queue.Full:
            pass
        for t in self.threads:
            t.join(3.0)
        self.half.close()

    # ------------------------------------------------------------------ subscriptions
    def _on_plan(self, msg: PlanSwitch) -> None:
        b = float(msg.bucket_mbyte_per_s)
        if (msg.robot and msg.robot != self.robot) or not math.isfinite(b) or b <= 0:
            rospy.logerr_throttle(10.0, f"client {self.robot}: ignored PlanSwitch (robot {msg.robot!r}, bucket {b!r})")
            return
        if b != self.bucket:
            rospy.loginfo(
                "client %s: plan switch to bucket %g MB/s (%s) from the next frame", self.robot, b, msg.plan_name
            )
        self.bucket = b

    def _on_book(self, plan_book_json: str) -> None:
        """A handshake was accepted: republish the book for the bandwidth monitor, show the new state at once."""
        self.book_pub.publish(String(data=plan_book_json))
        self._store_handshake_profiles()
        diagnostics = getattr(self, "diagnostics", None)  # the first handshake may precede the diagnostics
        if diagnostics is not None:
            diagnostics.force()

    def _store_handshake_profiles(self) -> None:
        """The profiles of the accepted handshake (sent and the server's) beside the client's profile cache, so the
        evaluation's prediction (eval/predict.py) rebuilds the very book the server solved."""
        cache = self.cfg.cache_dir or default_cache_dir()
        path = handshake_profiles_path(cache, self.replica.graph, self.robot)
        try:
            write_handshake_profiles(path, self.session.sent_profile_json, self.session.server_profile_json)
        except OSError as e:
            rospy.logwarn_throttle(60.0, f"client {self.robot}: handshake profiles not stored in {path}: {e}")

    @property
    def handshake_since(self) -> float | None:
        """Monotonic time the pending handshake began (None while a plan book is held)."""
        return self.session.waiting_since

    def _on_estimate(self, msg: BandwidthEstimate) -> None:
        if math.isfinite(msg.mbit_per_s) and msg.mbit_per_s >= 0:
            self.estimate_mbit = float(msg.mbit_per_s)
            self.estimate_at = time.monotonic()

    def _on_report(self, msg: ServerReport) -> None:
        if msg.robot and msg.robot != self.robot:
            return
        n = len(msg.in_node_ids)
        if len(msg.in_row_starts) != n or len(msg.in_stamps) != n:
            rospy.logerr_throttle(
                10.0, f"client {self.robot}: dropped malformed ServerReport of request {msg.request_id}"
            )
            return
        self.reports.put(int(msg.request_id), msg)

    # ------------------------------------------------------------------ session
    def _ensure_profile(self) -> Profile:
        if self.profile is None:
            t0 = time.perf_counter()
            cache = self.cfg.cache_dir or default_cache_dir()
            x, codec_input = self.adapter.profile_input(self.replica.example)
            with ProgressBar(f"client {self.robot}: profiling {self.replica.model_id}", unit="node") as bar:
                prof, hit = cached_profile(
                    self.replica.graph,
                    [x],
                    cache,
                    self.device,
                    repeats=self.cfg.profile_repeats,
                    progress=bar,
                    codec_input=codec_input,
                )
            rospy.loginfo(
                "client %s: per-operator profile %s in %.1f s (%.1f ms per device-only inference, cpu quota %s)",
                self.robot,
                "from cache" if hit else "measured",
                time.perf_counter() - t0,
                prof.device_only_s() * 1e3,
                prof.device.get("cpu_quota"),
            )
            self.profile = self._calibrated(prof)
        return self.profile

    def _profile_json(self) -> str:
        """The profile the handshake sends: the measured one plus the adapter's codec entries (camera)."""
        prof = self._ensure_profile()
        extra = self.adapter.codec_profiles()
        if extra:
            kinds = {(c.kind_name, c.codec) for c in extra}
            prof = prof.with_codecs([c for c in prof.codecs if (c.kind_name, c.codec) not in kinds] + extra)
        return prof.to_json()

    def _calibrated(self, prof: Profile) -> Profile:
        """`prof` scaled to `calibrate_frames` device-only frames timed now through the client's own executor
        (the local path), so plans are made for the robot as fast as it really is. Each frame holds the worker
        lock, so calibration frames and sensor frames never compete for the (possibly throttled) CPU."""
        n = int(self.cfg.calibrate_frames)
        if n <= 0:
            return prof

        def frame() -> None:
            with self._infer_lock:
                self.half.infer(self.device_plan, self.replica.example)

        try:
            shared = self.cfg.calibration_file
            times = read_frame_times(shared, self.replica.graph.fingerprint) if shared else None
            if times is None:
                times = measure_frames(frame, n, warmup=1, clock=quota_clock())  # CPU time / quota: load-free
                if shared:
                    write_frame_times(shared, self.replica.graph.fingerprint, times)
            else:
                rospy.loginfo("client %s: calibration frames read from %s", self.robot, shared)
            calibrated, cal = calibrate_to_frames(prof, times)
        except (ExecutionError, ProfileError) as e:
            rospy.logwarn(
                "client %s: profile not calibrated (%s): planning with the per-operator profile", self.robot, e
            )
            return prof
        rospy.loginfo(
            "client %s: profile calibrated to %d whole frames: per-operator sum %.1f ms, measured "
            "device-only frame %.1f ms (median), factor %.3f",
            self.robot,
            cal.frames,
            cal.raw_s * 1e3,
            cal.measured_s * 1e3,
            cal.factor,
        )
        if self.runner.local_s is None:
            self.runner.local_s = cal.measured_s
        return calibrated

    def _session_loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.session.step(self._profile_json, self.cfg.handshake_timeout, self.cfg.heartbeat_timeout)
            except Exception as e:  # noqa: BLE001 - the session thread must survive anything; frames run locally
                rospy.logerr("client %s: session error: %s: %s", self.robot, type(e).__name__, e)
                self.session.on_error(f"session error: {e}")
                self._stop.wait(max(1.0, self.cfg.heartbeat_period))
                continue
            if wait:
                self._stop.wait(self.cfg.heartbeat_period)

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._log(self.runner.on_peer(self.transport.peer_connected()))
            except Exception as e:  # noqa: BLE001 - keep watching
                rospy.logerr_throttle(10.0, f"client {self.robot}: watchdog error: {e}")
            self._check_threads()

    def _guarded(self, loop: Any, name: str) -> Any:
        """`loop` run so that an exception escaping it is logged with its cause before the thread ends."""

        def run() -> None:
            try:
                loop()
            except Exception as e:  # noqa: BLE001 - reported here, then by the watchdog and diagnostics (ERROR)
                rospy.logerr("client %s: thread %s died: %s: %s", self.robot, name, type(e).__name__, e)

        return run

    def _check_threads(self) -> None:
        """A node thread that ended while the node runs is reported once (log + diagnostics ERROR), never silent."""
        for t in self.threads:
            if t.ident is not None and not t.is_alive() and not self._stop.is_set() and t.name not in self.dead_threads:
                self.dead_threads.append(t.name)
                rospy.logerr(
                    "client %s: thread %s stopped: %s; restart the node",
                    self.robot,
                    t.name,
                    "no more frames are processed" if t.name == "intradp-worker" else "the node is degraded",
                )
                diagnostics = getattr(self, "diagnostics", None)
                if diagnostics is not None:
                    diagnostics.force()

    def _log(self, line: str | None) -> None:
        if line:
            rospy.loginfo("client %s: %s", self.robot, line)

    # ------------------------------------------------------------------ frames
    def _worker_loop(self) -> None:
        spec = self.replica.example
        while not self._stop.is_set():
            item = self.slot.take(0.5)
            if item is None:
                continue
            _arrival, msg = item
            if self.slot.dropped:  # counted in InferenceStats and diagnostics too
                rospy.logwarn_throttle(
                    10.0,
                    f"client {self.robot}: {self.slot.stale} frames dropped as stale (older than max_age "
                    f"{self.cfg.max_age:g} s), {self.slot.replaced} replaced by newer ones: frames come faster "
                    "than the client finishes them",
                )
            with self._infer_lock:  # a calibration frame may be running: the frame's clock starts after it
                self._process(msg, spec)

    def _process(self, msg: Any, spec: torch.Tensor) -> None:
        start = time.time()
        try:
            x, ctx = self.adapter.convert(msg)
            if tuple(x.shape) != tuple(spec.shape) or x.dtype != spec.dtype:
                raise ValueError(
                    f"input {tuple(x.shape)} {x.dtype} does not match the model's {tuple(spec.shape)} {spec.dtype}"
                )
        except (ValueError, TypeError) as e:
            self.frames_dropped_bad += 1
            cause = getattr(e, "kind", "malformed")
            if self.drops.record(cause, str(e)):  # the first of each cause at once, then every 10 s with the count
                frame_id = getattr(msg.header, "frame_id", "")
                n = self.drops.count(cause)
                rospy.logerr("client %s: dropped frame %s (%s, %d so far): %s", self.robot, frame_id, cause, n, e)
            return
        try:
            self._run_frame(msg, x, ctx, start)
        except Exception as e:  # noqa: BLE001 - one broken frame must not stop the node
            if n := self._frame_log.hit(f"frame failed {type(e).__name__}"):
                rospy.logerr("client %s: frame failed (%d such frames): %s: %s", self.robot, n, type(e).__name__, e)

    def _run_frame(self, msg: Any, x: torch.Tensor, ctx: Any, start: float) -> None:
        choice = choose_plan(self.mode, self.book, self.bucket, self.health.distributed_allowed(), self.device_plan)
        out = self.runner.run(choice, (x,), elapsed_s=time.time() - start)
        result = self.adapter.postprocess(out.outputs, ctx)
        self.adapter.publish(result, ctx, msg.header, out.request_id)
        end = time.time()
        error = deadline_miss(start, end, self.cfg.deadline)
        self.local_fallbacks += int(out.fell_back)
        if error:
            self.deadline_misses += 1
            rospy.logwarn_throttle(5.0, f"client {self.robot}: {error}")
        frame = FrameRecord(
            msg.header,
            start,
            end,
            out.request_id,
            out.plan,
            out.distributed,
            out.fell_back,
            out.idle,
            error,
            self.estimate_mbit,
        )
        self.frames_done += 1
        try:
            self._frames.put_nowait(frame)
        except queue.Full:
            rospy.logwarn_throttle(5.0, f"client {self.robot}: stats queue full, stats of a frame dropped")

    # ------------------------------------------------------------------ stats
    def _stats_loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._frames.get(timeout=0.5)
            except queue.Empty:
                continue
            if frame is None:
                return
            try:
                self.stats_pub.publish(self.stats_for(frame))
            except Exception as e:  # noqa: BLE001 - stats must never stop the node
                if n := self._frame_log.hit("stats failed"):
                    rospy.logerr(
                        "client %s: stats of request %d failed (%d such): %s", self.robot, frame.request_id, n, e
                    )

    def frame_stats(self, f: FrameRecord) -> FrameStats:
        """The ROS-free statistics of one frame (waits up to report_timeout for the server's report)."""
        report = self.reports.take(f.request_id, self.cfg.report_timeout) if f.expects_report else None
        sent, recv = self.transport.take_records(f.request_id)
        arrivals = (
            None if report is None else report_arrivals(report.in_node_ids, report.in_row_starts, report.in_stamps)
        )
        server_s = float(report.server_compute_s) if report is not None else 0.0
        return frame_stats(f, self.robot, self.replica.model_id, self.mode, sent, recv, arrivals, server_s, self.power)

    def stats_for(self, f: FrameRecord) -> InferenceStats:
        """InferenceStats of one frame."""
        stats = dataclasses.replace(
            self.frame_stats(f),
            frames_dropped_stale=self.slot.stale,
            frames_dropped_replaced=self.slot.replaced,
            frames_dropped_bad=self.frames_dropped_bad,
        )
        return InferenceStats(header=f.stamp, **stats.fields())


def run_client(adapter: ClientAdapter, prog: str, description: str, spec: Spec, argv: Sequence[str]) -> int:
    """Parse settings (defaults < private params < command line), start the runtime, spin."""
    full: Spec = dict(COMMON_SPEC)
    full.update(spec)
    full.setdefault("input_topic", (str, adapter.default_input_topic, "sensor topic"))
    args = build_parser(prog, description, full).parse_args(cli_args(argv))
    rospy.init_node(prog, anonymous=False)
    forward_core_logging()
    try:
        settings = resolve(full, args)
        validate_mode(settings["mode"])
        adapter.configure(settings)
        runtime = ClientRuntime(adapter, settings)
    except (ValueError, TypeError, OSError, AuthError) as e:
        rospy.logfatal(f"{prog}: {e}")
        return 2
    runtime.start(settings["input_topic"])
    rospy.on_shutdown(runtime.stop)
    rospy.spin()
    return 0
