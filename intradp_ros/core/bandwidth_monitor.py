"""The bandwidth monitor's logic without ROS: samples in, estimates and plan changes out, as plain objects.

`MonitorCore` owns the predictor, the bucket hysteresis, the probe duty budget and the link-activity tracker.
Time comes from an injected clock (tests drive it with a fake one); plan changes go to an injected callback as
`PlanChange` objects; `estimate()` returns an `EstimateReport`. `ros/bandwidth_monitor.py` is a thin shell that
turns these into ROS messages, runs the probe train over the BandwidthProbe service and logs through
`SwitchLogThrottle`, so a flapping link cannot flood the log.

The buckets come from, in order of precedence: a plan table file given to the node, the plan book the server
sent the client in the handshake (the client republishes it; `set_choices` swaps it in and re-announces the
current estimate's bucket under it), else a plain grid.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from intradp_ros.core.bandwidth import (
    DEFAULT_BUCKETS_MBYTE,
    BandwidthPredictor,
    BandwidthSample,
    BucketHysteresis,
    InvalidSample,
    Prediction,
    PredictorConfig,
    bytes_per_s_to_mbit,
    bytes_per_s_to_mbyte,
)
from intradp_ros.core.bandwidth_plans import PlanChoice, choices_from_grid
from intradp_ros.core.bandwidth_probe import (
    DutyBudget,
    LinkActivity,
    ProbeCall,
    ProbeConfig,
    TrainResult,
    call_timeout,
    passive_sample,
    plan_probe,
    probe_bytes,
    timeout_sample,
    train_sample,
)

__all__ = [
    "MonitorSettings",
    "FrameStats",
    "PlanChange",
    "EstimateReport",
    "ProbeTrain",
    "MonitorCore",
    "SwitchLogThrottle",
    "validate_robot",
]

KIB = 1024
_ROBOT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def validate_robot(robot: str) -> str:
    """A robot name is one ROS graph name segment: a letter, then letters, digits or '_'."""
    if not isinstance(robot, str) or not _ROBOT_RE.match(robot):
        raise ValueError(f"robot must be a ROS name segment (letter, then letters/digits/_), got {robot!r}")
    return robot


@dataclass
class MonitorSettings:
    """Everything the monitor is configured with (validated by the dataclasses it builds)."""

    robot: str = "robot1"  # the clients' default too
    rate_hz: float = 5.0
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    confirm_updates: int = 3
    jump_ratio: float = 0.5  # a CPU-contention dip of 30-40 % needs confirming; a 40 -> 10 Mbit/s step does not
    jump_confirm: int = 2  # ... and a jump needs this many newest samples beyond it (one slow probe is not a step)
    dead_band: float = 0.1
    choices: list[PlanChoice] = field(default_factory=lambda: choices_from_grid(DEFAULT_BUCKETS_MBYTE))
    choices_fixed: bool = False  # True when a plan table file was given: a plan book from the server is ignored
    passive_min_bytes: int = 256 * KIB
    passive_min_link_share: float = 0.5
    probes_enabled: bool = True
    switch_log_interval_s: float = 10.0

    def __post_init__(self) -> None:
        validate_robot(self.robot)
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f"rate must be > 0 Hz, got {self.rate_hz!r}")
        if not self.choices:
            raise ValueError("no buckets")
        if not (0.0 <= self.dead_band < 1.0):
            raise ValueError(f"dead_band must be in [0, 1), got {self.dead_band!r}")
        if not isinstance(self.jump_confirm, int) or isinstance(self.jump_confirm, bool) or self.jump_confirm < 0:
            raise ValueError(f"jump_confirm must be an int >= 0, got {self.jump_confirm!r}")
        if not (0.0 <= self.passive_min_link_share <= 1.0):
            raise ValueError(f"passive_min_link_share must be in [0, 1], got {self.passive_min_link_share!r}")
        if not (self.switch_log_interval_s >= 0 and math.isfinite(self.switch_log_interval_s)):
            raise ValueError(f"switch_log_interval_s must be >= 0, got {self.switch_log_interval_s!r}")


@dataclass(frozen=True)
class FrameStats:
    """The fields of one InferenceStats the monitor uses."""

    robot: str
    request_id: int
    latency_s: float
    transmit_s: float
    transmit_only_s: float
    bytes_up: int
    bytes_down: int
    error: str = ""
    fell_back_local: bool = False


@dataclass(frozen=True)
class PlanChange:
    """A bucket change to announce (PlanSwitch)."""

    robot: str
    mode: str
    plan_id: int
    plan_name: str
    bucket_mbyte_per_s: float
    estimate_mbit_per_s: float
    predicted_latency_s: float
    stamp: float  # the core's clock


@dataclass(frozen=True)
class EstimateReport:
    """The estimate to publish (BandwidthEstimate); samples == 0 once the window aged out."""

    mbit_per_s: float
    raw_mbit_per_s: float
    last_sample_mbit_per_s: float
    error_margin: float
    samples: int
    probe_samples: int
    passive_samples: int


@dataclass(frozen=True)
class ProbeTrain:
    """The next probe: its calls, each call's timeout and the link time it should take at the estimate."""

    calls: list[ProbeCall]
    timeouts_s: list[float]
    expected_s: float


class SwitchLogThrottle:
    """At most one plan-switch log line per `interval_s`; the next line says how many switches went unlogged."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last: float | None = None
        self.suppressed = 0

    def line(self, change: PlanChange) -> str | None:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.suppressed += 1
            return None
        text = (
            f"plan switch: bucket {change.bucket_mbyte_per_s:g} MB/s (estimate {change.estimate_mbit_per_s:.2f} "
            f"Mbit/s) -> plan {change.plan_id} {change.plan_name}"
        )
        if self.suppressed and self._last is not None:  # suppressed > 0 only after a logged line set _last
            text += f" ({self.suppressed} more switches in the last {now - self._last:.0f} s not logged)"
        self._last, self.suppressed = now, 0
        return text


class MonitorCore:
    """Samples in, estimates and plan changes out (see the module docstring). Thread-safe."""

    def __init__(
        self,
        settings: MonitorSettings,
        on_change: Callable[[PlanChange], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.predictor = BandwidthPredictor(settings.predictor)
        self.choices: list[PlanChoice] = list(settings.choices)
        self.choices_source = "plan table" if settings.choices_fixed else "grid"
        self.hysteresis = self._hysteresis()
        self.activity = LinkActivity()
        self.budget = DutyBudget(settings.probe.duty_window_s)
        self._on_change = on_change
        self._lock = threading.RLock()
        self.switches = 0
        self.dropped_stats = 0
        self.last_sample_at: float | None = None  # clock() of the newest sample (diagnostics: freshness)
        self.probes = 0
        self.probe_timeouts = 0
        self.excluded_calls = 0
        self.starved_calls = 0  # probe calls dropped because the robot's probe thread waited for a CPU
        self.rescued_calls = 0  # ... and those timed by the kernel instead
        self.starving = False  # the last train had calls whose thread waited for a CPU: probe downloads

    def _hysteresis(self) -> BucketHysteresis:
        s = self.settings
        grid = [c.bucket_mbyte_per_s for c in self.choices]
        return BucketHysteresis(grid, s.confirm_updates, s.jump_ratio, s.dead_band, s.jump_confirm)

    def _recent_mbyte(self) -> list[float]:
        """The window's sample rates in MB/s, oldest first (what confirms a jump of the bucket)."""
        return [bytes_per_s_to_mbyte(x.bytes_per_s) for x in self.predictor.window]

    # ---- buckets ------------------------------------------------------------------------------------
    def set_choices(self, choices: Sequence[PlanChoice], source: str) -> bool:
        """Use the buckets of a plan book (from the server, via the client); ignored when a plan table file
        was given. The current estimate's bucket is announced again under the new book. Returns whether the
        book was taken."""
        if self.settings.choices_fixed or not choices:
            return False
        with self._lock:
            self.choices = list(choices)
            self.choices_source = source
            self.hysteresis = self._hysteresis()
            pred = self.predictor.predict(self.clock()) or self.predictor.last_prediction
            bucket = None if pred is None else self.hysteresis.update(pred.mbyte_per_s, self._recent_mbyte())
            change = None if bucket is None or pred is None else self._change(bucket, pred)
        if change is not None:
            self._announce(change)
        return True

    def _change(self, bucket: int, pred: Prediction) -> PlanChange:
        choice = self.choices[bucket]
        return PlanChange(
            robot=self.settings.robot,
            mode=choice.mode,
            plan_id=choice.plan_id,
            plan_name=choice.plan_name,
            bucket_mbyte_per_s=choice.bucket_mbyte_per_s,
            estimate_mbit_per_s=pred.mbit_per_s,
            predicted_latency_s=choice.predicted_latency_s,
            stamp=self.clock(),
        )

    def _announce(self, change: PlanChange) -> None:
        self.switches += 1
        self._on_change(change)

    # ---- samples ------------------------------------------------------------------------------------
    def add_sample(self, sample: BandwidthSample) -> Prediction:
        """Feed one sample (InvalidSample for a bad one); announces a PlanChange when the bucket changes."""
        with self._lock:
            self.predictor.add(sample)
            self.last_sample_at = self.clock()
            pred = self.predictor.predict(sample.stamp)
            assert pred is not None
            bucket = self.hysteresis.update(pred.mbyte_per_s, self._recent_mbyte())
            change = None if bucket is None else self._change(bucket, pred)
        if change is not None:
            self._announce(change)
        return pred

    def on_stats(self, stats: FrameStats) -> str | None:
        """One frame's stats: link activity plus a passive sample when the transfer was link-limited.
        Returns why the stats were dropped, if they were."""
        now = self.clock()
        if stats.robot and stats.robot != self.settings.robot:
            self.dropped_stats += 1
            return f"stats for robot {stats.robot!r} on {self.settings.robot!r}'s topic"
        latency = float(stats.latency_s)
        if not math.isfinite(latency) or latency < 0:
            self.dropped_stats += 1
            return f"latency_s={stats.latency_s!r}"
        with self._lock:
            self.activity.on_frame(now, latency)
        if stats.error or stats.fell_back_local:
            return None  # its timing is not the link's
        try:
            sample = passive_sample(
                int(stats.bytes_up),
                int(stats.bytes_down),
                float(stats.transmit_s),
                now,
                self.settings.passive_min_bytes,
                float(stats.transmit_only_s),
                self.settings.passive_min_link_share,
            )
            if sample is not None:
                self.add_sample(sample)
        except (InvalidSample, TypeError, ValueError) as err:
            self.dropped_stats += 1
            return str(err)
        return None

    # ---- estimate -----------------------------------------------------------------------------------
    def estimate(self) -> EstimateReport | None:
        """The estimate to publish now (None before the first sample; samples=0 once all aged out)."""
        with self._lock:
            pred = self.predictor.predict(self.clock())
            samples = probes = passives = 0
            if pred is None:
                pred = self.predictor.last_prediction
                if pred is None:
                    return None
            else:
                samples, probes, passives = pred.samples, pred.probe_samples, pred.passive_samples
        return EstimateReport(
            mbit_per_s=pred.mbit_per_s,
            raw_mbit_per_s=bytes_per_s_to_mbit(pred.raw_bytes_per_s),
            last_sample_mbit_per_s=bytes_per_s_to_mbit(pred.last_sample_bytes_per_s),
            error_margin=pred.margin,
            samples=samples,
            probe_samples=probes,
            passive_samples=passives,
        )

    def current_bytes_per_s(self) -> float | None:
        with self._lock:
            pred = self.predictor.predict(self.clock()) or self.predictor.last_prediction
        return None if pred is None else pred.raw_bytes_per_s

    # ---- probes -------------------------------------------------------------------------------------
    def stale(self, now: float | None = None) -> bool:
        """No sample for the predictor's max age (or none yet): the estimate says nothing about the link now."""
        now = self.clock() if now is None else now
        with self._lock:
            last = self.last_sample_at
        return last is None or now - last > self.settings.predictor.max_age_s

    def next_probe(self, direction: str) -> ProbeTrain:
        """The next probe train, sized from the current estimate. While the robot's CPU starves the probe thread
        an upload probe is turned into a download: only downloads can be timed by the kernel."""
        cfg = self.settings.probe
        if self.starving and direction == "up":
            direction = "down"
        rate = self.current_bytes_per_s()
        calls = plan_probe(direction, probe_bytes(rate, cfg), cfg)
        timeouts = [call_timeout(c, rate, cfg) for c in calls]
        expected = cfg.train_calls * cfg.target_s if rate is None else sum(c.measured_bytes for c in calls) / rate
        return ProbeTrain(calls, timeouts, expected)

    def may_probe(self, expected_s: float) -> bool:
        """Link idle long enough, the next frame not due before the probe ends, and the duty budget allows it.
        A stale estimate re-probes at full duty: `idle_duty`, without waiting for a gap between frames (a stale
        estimate must not pin the bucket: the plan it chose may be what keeps probes from fitting)."""
        cfg = self.settings.probe
        now = self.clock()
        stale = self.stale(now)
        with self._lock:
            if stale:
                quiet = self.activity.quiet_for(now) >= cfg.idle_gap_s
                return quiet and self.budget.allows(now, expected_s, cfg.idle_duty)
            running = self.activity.inference_running(now, cfg.active_window_s)
            duty = cfg.busy_duty if running else cfg.idle_duty
            return self.activity.probe_fits(now, expected_s, cfg) and self.budget.allows(now, expected_s, duty)

    def finish_train(
        self,
        train: ProbeTrain,
        seconds: Sequence[float],
        received: Sequence[int],
        start: float,
        cpu_wait_s: Sequence[float | None] | None = None,
        network_s: Sequence[float | None] | None = None,
        server_stall_s: Sequence[float | None] | None = None,
    ) -> TrainResult:
        """A completed train: its sample (if any) goes in, its link time is charged to the duty budget.
        `cpu_wait_s[i]`: how long the probe thread waited for a CPU during call i (None: unknown);
        `network_s[i]`: the kernel's time of call i (`bandwidth_probe.tcp_network_time_s`; None: unknown);
        `server_stall_s[i]`: the probe server's own stall before it handled call i (None: unknown)."""
        end = self.clock()
        cfg = self.settings.probe
        try:
            result = train_sample(
                train.calls,
                seconds,
                received,
                end,
                cfg.drain_ratio,
                cpu_wait_s,
                cfg.max_cpu_wait_share,
                network_s,
                server_stall_s,
            )
        finally:
            with self._lock:
                self.budget.record(start, max(end, start + train.expected_s))
        self.probes += 1
        self.excluded_calls += result.excluded
        self.starved_calls += result.starved
        self.rescued_calls += result.rescued
        self.starving = result.starved + result.rescued > 0
        if result.sample is not None:
            self.add_sample(result.sample)
        return result

    def call_timed_out(self, train: ProbeTrain, index: int, start: float) -> Prediction:
        """Call `index` of `train` did not finish within its timeout: an upper-bound sample goes in."""
        end = self.clock()
        with self._lock:
            self.budget.record(start, end)
        self.probe_timeouts += 1
        return self.add_sample(timeout_sample(train.calls[index], train.timeouts_s[index], end))
