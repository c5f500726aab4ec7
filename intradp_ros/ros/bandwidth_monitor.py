"""The robot-side bandwidth monitor node (docs/bandwidth_monitor.md).

- Active probes: timed calls of `/intradp/<robot>/probe` (BandwidthProbe, served by the server's
  bandwidth_probe_server) while the link is idle, within a duty-cycle budget (intradp_ros.core.bandwidth_probe).
- Passive samples: from the client's InferenceStats on `/intradp/<robot>/stats` (the larger of bytes_up /
  bytes_down over transmit_s, frames with at least `passive_min_bytes`); the same messages tell when tiles move.
- A robust predictor and bucket hysteresis (intradp_ros.core.bandwidth).
- Publishes intradp_ros/BandwidthEstimate on `/intradp/<robot>/bandwidth` at `rate` Hz and a latched
  intradp_ros/PlanSwitch on `/intradp/<robot>/plan` for the first bucket and every bucket change.

It measures goodput only; it never reads a configured shaping rate. Settings: command line, else private
parameters of the same name (launch/bandwidth_monitor.launch).
"""

from __future__ import annotations

import argparse
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import rospy
from std_msgs.msg import Header

from intradp_ros.core.bandwidth import (
    DEFAULT_BUCKETS_MBYTE,
    BandwidthPredictor,
    BandwidthSample,
    BucketHysteresis,
    InvalidSample,
    Prediction,
    PredictorConfig,
    bytes_per_s_to_mbit,
    parse_bucket_grid,
)
from intradp_ros.core.bandwidth_plans import (
    PlanChoice,
    PlanChoiceError,
    choices_from_grid,
    describe,
    load_plan_table_choices,
)
from intradp_ros.core.bandwidth_probe import (
    LinkActivity,
    ProbeCall,
    ProbeConfig,
    DutyBudget,
    passive_sample,
    plan_probe,
    probe_bytes,
    probe_sample,
)
from intradp_ros.core.health import Health, monitor_status
from intradp_ros.msg import BandwidthEstimate, InferenceStats, PlanSwitch
from intradp_ros.ros.diagnostics import NodeDiagnostics
from intradp_ros.ros.probe_server import probe_service_name, validate_robot
from intradp_ros.srv import BandwidthProbe

KIB = 1024


@dataclass
class MonitorSettings:
    """Everything the node is configured with (validated by the dataclasses it builds)."""

    robot: str = "robot1"  # the clients' default too
    rate_hz: float = 5.0
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    confirm_updates: int = 3
    jump_ratio: float = 0.3
    choices: List[PlanChoice] = field(default_factory=lambda: choices_from_grid(DEFAULT_BUCKETS_MBYTE))
    passive_min_bytes: int = 256 * KIB
    probes_enabled: bool = True

    def __post_init__(self) -> None:
        validate_robot(self.robot)
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f"rate must be > 0 Hz, got {self.rate_hz!r}")
        if not self.choices:
            raise ValueError("no buckets")


class MonitorCore:
    """Samples in, estimates and plan switches out; no rospy calls (publishers are injected), so tests can drive it."""

    def __init__(
        self,
        settings: MonitorSettings,
        publish_switch: Callable[[PlanSwitch], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.predictor = BandwidthPredictor(settings.predictor)
        self.hysteresis = BucketHysteresis(
            [c.bucket_mbyte_per_s for c in settings.choices], settings.confirm_updates, settings.jump_ratio
        )
        self.activity = LinkActivity()
        self.budget = DutyBudget(settings.probe.duty_window_s)
        self._publish_switch = publish_switch
        self._lock = threading.Lock()
        self.switches = 0
        self.dropped_stats = 0
        self.last_sample_at: Optional[float] = None  # clock() of the newest sample (diagnostics: freshness)

    # ---- samples ------------------------------------------------------------------------------------
    def add_sample(self, sample: BandwidthSample) -> Optional[Prediction]:
        """Feed one sample; publishes a PlanSwitch when the bucket changes. Returns the new prediction."""
        with self._lock:
            self.predictor.add(sample)
            self.last_sample_at = self.clock()
            pred = self.predictor.predict(sample.stamp)
            assert pred is not None
            bucket = self.hysteresis.update(pred.mbyte_per_s)
        if bucket is not None:
            self.switches += 1
            self._publish_switch(self.make_switch(bucket, pred))
        return pred

    def make_switch(self, bucket: int, pred: Prediction) -> PlanSwitch:
        choice = self.settings.choices[bucket]
        return PlanSwitch(
            header=Header(stamp=_ros_now()),
            robot=self.settings.robot,
            mode=choice.mode,
            plan_id=choice.plan_id,
            plan_name=choice.plan_name,
            bucket_mbyte_per_s=choice.bucket_mbyte_per_s,
            estimate_mbit_per_s=pred.mbit_per_s,
            predicted_latency_s=choice.predicted_latency_s,
        )

    def on_stats(self, msg: InferenceStats) -> Optional[str]:
        """Handle one InferenceStats: link activity plus a passive sample. Returns why it was dropped, if it was."""
        now = self.clock()
        if msg.robot and msg.robot != self.settings.robot:
            self.dropped_stats += 1
            return f"stats for robot {msg.robot!r} on {self.settings.robot!r}'s topic"
        latency = float(msg.latency_s)
        if not math.isfinite(latency) or latency < 0:
            self.dropped_stats += 1
            return f"latency_s={msg.latency_s!r}"
        with self._lock:
            self.activity.on_frame(now, latency)
        if msg.error or msg.fell_back_local:
            return None  # its timing is not the link's
        try:
            sample = passive_sample(
                int(msg.bytes_up), int(msg.bytes_down), float(msg.transmit_s), now, self.settings.passive_min_bytes
            )
        except InvalidSample as err:
            self.dropped_stats += 1
            return str(err)
        if sample is not None:
            try:
                self.add_sample(sample)
            except InvalidSample as err:
                self.dropped_stats += 1
                return str(err)
        return None

    # ---- estimate -----------------------------------------------------------------------------------
    def estimate_msg(self) -> Optional[BandwidthEstimate]:
        """The BandwidthEstimate to publish now (None before the first sample; samples=0 once all aged out)."""
        with self._lock:
            pred = self.predictor.predict(self.clock())
            if pred is None:
                pred = self.predictor.last_prediction
                if pred is None:
                    return None
                pred = Prediction(
                    pred.bytes_per_s, pred.raw_bytes_per_s, pred.margin, 0, 0, 0, pred.last_sample_bytes_per_s
                )
        return BandwidthEstimate(
            header=Header(stamp=_ros_now()),
            mbit_per_s=pred.mbit_per_s,
            raw_mbit_per_s=bytes_per_s_to_mbit(pred.raw_bytes_per_s),
            last_sample_mbit_per_s=bytes_per_s_to_mbit(pred.last_sample_bytes_per_s),
            error_margin=pred.margin,
            samples=pred.samples,
            probe_samples=pred.probe_samples,
            passive_samples=pred.passive_samples,
        )

    def current_bytes_per_s(self) -> Optional[float]:
        with self._lock:
            pred = self.predictor.predict(self.clock()) or self.predictor.last_prediction
        return None if pred is None else pred.raw_bytes_per_s

    # ---- probe scheduling ---------------------------------------------------------------------------
    def probe_calls(self, direction: str) -> List[ProbeCall]:
        """The calls of the next probe, sized from the current estimate."""
        return plan_probe(direction, probe_bytes(self.current_bytes_per_s(), self.settings.probe), self.settings.probe)

    def expected_probe_s(self, calls: Sequence[ProbeCall]) -> float:
        """Link time the probe should take at the current estimate (the initial size's guess: 0.25 s)."""
        rate = self.current_bytes_per_s()
        if rate is None:
            return 0.25
        return sum(c.payload_bytes + c.reply_bytes for c in calls) / rate

    def may_probe(self, now: float, expected_s: float) -> bool:
        """Link idle long enough, the next frame not due before the probe ends, and the duty budget allows it."""
        cfg = self.settings.probe
        with self._lock:
            running = self.activity.inference_running(now, cfg.active_window_s)
            duty = cfg.busy_duty if running else cfg.idle_duty
            return self.activity.probe_fits(now, expected_s, cfg) and self.budget.allows(now, expected_s, duty)

    def record_probe(self, start: float, end: float, link_s: float = 0.0) -> None:
        """Charge a probe to the duty budget: its wall time, or `link_s` (its bytes at the estimated rate) when
        longer, so a lead-in that went through a shaper's burst allowance for free is still paid for."""
        with self._lock:
            self.budget.record(start, max(end, start + link_s))


class ProbeClient:
    """Persistent BandwidthProbe client with a per-call timeout (rospy has none: a watchdog closes the socket)."""

    def __init__(self, service: str, timeout_s: float, max_bytes: int) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self._zeros = bytes(max_bytes)
        self._proxy: Optional[rospy.ServiceProxy] = None

    def call(self, payload_bytes: int, reply_bytes: int) -> Any:
        """One call; raises rospy.ServiceException / ROSException on failure or timeout."""
        if self._proxy is None:
            rospy.wait_for_service(self.service, timeout=self.timeout_s)
            self._proxy = rospy.ServiceProxy(self.service, BandwidthProbe, persistent=True)
        proxy = self._proxy
        watchdog = threading.Timer(self.timeout_s, proxy.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            return proxy(payload=self._zeros[:payload_bytes], reply_bytes=reply_bytes)
        except BaseException:
            self.reset()
            raise
        finally:
            watchdog.cancel()

    def reset(self) -> None:
        if self._proxy is not None:
            try:
                self._proxy.close()
            except Exception:  # already broken: nothing to close
                pass
        self._proxy = None


class MonitorNode:
    """rospy wiring: publishers, the stats subscriber, the publish timer and the probe thread."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        ns = f"/intradp/{settings.robot}"
        self.estimate_pub = rospy.Publisher(f"{ns}/bandwidth", BandwidthEstimate, queue_size=10)
        self.plan_pub = rospy.Publisher(f"{ns}/plan", PlanSwitch, queue_size=1, latch=True)
        self.core = MonitorCore(settings, self._on_switch)
        self.stats_sub = rospy.Subscriber(f"{ns}/stats", InferenceStats, self._on_stats, queue_size=20)
        cfg = settings.probe
        self.client = ProbeClient(
            probe_service_name(settings.robot),
            cfg.call_timeout_s,
            max(cfg.max_bytes, cfg.omit_bytes, cfg.initial_bytes),
        )
        self._directions = itertools.cycle(["up", "down"] if cfg.direction == "both" else [cfg.direction])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe_loop, name="bandwidth-probe", daemon=True)
        self.timer: Optional[rospy.Timer] = None
        self.probes = 0
        self.probe_failures = 0
        self.last_probe_error = ""
        self.bucket: Optional[float] = None
        self.diagnostics: Optional[NodeDiagnostics] = None

    def health(self) -> Health:
        """Estimate freshness and probe failures (core.health.monitor_status)."""
        core = self.core
        age = None if core.last_sample_at is None else core.clock() - core.last_sample_at
        rate = core.current_bytes_per_s()
        return monitor_status(
            self.settings.robot,
            age,
            None if rate is None else bytes_per_s_to_mbit(rate),
            self.bucket,
            self.probes,
            self.probe_failures,
            self.last_probe_error,
            self.settings.predictor.max_age_s,
            self.settings.probes_enabled,
        )

    def start(self) -> None:
        self.timer = rospy.Timer(rospy.Duration(1.0 / self.settings.rate_hz), self._publish_estimate)
        if self.settings.probes_enabled:
            self._thread.start()
        self.diagnostics = NodeDiagnostics(self.settings.robot, {"bandwidth": self.health})
        rospy.loginfo(
            "bandwidth monitor for %s: %s, probes %s on %s",
            self.settings.robot,
            describe(self.settings.choices),
            "on" if self.settings.probes_enabled else "off",
            probe_service_name(self.settings.robot),
        )

    def stop(self) -> None:
        self._stop.set()
        if self.diagnostics is not None:
            self.diagnostics.stop()
        if self.timer is not None:
            self.timer.shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=self.settings.probe.call_timeout_s + 1.0)
        self.client.reset()

    def _on_switch(self, msg: PlanSwitch) -> None:
        self.bucket = float(msg.bucket_mbyte_per_s)
        self.plan_pub.publish(msg)
        rospy.loginfo(
            "plan switch: bucket %g MB/s (estimate %.2f Mbit/s) -> plan %d %s",
            msg.bucket_mbyte_per_s,
            msg.estimate_mbit_per_s,
            msg.plan_id,
            msg.plan_name,
        )

    def _on_stats(self, msg: InferenceStats) -> None:
        reason = self.core.on_stats(msg)
        if reason:
            rospy.logwarn_throttle(5.0, f"bandwidth monitor: dropped InferenceStats {msg.request_id}: {reason}")

    def _publish_estimate(self, _event: Any) -> None:
        msg = self.core.estimate_msg()
        if msg is not None:
            self.estimate_pub.publish(msg)

    # ---- probes -------------------------------------------------------------------------------------
    def _probe_loop(self) -> None:
        backoff = 0.0
        while not self._stop.is_set() and not rospy.is_shutdown():
            if backoff:
                self._stop.wait(backoff)
                backoff = 0.0
                continue
            direction = next(self._directions)
            calls = self.core.probe_calls(direction)
            expected = self.core.expected_probe_s(calls)
            # wait (bounded by the stop event) until the link is idle and the budget allows this probe
            while not self._stop.is_set() and not self.core.may_probe(time.monotonic(), expected):
                self._stop.wait(0.02)
            if self._stop.is_set():
                return
            try:
                self._run_probe(calls)
                self.probes += 1
            except (rospy.ServiceException, rospy.ROSException, InvalidSample, OSError) as err:
                self.probe_failures += 1
                self.last_probe_error = f"{type(err).__name__}: {err}"[:200]
                rospy.logwarn_throttle(10.0, f"bandwidth probe on {self.client.service} failed: {err}")
                backoff = 1.0

    def _run_probe(self, calls: Sequence[ProbeCall]) -> None:
        start = time.monotonic()
        link_s = self.core.expected_probe_s(calls)
        try:
            for call in calls:
                t0 = time.monotonic()
                resp = self.client.call(call.payload_bytes, call.reply_bytes)
                t1 = time.monotonic()
                if not call.timed:
                    continue
                received = int(resp.received_bytes) if call.direction == "up" else len(resp.payload)
                self.core.add_sample(probe_sample(call, t1 - t0, t1, received))
        finally:
            self.core.record_probe(start, time.monotonic(), link_s)


def _ros_now() -> rospy.Time:
    try:
        return rospy.Time.now()
    except rospy.exceptions.ROSInitException:  # no node (unit tests): wall time
        return rospy.Time.from_sec(time.time())


# ---- settings ---------------------------------------------------------------------------------------------
PARAMS: Dict[str, tuple] = {
    # name: (type, default, help)
    "robot": (str, "robot1", "robot name: topics /intradp/<robot>/{bandwidth,plan,stats,probe}"),
    "rate": (float, 5.0, "BandwidthEstimate publish rate (Hz)"),
    "probe_bytes": (int, ProbeConfig.initial_bytes, "timed probe size before the first estimate (bytes)"),
    "probe_min_bytes": (int, ProbeConfig.min_bytes, "smallest timed probe (bytes)"),
    "probe_max_bytes": (int, ProbeConfig.max_bytes, "largest timed probe (bytes)"),
    "probe_omit_bytes": (int, ProbeConfig.omit_bytes, "untimed lead-in per probe, >= the link's burst allowance"),
    "probe_target_s": (float, ProbeConfig.target_s, "timed part of a probe lasts about this long"),
    "probe_direction": (str, ProbeConfig.direction, "up, down or both (alternating)"),
    "busy_duty": (float, ProbeConfig.busy_duty, "max share of link time for probes while inference runs"),
    "idle_duty": (float, ProbeConfig.idle_duty, "max share of link time for probes while it does not"),
    "idle_gap": (float, ProbeConfig.idle_gap_s, "seconds without tile traffic before a probe"),
    "window": (int, PredictorConfig.window, "samples in the harmonic mean"),
    "max_age": (float, PredictorConfig.max_age_s, "samples older than this (s) leave the window"),
    "margin_window": (int, PredictorConfig.margin_window, "predictions whose error gives the margin"),
    "max_margin": (float, PredictorConfig.max_margin, "the error margin is clamped to this"),
    "hysteresis": (int, 3, "consecutive updates in a new bucket before switching"),
    "jump_ratio": (float, 0.3, "relative estimate change that switches at once"),
    "buckets": (str, "0.5:50:1", "bucket grid in MB/s: start:stop:step or a list of lower edges"),
    "plan_table": (str, "", "scheduler plan table JSON (its buckets and plans replace 'buckets')"),
    "passive_min_bytes": (int, 256 * KIB, "frames moving fewer bytes give no passive sample"),
    "probes": (bool, True, "run active probes (false: passive samples only)"),
}


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bandwidth_monitor",
        description="Robot-side bandwidth monitor: probes, "
        "passive samples, robust estimate, plan switches (docs/bandwidth_monitor.md).",
    )
    for name, (typ, default, text) in PARAMS.items():
        flag = "--" + name.replace("_", "-")
        if typ is bool:
            p.add_argument(flag, dest=name, type=_flag, metavar="BOOL", help=f"{text} (default {default})")
        else:
            p.add_argument(flag, dest=name, type=typ, help=f"{text} (default {default})")
    return p


def settings_from(values: Dict[str, Any]) -> MonitorSettings:
    """MonitorSettings from a name -> value dict (missing names take their defaults); ValueError when invalid."""
    v = {name: values.get(name, spec[1]) for name, spec in PARAMS.items()}
    for name, (typ, _, _) in PARAMS.items():
        v[name] = _flag(v[name]) if typ is bool else typ(v[name])
    if v["plan_table"]:
        try:
            choices = load_plan_table_choices(v["plan_table"])
        except PlanChoiceError as err:
            raise ValueError(str(err)) from None
    else:
        choices = choices_from_grid(parse_bucket_grid(v["buckets"]))
    probe = ProbeConfig(
        omit_bytes=v["probe_omit_bytes"],
        initial_bytes=v["probe_bytes"],
        min_bytes=v["probe_min_bytes"],
        max_bytes=v["probe_max_bytes"],
        target_s=v["probe_target_s"],
        direction=v["probe_direction"],
        busy_duty=v["busy_duty"],
        idle_duty=v["idle_duty"],
        idle_gap_s=v["idle_gap"],
    )
    predictor = PredictorConfig(
        window=v["window"],
        max_age_s=v["max_age"],
        margin_window=v["margin_window"],
        max_margin=v["max_margin"],
        shift_samples=min(PredictorConfig.shift_samples, v["window"]),
    )
    return MonitorSettings(
        robot=v["robot"],
        rate_hz=v["rate"],
        predictor=predictor,
        probe=probe,
        confirm_updates=v["hysteresis"],
        jump_ratio=v["jump_ratio"],
        choices=choices,
        passive_min_bytes=v["passive_min_bytes"],
        probes_enabled=v["probes"],
    )


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/bandwidth_monitor."""
    args = build_parser().parse_args(rospy.myargv(list(argv))[1:])
    rospy.init_node("bandwidth_monitor", anonymous=False)
    values = {}
    for name in PARAMS:
        given = getattr(args, name)
        values[name] = given if given is not None else rospy.get_param("~" + name, PARAMS[name][1])
    try:
        settings = settings_from(values)
    except (ValueError, TypeError) as err:
        rospy.logfatal(f"bandwidth_monitor: bad settings: {err}")
        return 2
    node = MonitorNode(settings)
    node.start()
    rospy.spin()
    node.stop()
    return 0
