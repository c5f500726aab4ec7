"""The generic Intra-DP client runtime (robot side); the KAPAO, AGRNav and torchvision clients plug an adapter
(sensor message -> model input, model output -> result messages) into it.

One frame: the newest sensor message (queue_size 1, a one-slot mailbox, stale frames dropped) is converted
and checked against the model's input spec; the plan comes from the `mode` (intradp, device_only, server_only,
dsccs, spso_ga: the same node and code path for all) and the latest PlanSwitch bucket; the engine's client half
runs it, with a per-frame deadline. If the server stops answering (peer disconnected, heartbeat failed, a tile
missing past the frame's budget), the frame is finished locally and following frames run locally until an
accepted handshake/heartbeat and a connected tile link say the server is back; then distributed inference
resumes without a restart. After each frame: the result, and InferenceStats on /intradp/<robot>/stats whose
breakdown adds up (robot_compute_s + robot_transmit_only_s + robot_wait_s == latency_s) and whose bytes are the
payload sizes of the tiles that were delivered (up: listed by the server's report, or without one written to
the link; down: received), so a frame's bytes over its transmit time is a real link rate.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import rospy
import torch

from intradp_ros.core.executor import ExecutionError
from intradp_ros.core.frame_slot import LatestFrameSlot
from intradp_ros.core.frame_timing import breakdown
from intradp_ros.core.health import DropCounter
from intradp_ros.core.link_health import LinkHealth
from intradp_ros.core.plan import UP, Plan
from intradp_ros.core.plan_book import MODES, PlanBook, PlanBookError, validate_mode
from intradp_ros.core.power import PowerModel
from intradp_ros.core.progress import ProgressBar
from intradp_ros.core.profiler import Profile, ProfileError, cached_profile, calibrate_to_frames, measure_frames
from intradp_ros.core.session import ModelConfig, Replica, load_replica
from intradp_ros.core.tile_ledger import frame_transfers, report_arrivals
from intradp_ros.msg import BandwidthEstimate, InferenceStats, PlanSwitch, ServerReport
from intradp_ros.ros.diagnostics import RANDOM_WEIGHTS_BANNER, client_diagnostics
from intradp_ros.ros.handshake import NO_SESSION, call_handshake, full_request, heartbeat_request, server_report_topic
from intradp_ros.ros.node_params import Spec, build_parser, cli_args, forward_core_logging, resolve
from intradp_ros.ros.probe_server import validate_robot
from intradp_ros.ros.session_transport import RecordingTransport, RobotClientHalf

COMMON_SPEC: Spec = {
    "robot": (str, "robot1", "robot name: topics /intradp/<robot>/..."),
    "model": (str, "", "registry model name"),
    "input_size": (list, [], "model input H W (KAPAO, torchvision)"),
    "grid_xzy": (list, [], "SCONet grid X Z Y"),
    "weights": (str, "", "checkpoint (empty: seeded random weights; the server must use the same)"),
    "seed": (int, 0, "init seed when no checkpoint is given"),
    "head": (
        str,
        "",
        "model head: KAPAO 'candidates' (sparse, default) or 'detections'; SCONet 'completion' "
        "(sparse, default) or 'logits'; the server must serve the same",
    ),
    "mode": (str, "intradp", "intradp, device_only, server_only, dsccs or spso_ga"),
    "device": (str, "cpu", "robot-side torch device"),
    "threads": (
        int,
        0,
        "torch intra-op threads (0: torch's default); under a CPU quota below one CPU use 1: "
        "several threads burn the quota in spin-waits (measured 2x slower frames at 0.1 CPU)",
    ),
    "deadline": (float, 2.0, "per-frame deadline (s): distributed work gets this minus the local fallback time"),
    "max_age": (float, 1.0, "frames older than this when the worker is free are dropped (s)"),
    "heartbeat_period": (float, 0.5, "seconds between heartbeats / handshake attempts"),
    "handshake_timeout": (
        float,
        600.0,
        "longest wait for a full handshake: the server's first plan-book solve of a model takes minutes "
        "(measured 72 s for KAPAO-S); every timeout and retry is logged",
    ),
    "heartbeat_timeout": (float, 1.0, "longest wait for a heartbeat answer (s)"),
    "report_timeout": (float, 0.5, "longest wait for the server's report of a request before stats go out (s)"),
    "initial_bandwidth": (float, 0.0, "bucket (MB/s) used before the first PlanSwitch; 0: the grid's middle"),
    "profile_repeats": (int, 3, "profiling repeats per tile size for the client profile"),
    "calibrate_frames": (
        int,
        3,
        "device-only frames timed at start (after one warm-up) to scale the per-operator "
        "profile to the real frame time (a CPU quota makes short per-operator timings "
        "too fast); measured at every start, never cached; 0 disables",
    ),
    "cache_dir": (str, "", "profile cache (default $INTRADP_CACHE or ~/.cache/intradp_ros)"),
    "fallback_margin": (float, 1.5, "local fallback time is budgeted as this many times the measured local time"),
}


@dataclass
class Frame:
    """One processed frame, handed to the stats thread."""

    header: Any
    start: float
    end: float
    request_id: int
    plan: Plan
    distributed: bool
    fell_back: bool
    idle: List[Tuple[float, float]]
    error: str = ""
    expect_report: bool = False
    bandwidth_mbit: float = 0.0


class ClientAdapter:
    """What a concrete client provides; the runtime calls these from its worker thread."""

    input_type: Any = None
    default_input_topic = "input"

    def configure(self, settings: Dict[str, Any]) -> None:
        """Read the adapter's own settings (raise ValueError for bad ones) before the runtime starts."""

    def model_options(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """Build options beyond name and sizes (the output head), part of the model id the server must serve."""
        return {"head": settings["head"]} if settings.get("head") else {}

    def setup(self, runtime: "ClientRuntime") -> None:
        """Create result publishers (runtime.settings holds every setting)."""

    def convert(self, msg: Any) -> Tuple[torch.Tensor, Any]:
        """(model input, context for post-processing); raise ValueError (with the reason) for bad input."""
        raise NotImplementedError

    def postprocess(self, outputs: Any, ctx: Any) -> Any:
        raise NotImplementedError

    def publish(self, result: Any, ctx: Any, header: Any, request_id: int) -> None:
        raise NotImplementedError


def model_config(settings: Dict[str, Any], options: Optional[Dict[str, Any]] = None) -> ModelConfig:
    """The replica to load: model name and sizes from the settings, head options from the adapter."""
    d: Dict[str, Any] = {"name": settings["model"], "seed": settings["seed"], "weights": settings["weights"]}
    d.update(options or {})
    if settings.get("input_size"):
        d["input_size"] = [int(v) for v in settings["input_size"]]
    if settings.get("grid_xzy"):
        d["grid_xzy"] = [int(v) for v in settings["grid_xzy"]]
    return ModelConfig.from_dict(d)


class ClientRuntime:
    """Frames in, distributed (or local) inference, results and stats out."""

    def __init__(self, adapter: ClientAdapter, settings: Dict[str, Any]) -> None:
        self.adapter = adapter
        self.s = settings
        self.robot = validate_robot(settings["robot"])
        self.mode = validate_mode(settings["mode"])
        self.device = torch.device(settings["device"])
        if settings["threads"] > 0:
            torch.set_num_threads(int(settings["threads"]))
        t0 = time.perf_counter()
        self.replica: Replica = load_replica(model_config(settings, adapter.model_options(settings)), self.device)
        g = self.replica.graph
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
        self.transport = RecordingTransport("robot", self.robot, g)
        self.half = RobotClientHalf(g, self.transport, self.device, timeout=settings["deadline"], robot=self.robot)
        self.health = LinkHealth()
        self.slot = LatestFrameSlot(settings["max_age"])
        self.book: Optional[PlanBook] = None
        self.profile: Optional[Profile] = None
        self.bucket: Optional[float] = settings["initial_bandwidth"] or None
        self.estimate_mbit = 0.0
        self.local_s: Optional[float] = None
        self.power = PowerModel()
        self._distributed_running = False
        self._infer_lock = threading.Lock()  # one inference at a time: sensor frames or calibration frames
        self._reports: Dict[int, ServerReport] = {}
        self._reports_cv = threading.Condition()
        self._frames: "queue.Queue[Optional[Frame]]" = queue.Queue(maxsize=100)
        self._stop = threading.Event()
        self.frames_done = 0
        self.frames_dropped_bad = 0
        self.drops = DropCounter()  # bad input by cause (unsupported_encoding, malformed), logged throttled
        self.deadline_misses = self.local_fallbacks = 0
        self.estimate_at: Optional[float] = None
        self.handshake_since: Optional[float] = None
        ns = f"/intradp/{self.robot}"
        self.stats_pub = rospy.Publisher(f"{ns}/stats", InferenceStats, queue_size=20)
        self.subs = [
            rospy.Subscriber(f"{ns}/plan", PlanSwitch, self._on_plan, queue_size=5),
            rospy.Subscriber(f"{ns}/bandwidth", BandwidthEstimate, self._on_estimate, queue_size=5),
            rospy.Subscriber(server_report_topic(self.robot), ServerReport, self._on_report, queue_size=50),
        ]
        adapter.setup(self)
        self.diagnostics = client_diagnostics(self)
        self.threads = [
            threading.Thread(target=f, name=n, daemon=True)
            for f, n in (
                (self._session_loop, "intradp-session"),
                (self._watchdog_loop, "intradp-watchdog"),
                (self._worker_loop, "intradp-worker"),
                (self._stats_loop, "intradp-stats"),
            )
        ]

    # ------------------------------------------------------------------ lifecycle
    def start(self, input_topic: str) -> None:
        self.input_sub = rospy.Subscriber(
            input_topic, self.adapter.input_type, self.slot.put, queue_size=1, buff_size=64 << 20, tcp_nodelay=True
        )
        for t in self.threads:
            t.start()
        rospy.loginfo("client %s: listening on %s", self.robot, rospy.resolve_name(input_topic))

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
            rospy.logerr("client %s: ignored PlanSwitch (robot %r, bucket %r)", self.robot, msg.robot, b)
            return
        if b != self.bucket:
            rospy.loginfo(
                "client %s: plan switch to bucket %g MB/s (%s) from the next frame", self.robot, b, msg.plan_name
            )
        self.bucket = b

    def _on_estimate(self, msg: BandwidthEstimate) -> None:
        if math.isfinite(msg.mbit_per_s) and msg.mbit_per_s >= 0:
            self.estimate_mbit = float(msg.mbit_per_s)
            self.estimate_at = time.monotonic()

    def _on_report(self, msg: ServerReport) -> None:
        if msg.robot and msg.robot != self.robot:
            return
        n = len(msg.in_node_ids)
        if len(msg.in_row_starts) != n or len(msg.in_stamps) != n:
            rospy.logerr("client %s: dropped malformed ServerReport of request %d", self.robot, msg.request_id)
            return
        with self._reports_cv:
            self._reports[int(msg.request_id)] = msg
            while len(self._reports) > 64:
                self._reports.pop(next(iter(self._reports)))
            self._reports_cv.notify_all()

    # ------------------------------------------------------------------ session
    def _ensure_profile(self) -> Optional[Profile]:
        if self.profile is None:
            from intradp_ros.core.plan_table import default_cache_dir

            t0 = time.perf_counter()
            cache = self.s["cache_dir"] or default_cache_dir()
            with ProgressBar(f"client {self.robot}: profiling {self.replica.model_id}", unit="node") as bar:
                prof, hit = cached_profile(
                    self.replica.graph,
                    [self.replica.example],
                    cache,
                    self.device,
                    repeats=self.s["profile_repeats"],
                    progress=bar,
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

    def _calibrated(self, prof: Profile) -> Profile:
        """`prof` scaled to `calibrate_frames` device-only frames timed now through the client's own executor
        (the local path), so plans are made for the robot as fast as it really is. Each frame holds the worker
        lock, so calibration frames and sensor frames never compete for the (possibly throttled) CPU."""
        n = int(self.s["calibrate_frames"])
        if n <= 0:
            return prof

        def frame() -> None:
            with self._infer_lock:
                self.half.infer(self.device_plan, self.replica.example)

        try:
            times = measure_frames(frame, n, warmup=1)
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
        if self.local_s is None:
            self.local_s = cal.measured_s
        return calibrated

    def _session_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._session_steps()
            except Exception as e:  # noqa: BLE001 - the session thread must survive anything; frames run locally
                rospy.logerr("client %s: session error: %s: %s", self.robot, type(e).__name__, e)
                self._log(self.health.on_failure(f"session error: {e}"))
                self.book = None
                self._stop.wait(max(1.0, self.s["heartbeat_period"]))

    def _session_steps(self) -> None:
        r = self.replica
        ids = (self.robot, r.model_id, r.weights_fingerprint, r.graph_fingerprint)
        while not self._stop.is_set():
            if self.book is None:
                prof = self._ensure_profile()
                self.handshake_since = self.handshake_since or time.monotonic()
                rospy.loginfo(
                    "client %s: handshake sent, waiting up to %.0f s (a server's first plan-book solve takes minutes)",
                    self.robot,
                    self.s["handshake_timeout"],
                )
                out = call_handshake(self.robot, full_request(*ids, prof.to_json()), self.s["handshake_timeout"])
                if not out.accepted and out.response is None:
                    rospy.logwarn("client %s: handshake failed (%s): retrying", self.robot, out.reason)
                if out.accepted:
                    try:
                        self.book = PlanBook.from_json(out.response.plan_table_json, r.graph)
                    except PlanBookError as e:
                        rospy.logerr("client %s: server sent an unusable plan book: %s", self.robot, e)
                        out = None
                    else:
                        rospy.loginfo(
                            "client %s: handshake accepted by %s server (%d plans, buckets %g..%g MB/s)",
                            self.robot,
                            out.response.server_device,
                            len(self.book.plans),
                            self.book.buckets[0],
                            self.book.buckets[-1],
                        )
                        self._log(self.health.on_session(True, "handshake accepted"))
                        self.handshake_since = None
                        self.diagnostics.force()
                elif out.response is not None:
                    rospy.logerr_throttle(10.0, f"client {self.robot}: handshake refused: {out.reason}")
            else:
                out = call_handshake(self.robot, heartbeat_request(*ids), self.s["heartbeat_timeout"])
                if out.accepted:
                    self._log(self.health.on_session(True, "heartbeat answered"))
                else:
                    self._log(self.health.on_session(False, f"heartbeat failed: {out.reason}"))
                    if out.response is not None and out.reason == NO_SESSION:
                        rospy.logwarn("client %s: server lost the session (restarted?): handshaking again", self.robot)
                        self.book = None
                        continue
            self._stop.wait(self.s["heartbeat_period"])

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._watch()
            except Exception as e:  # noqa: BLE001 - keep watching
                rospy.logerr_throttle(10.0, f"client {self.robot}: watchdog error: {e}")

    def _watch(self) -> None:
        connected = self.transport.peer_connected()
        self._log(self.health.on_peer(connected))
        if not connected and self._distributed_running:
            if self.half.abort("server disconnected (tile link lost its peer)"):
                rospy.logwarn("client %s: server disconnected mid-frame: finishing it locally", self.robot)

    def _log(self, line: Optional[str]) -> None:
        if line:
            rospy.loginfo("client %s: %s", self.robot, line)

    # ------------------------------------------------------------------ frames
    def _choose(self) -> Tuple[Plan, bool]:
        book = self.book
        if self.mode == "device_only" or book is None or not self.health.distributed_allowed():
            return self.device_plan, False
        return book.plan_for(self.mode, self.bucket), True

    def _local(self, x: torch.Tensor) -> Any:
        t0 = time.perf_counter()
        out = self.half.infer(self.device_plan, x)
        dt = time.perf_counter() - t0
        self.local_s = dt if self.local_s is None else 0.8 * self.local_s + 0.2 * dt
        return out

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
                    f"{self.s['max_age']:g} s), {self.slot.replaced} replaced by newer ones: frames come faster "
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
            rospy.logerr("client %s: frame failed: %s: %s", self.robot, type(e).__name__, e)

    def _run_frame(self, msg: Any, x: torch.Tensor, ctx: Any, start: float) -> None:
        plan, distributed = self._choose()
        fell_back = False
        error = ""
        idle: List[Tuple[float, float]] = []
        if distributed:
            local_budget = (self.local_s or 0.0) * self.s["fallback_margin"]
            self.half.timeout = max(0.05, self.s["deadline"] - (time.time() - start) - local_budget)
            self._distributed_running = True
            try:
                outputs = self.half.infer(plan, x)
            except ExecutionError as e:
                fell_back = True
                error = ""
                self._log(self.health.on_failure(f"distributed frame failed: {e}"))
                rospy.logwarn(
                    "client %s: request %d failed (%s): finishing the frame locally",
                    self.robot,
                    self.half.last_request_id,
                    str(e)[:200],
                )
            finally:
                self._distributed_running = False
            rid = self.half.last_request_id
            idle = list(self.half.last_idle)
            if fell_back:
                self.local_fallbacks += 1
                outputs = self._local(x)
        else:
            outputs = self._local(x)
            rid = self.half.last_request_id
        result = self.adapter.postprocess(outputs, ctx)
        self.adapter.publish(result, ctx, msg.header, rid)
        end = time.time()
        if end - start > self.s["deadline"]:
            error = f"deadline missed: {end - start:.3f} s > {self.s['deadline']:g} s"
            self.deadline_misses += 1
            rospy.logwarn_throttle(5.0, f"client {self.robot}: {error}")
        expect = distributed and not fell_back and any(t.direction == UP for t in plan.transfers())
        frame = Frame(
            msg.header, start, end, rid, plan, distributed, fell_back, idle, error, expect, self.estimate_mbit
        )
        self.frames_done += 1
        try:
            self._frames.put_nowait(frame)
        except queue.Full:
            rospy.logwarn_throttle(5.0, f"client {self.robot}: stats queue full, stats of a frame dropped")

    # ------------------------------------------------------------------ stats
    def _wait_report(self, rid: int, timeout: float) -> Optional[ServerReport]:
        deadline = time.monotonic() + timeout
        with self._reports_cv:
            while rid not in self._reports:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._reports_cv.wait(left)
            return self._reports.pop(rid)

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
                rospy.logerr("client %s: stats of request %d failed: %s", self.robot, frame.request_id, e)

    def stats_for(self, f: Frame) -> InferenceStats:
        """InferenceStats of one frame (waits up to report_timeout for the server's report)."""
        report = self._wait_report(f.request_id, self.s["report_timeout"]) if f.expect_report else None
        sent, recv = self.transport.take_records(f.request_id)
        arrivals = (
            None if report is None else report_arrivals(report.in_node_ids, report.in_row_starts, report.in_stamps)
        )
        tx = frame_transfers(sent, recv, arrivals)  # only tiles that were delivered (see core/tile_ledger)
        b = breakdown(f.start, f.end, f.idle, tx.up_flight, tx.down_flight)
        energy = self.power.energy(b.latency_s, b.compute_s, b.transmit_only_s)
        plan = f.plan
        return InferenceStats(
            header=f.header,
            robot=self.robot,
            request_id=f.request_id,
            model=self.replica.model_id,
            mode=self.mode,
            plan_id=plan.plan_id,
            plan_name=plan.name,
            latency_s=b.latency_s,
            robot_compute_s=b.compute_s,
            robot_transmit_only_s=b.transmit_only_s,
            robot_wait_s=b.wait_s,
            server_compute_s=float(report.server_compute_s) if report is not None else 0.0,
            transmit_s=b.transmit_s,
            bytes_up=tx.bytes_up,
            bytes_down=tx.bytes_down,
            tiles_up=tx.tiles_up,
            tiles_down=tx.tiles_down,
            bandwidth_estimate_mbit_per_s=f.bandwidth_mbit,
            energy_j=energy,
            mean_power_w=energy / b.latency_s if b.latency_s > 0 else 0.0,
            fell_back_local=f.fell_back,
            error=f.error,
            frames_dropped_stale=self.slot.stale,
            frames_dropped_replaced=self.slot.replaced,
            frames_dropped_bad=self.frames_dropped_bad,
        )


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
        if settings["mode"] not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {settings['mode']!r}")
        adapter.configure(settings)
        runtime = ClientRuntime(adapter, settings)
    except (ValueError, TypeError, OSError) as e:
        rospy.logfatal(f"{prog}: {e}")
        return 2
    runtime.start(settings["input_topic"])
    rospy.on_shutdown(runtime.stop)
    rospy.spin()
    return 0
