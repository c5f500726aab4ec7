"""The robot-side bandwidth monitor node (docs/bandwidth_monitor.md): a thin rospy shell around
`intradp_ros.core.bandwidth_monitor.MonitorCore`.

- Active probes: timed trains of calls of `/intradp/<robot>/probe` (BandwidthProbe, served by the server's
  bandwidth_probe_server) while the link is idle, within a duty-cycle budget; the leading calls, which cross
  while the shaper's bucket drains, are excluded (intradp_ros.core.bandwidth_probe).
- Passive samples: from the client's InferenceStats on `/intradp/<robot>/stats`, only link-limited frames; the
  same messages tell when tiles move.
- Buckets: a plan table file (`plan_table`), else the plan book the server sent the client in the handshake
  (the client republishes it latched on `/intradp/<robot>/plan_book`), else the `buckets` grid.
- Publishes intradp_ros/BandwidthEstimate on `/intradp/<robot>/bandwidth` at `rate` Hz and a latched
  intradp_ros/PlanSwitch on `/intradp/<robot>/plan` for the first bucket and every bucket change (logged at
  most once per `switch_log_interval` seconds).

It measures goodput only; it never reads a configured shaping rate. Settings (`MonitorNodeSettings`): defaults <
private parameters of the same name (launch/bandwidth_monitor.launch) < command line, by the one loader
(ros/node_params.py).
"""

from __future__ import annotations

import argparse
import itertools
import math
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rospy
from std_msgs.msg import Header, String

from intradp_ros.core.bandwidth import InvalidSample, PredictorConfig, bytes_per_s_to_mbit, parse_bucket_grid
from intradp_ros.core.bandwidth_monitor import (
    EstimateReport,
    FrameStats,
    MonitorCore,
    MonitorSettings,
    PlanChange,
    ProbeTrain,
    SwitchLogThrottle,
)
from intradp_ros.core.bandwidth_plans import (
    PlanChoiceError,
    choices_from_grid,
    choices_from_plan_table,
    describe,
    load_plan_table_choices,
)
from intradp_ros.core.bandwidth_probe import ProbeConfig, socket_network_time_s, thread_run_queue_wait_s
from intradp_ros.core.health import Health, monitor_status
from intradp_ros.msg import BandwidthEstimate, InferenceStats, PlanSwitch
from intradp_ros.ros import node_params
from intradp_ros.ros.diagnostics import NodeDiagnostics
from intradp_ros.ros.names import RobotNames
from intradp_ros.ros.node_params import ParamLookup, Spec, from_mapping, resolve, setting, spec_of
from intradp_ros.ros.probe_server import probe_service_name
from intradp_ros.srv import BandwidthProbe

KIB = 1024


def plan_book_topic(robot: str) -> str:
    """Latched std_msgs/String: the plan book JSON the client got in its last accepted handshake."""
    return RobotNames(robot).plan_book


class ProbeTimeout(Exception):
    """A probe call ran past its timeout (the watchdog closed the connection)."""


class ProbeClient:
    """Persistent BandwidthProbe client with a per-call timeout (rospy has none: a watchdog closes the socket)."""

    def __init__(self, service: str, max_bytes: int) -> None:
        self.service = service
        self._zeros = bytes(max_bytes)
        self._proxy: rospy.ServiceProxy | None = None
        self.last_network_s: float | None = None  # the kernel's time of the last download call, if known

    def call(self, payload_bytes: int, reply_bytes: int, timeout_s: float) -> Any:
        """One call; ProbeTimeout past `timeout_s`, rospy.ServiceException / ROSException on other failures."""
        if self._proxy is None:
            rospy.wait_for_service(self.service, timeout=max(timeout_s, 1.0))
            self._proxy = rospy.ServiceProxy(self.service, BandwidthProbe, persistent=True)
        proxy = self._proxy
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            proxy.close()

        watchdog = threading.Timer(timeout_s, expire)
        watchdog.daemon = True
        watchdog.start()
        self.last_network_s = None
        try:
            resp = proxy(payload=self._zeros[:payload_bytes], reply_bytes=reply_bytes)
            if reply_bytes:
                self.last_network_s = socket_network_time_s(_proxy_socket(proxy))
            return resp
        except BaseException as err:
            self.reset()
            if fired.is_set():
                raise ProbeTimeout(
                    f"probe call of {max(payload_bytes, reply_bytes)} B took over {timeout_s:.2f} s"
                ) from err
            raise
        finally:
            watchdog.cancel()
            if fired.is_set():
                # the watchdog fired as the call was ending: it closed the persistent connection under a call that
                # succeeded, and the next call on it failed inside rospy (AttributeError) and killed the probe thread
                self.reset()

    def reset(self) -> None:
        if self._proxy is not None:
            try:
                self._proxy.close()
            except Exception:  # noqa: BLE001 -- already broken: nothing to close
                pass
        self._proxy = None


def _proxy_socket(proxy: rospy.ServiceProxy) -> socket.socket | None:
    """The TCP socket of a persistent rospy service proxy (rospy keeps it on `proxy.transport.socket`), or None."""
    sock = getattr(getattr(proxy, "transport", None), "socket", None)
    return sock if isinstance(sock, socket.socket) else None


def switch_msg(change: PlanChange) -> PlanSwitch:
    return PlanSwitch(
        header=Header(stamp=_ros_now()),
        robot=change.robot,
        mode=change.mode,
        plan_id=change.plan_id,
        plan_name=change.plan_name,
        bucket_mbyte_per_s=change.bucket_mbyte_per_s,
        estimate_mbit_per_s=change.estimate_mbit_per_s,
        predicted_latency_s=change.predicted_latency_s,
    )


def estimate_msg(report: EstimateReport) -> BandwidthEstimate:
    return BandwidthEstimate(
        header=Header(stamp=_ros_now()),
        mbit_per_s=report.mbit_per_s,
        raw_mbit_per_s=report.raw_mbit_per_s,
        last_sample_mbit_per_s=report.last_sample_mbit_per_s,
        error_margin=report.error_margin,
        samples=report.samples,
        probe_samples=report.probe_samples,
        passive_samples=report.passive_samples,
    )


def frame_stats(msg: InferenceStats) -> FrameStats:
    return FrameStats(
        robot=msg.robot,
        request_id=int(msg.request_id),
        latency_s=float(msg.latency_s),
        transmit_s=float(msg.transmit_s),
        transmit_only_s=float(msg.robot_transmit_only_s),
        bytes_up=int(msg.bytes_up),
        bytes_down=int(msg.bytes_down),
        error=msg.error,
        fell_back_local=bool(msg.fell_back_local),
    )


class MonitorNode:
    """rospy wiring: publishers, the stats and plan-book subscribers, the publish timer and the probe thread."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        names = RobotNames(settings.robot)
        self.estimate_pub = rospy.Publisher(names.bandwidth, BandwidthEstimate, queue_size=10)
        self.plan_pub = rospy.Publisher(names.plan, PlanSwitch, queue_size=1, latch=True)
        self.switch_log = SwitchLogThrottle(settings.switch_log_interval_s)
        self.core = MonitorCore(settings, self._on_change)
        self.stats_sub = rospy.Subscriber(names.stats, InferenceStats, self._on_stats, queue_size=20)
        self.book_sub = (
            None
            if settings.choices_fixed
            else rospy.Subscriber(names.plan_book, String, self._on_plan_book, queue_size=1)
        )
        cfg = settings.probe
        self.client = ProbeClient(probe_service_name(settings.robot), max(cfg.max_bytes, cfg.initial_bytes))
        self._directions = itertools.cycle(["up", "down"] if cfg.direction == "both" else [cfg.direction])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe_loop, name="bandwidth-probe", daemon=True)
        self.timer: rospy.Timer | None = None
        self.probe_failures = 0
        self.last_probe_error = ""
        self.bucket: float | None = None
        self.diagnostics: NodeDiagnostics | None = None

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
            core.probes,
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
            "bandwidth monitor for %s: %s (%s), probes %s on %s",
            self.settings.robot,
            describe(self.core.choices),
            self.core.choices_source,
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

    def _on_change(self, change: PlanChange) -> None:
        self.bucket = float(change.bucket_mbyte_per_s)
        self.plan_pub.publish(switch_msg(change))
        line = self.switch_log.line(change)
        if line:
            rospy.loginfo(line)

    def _on_plan_book(self, msg: String) -> None:
        try:
            choices = choices_from_plan_table(msg.data)
        except PlanChoiceError as err:
            rospy.logerr_throttle(
                10.0, f"bandwidth monitor: unusable plan book on {plan_book_topic(self.settings.robot)}: {err}"
            )
            return
        if self.core.set_choices(choices, "server plan book"):
            rospy.loginfo("bandwidth monitor: using the server's plan book: %s", describe(choices))

    def _on_stats(self, msg: InferenceStats) -> None:
        try:
            reason = self.core.on_stats(frame_stats(msg))
        except (TypeError, ValueError) as err:
            reason = str(err)
        if reason:
            rospy.logwarn_throttle(5.0, f"bandwidth monitor: dropped InferenceStats {msg.request_id}: {reason}")

    def _publish_estimate(self, _event: Any) -> None:
        report = self.core.estimate()
        if report is not None:
            self.estimate_pub.publish(estimate_msg(report))

    # ---- probes -------------------------------------------------------------------------------------
    def _probe_loop(self) -> None:
        backoff = 0.0
        while not self._stop.is_set() and not rospy.is_shutdown():
            if backoff:
                self._stop.wait(backoff)
                backoff = 0.0
                continue
            train = self.core.next_probe(next(self._directions))
            # wait (bounded by the stop event) until the link is idle and the budget allows this probe
            while not self._stop.is_set() and not self.core.may_probe(train.expected_s):
                self._stop.wait(0.02)
            if self._stop.is_set():
                return
            try:
                self._run_train(train)
            except (rospy.ServiceException, rospy.ROSException, InvalidSample, OSError) as err:
                self.probe_failures += 1
                self.last_probe_error = f"{type(err).__name__}: {err}"[:200]
                rospy.logwarn_throttle(10.0, f"bandwidth probe on {self.client.service} failed: {err}")
                backoff = 1.0
            except Exception as err:  # noqa: BLE001 - rospy's own errors (a closed connection): probing must go on
                self.probe_failures += 1
                self.last_probe_error = f"{type(err).__name__}: {err}"[:200]
                self.client.reset()
                rospy.logerr_throttle(
                    10.0, f"bandwidth probe on {self.client.service} failed: {type(err).__name__}: {err}; reconnecting"
                )
                backoff = 1.0

    def _run_train(self, train: ProbeTrain) -> None:
        start = self.core.clock()
        seconds: list[float] = []
        received: list[int] = []
        waits: list[float | None] = []
        kernel: list[float | None] = []
        stalls: list[float | None] = []
        for i, call in enumerate(train.calls):
            w0 = thread_run_queue_wait_s()
            t0 = time.monotonic()
            try:
                resp = self.client.call(call.payload_bytes, call.reply_bytes, train.timeouts_s[i])
            except ProbeTimeout as err:
                self.core.call_timed_out(train, i, start)
                rospy.logwarn_throttle(10.0, f"bandwidth probe: {err}")
                return
            seconds.append(time.monotonic() - t0)
            w1 = thread_run_queue_wait_s()
            waits.append(None if w0 is None or w1 is None else w1 - w0)
            kernel.append(self.client.last_network_s)
            stalls.append(server_stall(resp))
            received.append(int(resp.received_bytes) if call.direction == "up" else len(resp.payload))
        self.core.finish_train(train, seconds, received, start, waits, kernel, stalls)


def server_stall(resp: Any) -> float | None:
    """The probe server's reported stall before it handled the call (None: a server without the field, or a
    value that is not a finite number >= 0)."""
    value = getattr(resp, "server_stall_s", None)
    try:
        stall = float(value)
    except (TypeError, ValueError):
        return None
    return stall if math.isfinite(stall) and stall >= 0 else None


def _ros_now() -> rospy.Time:
    try:
        return rospy.Time.now()
    except rospy.exceptions.ROSInitException:  # no node (unit tests): wall time
        return rospy.Time.from_sec(time.time())


# ---- settings ---------------------------------------------------------------------------------------------
@dataclass
class MonitorNodeSettings:
    """The monitor node's settings (defaults < private parameters < command line, `ros/node_params.py`)."""

    robot: str = setting("robot1", "robot name: topics /intradp/<robot>/{bandwidth,plan,stats,probe}")
    rate: float = setting(5.0, "BandwidthEstimate publish rate (Hz)")
    probe_bytes: int = setting(ProbeConfig.initial_bytes, "probe call size before the first estimate (bytes)")
    probe_min_bytes: int = setting(ProbeConfig.min_bytes, "smallest probe call (bytes)")
    probe_max_bytes: int = setting(ProbeConfig.max_bytes, "largest probe call (bytes)")
    probe_calls: int = setting(
        ProbeConfig.train_calls, "calls per probe train (the first, bucket-carrying ones excluded)"
    )
    probe_target_s: float = setting(ProbeConfig.target_s, "each probe call lasts about this long at the estimate")
    probe_drain_ratio: float = setting(
        ProbeConfig.drain_ratio, "a leading call this much faster than the rest is bucket"
    )
    probe_timeout: float = setting(
        ProbeConfig.call_timeout_s, "longest probe call timeout (s); the first probe's timeout"
    )
    probe_direction: str = setting(ProbeConfig.direction, "up, down or both (alternating)")
    busy_duty: float = setting(ProbeConfig.busy_duty, "max share of link time for probes while inference runs")
    idle_duty: float = setting(ProbeConfig.idle_duty, "max share of link time for probes while it does not")
    idle_gap: float = setting(ProbeConfig.idle_gap_s, "seconds without tile traffic before a probe")
    window: int = setting(PredictorConfig.window, "samples in the harmonic mean")
    max_age: float = setting(PredictorConfig.max_age_s, "samples older than this (s) leave the window")
    margin_window: int = setting(PredictorConfig.margin_window, "predictions whose error gives the margin")
    max_margin: float = setting(PredictorConfig.max_margin, "the error margin is clamped to this")
    hysteresis: int = setting(3, "consecutive updates in a new bucket before switching")
    jump_ratio: float = setting(0.5, "relative estimate change that switches at once")
    jump_confirm: int = setting(
        2, "a jump needs this many newest samples beyond jump_ratio (one slow probe is no step)"
    )
    dead_band: float = setting(0.1, "the bucket is kept while the estimate is within this share of its edges")
    switch_log_interval: float = setting(10.0, "at most one plan-switch log line per this many seconds")
    buckets: str = setting("0.5:50:1", "bucket grid in MB/s: start:stop:step or a list of lower edges")
    plan_table: str = setting("", "scheduler plan table JSON (its buckets and plans replace 'buckets')")
    passive_min_bytes: int = setting(256 * KIB, "frames moving fewer bytes give no passive sample")
    passive_min_link_share: float = setting(0.5, "passive samples only when the robot waited on its uploads this share")
    probes: bool = setting(True, "run active probes (false: passive samples only)")


PARAMS: Spec = spec_of(MonitorNodeSettings)
DESCRIPTION = (
    "Robot-side bandwidth monitor: probes, passive samples, robust estimate, plan switches (docs/bandwidth_monitor.md)."
)


def build_parser() -> argparse.ArgumentParser:
    return node_params.build_parser("bandwidth_monitor", DESCRIPTION, PARAMS)


def load_settings(args: argparse.Namespace | None, params: ParamLookup | None = None) -> MonitorSettings:
    """The core's MonitorSettings from the command line and private parameters (ValueError naming a bad one)."""
    return monitor_settings(from_mapping(MonitorNodeSettings, resolve(PARAMS, args, params=params)))


def settings_from(values: dict[str, Any]) -> MonitorSettings:
    """MonitorSettings from a name -> value dict (missing names take their defaults); ValueError when invalid."""
    return load_settings(None, params=lambda name: (name in values, values.get(name)))


def monitor_settings(v: MonitorNodeSettings) -> MonitorSettings:
    """The core's MonitorSettings from the node's (ValueError when a value is out of range)."""
    fixed = bool(v.plan_table)
    if fixed:
        try:
            choices = load_plan_table_choices(v.plan_table)
        except PlanChoiceError as err:
            raise ValueError(str(err)) from None
    else:
        choices = choices_from_grid(parse_bucket_grid(v.buckets))
    probe = ProbeConfig(
        train_calls=v.probe_calls,
        initial_bytes=v.probe_bytes,
        min_bytes=v.probe_min_bytes,
        max_bytes=v.probe_max_bytes,
        target_s=v.probe_target_s,
        drain_ratio=v.probe_drain_ratio,
        call_timeout_s=v.probe_timeout,
        max_call_timeout_s=max(ProbeConfig.max_call_timeout_s, v.probe_timeout),
        min_timeout_s=min(ProbeConfig.min_timeout_s, v.probe_timeout),
        direction=v.probe_direction,
        busy_duty=v.busy_duty,
        idle_duty=v.idle_duty,
        idle_gap_s=v.idle_gap,
    )
    predictor = PredictorConfig(
        window=v.window,
        max_age_s=v.max_age,
        margin_window=v.margin_window,
        max_margin=v.max_margin,
        shift_samples=min(PredictorConfig.shift_samples, v.window),
    )
    return MonitorSettings(
        robot=v.robot,
        rate_hz=v.rate,
        predictor=predictor,
        probe=probe,
        confirm_updates=v.hysteresis,
        jump_ratio=v.jump_ratio,
        jump_confirm=v.jump_confirm,
        dead_band=v.dead_band,
        choices=choices,
        choices_fixed=fixed,
        passive_min_bytes=v.passive_min_bytes,
        passive_min_link_share=v.passive_min_link_share,
        switch_log_interval_s=v.switch_log_interval,
        probes_enabled=v.probes,
    )


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/bandwidth_monitor."""
    args = build_parser().parse_args(node_params.cli_args(argv))
    rospy.init_node("bandwidth_monitor", anonymous=False)
    try:
        settings = load_settings(args)
    except (ValueError, TypeError) as err:
        rospy.logfatal(f"bandwidth_monitor: bad settings: {err}")
        return 2
    node = MonitorNode(settings)
    node.start()
    rospy.spin()
    node.stop()
    return 0
