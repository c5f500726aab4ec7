"""The evaluation driver node (robot side): feeds a client the frames of a bag and records what comes back.

Tooling (scripts/eval_driver, used by `evaluate` and demo.launch), so it lives in intradp_ros.eval: it may use the
ros layer below it, never the reverse.

- Streams the frames of one topic of an input recording (camera images, point clouds; a ROS 1 bag through
  rosbag, or a ROS 2 bag / MCAP file through the rosbags library: eval/bag_frames.py), one at a time, starting over
  at the end of the topic when more frames are asked for, and publishes them, re-stamped with
  the current time, on the topic the client subscribes to: in `lockstep` (the next frame only after the client's
  InferenceStats for the previous one arrived, or after `frame_timeout`; so every system under test processes the
  same frames) or at a fixed `rate` (newest-frame-wins at the client decides which frames are processed).
- Warm-up frames go first (not counted): they wait for the client, its handshake and the first bandwidth estimate.
- Subscribes to /intradp/<robot>/stats, /bandwidth and /plan; writes all three into an output bag (optional) and
  prints one JSON object per line on stdout (`--output json`) or a human-readable line per frame and a summary
  (`--output text`, what `roslaunch intradp_ros demo.launch` shows):
    {"kind": "ready", "frames": N, "topic": ...}
    {"kind": "warmup", "index": i, "received": bool, "plan_name": ...}
    {"kind": "warning", "warning": ...}   {"kind": "client_ready", "log": ...}
    {"kind": "start", "frames": N}                      counted frames begin now (t_s = 0)
    {"kind": "stats", "frame": i, "t_s": ..., "matched": bool, <every InferenceStats field>}   one per result
    {"kind": "lost", "frame": i, "t_s": ...}           no stats within frame_timeout
    {"kind": "plan", "t_s": ..., "plan_id": ..., "plan_name": ..., "estimate_mbit_per_s": ...}
    {"kind": "health", "statuses": [{"name", "hardware_id", "level", "message", "values", "reports"}, ...],
     "missing": [roles of client/monitor/bridge/server that never reported]}   /diagnostics seen (eval/health_table.py)
    {"kind": "error", "error": ...}   {"kind": "done", "frames": N, "results": n, "lost": m}
A stats message belongs to frame i when its header stamp equals frame i's publish stamp (clients copy the input
header); a client that stamps otherwise gets the frame awaited when the stats arrived (lockstep) or -1 (rate).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import rospy
from diagnostic_msgs.msg import DiagnosticArray

from intradp_ros.eval.bag_frames import BagFramesError, FrameSource, open_frames
from intradp_ros.eval.health_table import HealthBook, format_health, missing_nodes
from intradp_ros.eval.stats_recorder import stats_record
from intradp_ros.msg import BandwidthEstimate, InferenceStats, PlanSwitch
from intradp_ros.ros import node_params
from intradp_ros.ros.names import DEFAULT_BASE, RobotNames
from intradp_ros.ros.node_params import ParamLookup, Spec, from_mapping, resolve, setting, spec_of
from intradp_ros.ros.probe_server import validate_robot

MAX_FRAMES = 100_000


class Recorder:
    """Writes received messages into a bag (thread-safe); a no-op without a path."""

    def __init__(self, path: str | None) -> None:
        self._bag = None
        self._lock = threading.Lock()
        if path:
            import rosbag

            self._bag = rosbag.Bag(path, "w")

    def write(self, topic: str, msg: Any) -> None:
        if self._bag is None:
            return
        with self._lock:
            if self._bag is not None:
                self._bag.write(topic, msg, rospy.Time.now())

    def close(self) -> None:
        with self._lock:
            if self._bag is not None:
                self._bag.close()
                self._bag = None


class Printer:
    """JSON lines or human-readable lines on stdout."""

    def __init__(self, output: str, stream: TextIO = sys.stdout, dilation: float = 1.0) -> None:
        self.output, self.stream, self.k = output, stream, dilation
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, obj: dict[str, Any]) -> None:
        with self._lock:
            if obj.get("kind") == "stats":
                self.records.append(obj)
            if self.output == "json":
                self.stream.write(json.dumps(obj) + "\n")
            else:
                line = self._text(obj)
                if line:
                    self.stream.write(line + "\n")
            self.stream.flush()

    def _text(self, obj: dict[str, Any]) -> str:
        from intradp_ros.eval.tables import frame_line

        kind = obj.get("kind")
        if kind == "stats":
            return frame_line(dict(obj, system=obj.get("mode")), self.k)
        if kind == "lost":
            return f"frame {obj['frame']:>3}: no result within the frame timeout"
        if kind == "plan":
            return (
                f"plan switch -> {obj['plan_name']} (id {obj['plan_id']}) at estimate "
                f"{obj['estimate_mbit_per_s']:.2f} Mbit/s"
            )
        if kind == "warmup":
            return f"warm-up frame {obj['index']}: " + (
                f"result (plan {obj['plan_name']})" if obj["received"] else "no result yet"
            )
        if kind == "warning":
            return f"warning: {obj['warning']}"
        if kind == "client_ready":
            return f"client ready: {obj['log']}"
        if kind == "ready":
            return f"replaying {obj['frames']} frames of {obj['bag']} on {obj['topic']} ({obj['pacing']})"
        if kind == "error":
            return f"error: {obj['error']}"
        if kind == "health":
            return "node health (latest /diagnostics status of each)\n" + format_health(obj["statuses"])
        if kind == "done":
            return self.summary(obj)
        return ""

    def summary(self, done: dict[str, Any]) -> str:
        from intradp_ros.eval.tables import format_table, summarize

        recs = [dict(r, system=r.get("mode"), trace="run") for r in self.records if r.get("frame", -1) >= 0]
        head = f"done: {done['results']} results for {done['frames']} frames, {done['lost']} lost"
        if not recs:
            return head
        return head + "\n\n" + format_table(summarize(recs), title="summary (this run)")


class EvalDriver:
    """Publishes frames and collects the client's results (see the module docstring)."""

    def __init__(self, robot: str, source: FrameSource, out_topic: str, printer: Printer, recorder: Recorder) -> None:
        self.robot = validate_robot(robot)
        self.names = RobotNames(self.robot, base="/" + DEFAULT_BASE)  # absolute: the driver may run in a namespace
        self.source = source
        self.printer = printer
        self.recorder = recorder
        self.t0 = time.monotonic()
        self._cond = threading.Condition()
        self._stamps: dict[Any, int] = {}  # publish stamp -> frame index (-2 for warm-up frames)
        self._awaiting: int | None = None  # frame index lockstep waits for
        self._got: dict[int, bool] = {}
        self._warmup_got: str | None = None  # plan name of the last warm-up result
        # "key=value[,key=value...]": the client is ready once a /diagnostics status of this robot held each of them
        # (in order of arrival, each once); a quiet warm-up waits for the first one only
        self.ready_status = ""
        self._held: set[int] = set()  # indices of the ready_status conditions seen to hold
        self._log_ready = False
        self.health = HealthBook()  # latest /diagnostics status of every node (the demo's health table)
        self.pub = rospy.Publisher(out_topic, type(source.first()), queue_size=1)
        self._subs = [
            rospy.Subscriber(self.names.stats, InferenceStats, self._on_stats, queue_size=50),
            rospy.Subscriber(self.names.bandwidth, BandwidthEstimate, self._on_bandwidth, queue_size=10),
            rospy.Subscriber(self.names.plan, PlanSwitch, self._on_plan, queue_size=10),
            rospy.Subscriber("/diagnostics", DiagnosticArray, self._on_diagnostics, queue_size=20),
        ]

    def now_s(self) -> float:
        return time.monotonic() - self.t0

    # ---- callbacks --------------------------------------------------------------------------------------------
    def _on_stats(self, msg: InferenceStats) -> None:
        self.recorder.write(self.names.stats, msg)
        if msg.robot and msg.robot != self.robot:
            return
        try:
            rec = stats_record(msg)
        except ValueError as err:
            rospy.logerr_throttle(5.0, f"eval_driver: unreadable InferenceStats dropped: {err}")
            return
        with self._cond:
            index = self._stamps.get((msg.header.stamp.secs, msg.header.stamp.nsecs))
            matched = index is not None
            if index is None:
                index = self._awaiting if self._awaiting is not None else -1
            if index == -2:
                self._warmup_got = msg.plan_name
                self._cond.notify_all()
                return
            if index >= 0 and self._got.get(index):
                return  # a second result for the same frame (should not happen): keep the first
            if index >= 0:
                self._got[index] = True
            self._cond.notify_all()
        self.printer.emit(dict(rec, kind="stats", frame=index, t_s=round(self.now_s(), 4), matched=matched))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        """Ready when a status of this robot (hardware id) holds the `ready_status` key=value (the client's
        diagnostics say plan_book=received once its handshake brought the plan book). Every status is kept, the
        newest per name, for the health table at the end."""
        with self._cond:
            for st in msg.status:
                self.health.add(st.name, st.hardware_id, st.level, st.message, {kv.key: kv.value for kv in st.values})
        if not self.ready_status or self._log_ready:
            return
        wants = [w.partition("=") for w in self.ready_status.split(",") if w]
        for st in msg.status:
            if st.hardware_id != self.robot:
                continue
            values = {kv.key: kv.value for kv in st.values}
            for i, (key, _, want) in enumerate(wants):
                if i in self._held or values.get(key) != want:
                    continue
                with self._cond:
                    self._held.add(i)
                    self._log_ready = len(self._held) == len(wants)
                    self._cond.notify_all()
                text = f"{st.name}: {key}={want} ({st.message})"
                kind = "client_ready" if self._log_ready else "client_status"
                self.printer.emit({"kind": kind, "t_s": round(self.now_s(), 4), "log": text[:200]})

    def _on_bandwidth(self, msg: BandwidthEstimate) -> None:
        self.recorder.write(self.names.bandwidth, msg)

    def _on_plan(self, msg: PlanSwitch) -> None:
        self.recorder.write(self.names.plan, msg)
        self.printer.emit(
            {
                "kind": "plan",
                "t_s": round(self.now_s(), 4),
                "plan_id": int(msg.plan_id),
                "plan_name": msg.plan_name,
                "estimate_mbit_per_s": float(msg.estimate_mbit_per_s),
                "bucket_mbyte_per_s": float(msg.bucket_mbyte_per_s),
            }
        )

    # ---- publishing -------------------------------------------------------------------------------------------
    def wait_for_subscriber(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not rospy.is_shutdown():
            if self.pub.get_num_connections() > 0:
                return True
            time.sleep(0.1)
        return False

    def _publish(self, frame: Any, index: int) -> None:
        stamp = rospy.Time.now()
        frame.header.stamp = stamp
        with self._cond:
            self._stamps[(stamp.secs, stamp.nsecs)] = index
            if index >= 0:
                self._awaiting = index
        self.pub.publish(frame)

    def warmup(
        self,
        count: int,
        timeout: float,
        settle_s: float,
        ready_plan_not: str = "",
        frame_timeout: float = 120.0,
        ready_status: str = "",
        quiet_until_ready: bool = False,
    ) -> bool:
        """Publish warm-up frames until `count` of them got a result and the client is ready: with `ready_status`
        (key=value), a /diagnostics status of the robot holds it (e.g. the client's "plan_book=received"); with
        `ready_plan_not`, a result ran a plan of another name (the client uses its device-only plan until its
        handshake brought the plan book). With `quiet_until_ready` (and `ready_status`) no frame goes out before
        the status holds: warm-up frames would share the robot's CPU quota with its profiling and calibration
        (slowing both and skewing the profile). Bounded by `timeout`; False if it ended without a result."""
        deadline = time.monotonic() + timeout
        self.ready_status = ready_status
        got, ready, i = 0, not (ready_plan_not or ready_status), 0
        frames = self.source.frames(MAX_FRAMES)
        while time.monotonic() < deadline and not rospy.is_shutdown():
            ready = ready or self._log_ready
            if got >= count and ready:
                break
            if quiet_until_ready and ready_status and not (ready or 0 in self._held):
                with self._cond:
                    self._cond.wait_for(
                        lambda: self._log_ready or 0 in self._held or rospy.is_shutdown(),
                        timeout=max(0.0, min(1.0, deadline - time.monotonic())),
                    )
                continue
            with self._cond:
                self._warmup_got = None
            self._publish(next(frames), -2)
            with self._cond:
                self._cond.wait_for(
                    lambda: self._warmup_got is not None or rospy.is_shutdown(),
                    timeout=max(0.0, min(frame_timeout, deadline - time.monotonic())),
                )
                plan = self._warmup_got
            self.printer.emit({"kind": "warmup", "index": i, "received": plan is not None, "plan_name": plan or ""})
            if plan is not None:
                got += 1
                ready = ready or bool(ready_plan_not and plan != ready_plan_not)
            i += 1
        frames.close()  # one open reader at a time: counted frames start from the topic's beginning again
        if got and not ready:
            self.printer.emit(
                {
                    "kind": "warning",
                    "warning": f"warm-up ended after {timeout:g} s without a sign that "
                    f"the client is ready ({ready_status or ready_plan_not!r})",
                }
            )
        if settle_s > 0:
            time.sleep(settle_s)
        return got > 0

    def run_lockstep(self, count: int, frame_timeout: float, gap_s: float) -> dict[str, int]:
        """Each frame waits for its result (or the timeout) before the next; returns counts."""
        self.t0 = time.monotonic()
        self.printer.emit({"kind": "start", "frames": count})
        lost = 0
        for i, frame in enumerate(self.source.frames(count)):
            if rospy.is_shutdown():
                break
            self._publish(frame, i)
            with self._cond:
                ok = self._cond.wait_for(
                    lambda i=i: self._got.get(i, False) or rospy.is_shutdown(), timeout=frame_timeout
                )
                self._awaiting = None
            if not ok:
                lost += 1
                self.printer.emit({"kind": "lost", "frame": i, "t_s": round(self.now_s(), 4)})
            if gap_s > 0:
                time.sleep(gap_s)
        return {"frames": count, "results": sum(1 for v in self._got.values() if v), "lost": lost}

    def run_rate(self, count: int, rate_hz: float, drain_s: float) -> dict[str, int]:
        """Publish at `rate_hz` (newest frame wins at the client), then wait up to `drain_s` for the last result."""
        self.t0 = time.monotonic()
        self.printer.emit({"kind": "start", "frames": count})
        period = 1.0 / rate_hz
        for i, frame in enumerate(self.source.frames(count)):
            if rospy.is_shutdown():
                break
            self._publish(frame, i)
            with self._cond:
                self._awaiting = None  # in rate mode only stamps match results to frames
            time.sleep(max(0.0, self.t0 + (i + 1) * period - time.monotonic()))
        deadline = time.monotonic() + drain_s
        with self._cond:
            self._cond.wait_for(
                lambda: self._got.get(count - 1, False) or rospy.is_shutdown(),
                timeout=max(0.0, deadline - time.monotonic()),
            )
        results = sum(1 for v in self._got.values() if v)
        return {"frames": count, "results": results, "lost": count - results}

    def health_record(self) -> dict[str, Any]:
        """The `health` output line: the newest status of each node and the nodes that never reported."""
        with self._cond:
            statuses = self.health.statuses()
        return {"kind": "health", "statuses": statuses, "missing": missing_nodes(statuses)}

    def close(self) -> None:
        for s in self._subs:
            s.unregister()
        self.recorder.close()


@dataclass
class EvalDriverSettings:
    """The driver's settings (defaults < private parameters < command line, the nodes' one loader)."""

    robot: str = setting("robot1", "robot name (topics /intradp/<robot>/...)")
    bag: str = setting("", "input bag (empty: the bundled camera sample bag)")
    topic: str = setting("", "topic in the bag (empty: the bag's first topic)")
    reader: str = setting(
        "auto", "bag reader: rosbag (ROS 1), rosbags (ROS 1/2 bags and MCAP); auto: rosbag for .bag files"
    )
    out_topic: str = setting("", "topic to publish on (empty: the bag topic)")
    frames: int = setting(0, "frames to publish (0: all in the bag; cycles)")
    pacing: str = setting("lockstep", "lockstep or rate")
    rate: float = setting(1.0, "frames per second in rate pacing")
    gap: float = setting(0.0, "seconds between a result and the next frame (lockstep)")
    frame_timeout: float = setting(60.0, "seconds to wait for a frame's result")
    warmup: int = setting(1, "warm-up frames not counted")
    startup_timeout: float = setting(300.0, "seconds the first warm-up frame may take")
    ready_plan_not: str = setting(
        "", "warm up until a result ran a plan not named this (e.g. device_only: the handshake is done)"
    )
    ready_status: str = setting(
        "",
        "warm up until a /diagnostics status of the robot holds this key=value (e.g. plan_book=received, the client's "
        "status once its handshake brought the plan book); a comma list: until each held (plan_book=received,"
        "plan_book_camera=yes: and its renewed book prices the camera file)",
    )
    quiet_until_ready: bool = setting(
        False,
        "with ready_status: publish no warm-up frame until it (its first condition) holds (frames would share the "
        "robot's CPU with its profiling and calibration)",
    )
    settle: float = setting(1.0, "seconds to wait after warm-up")
    record: str = setting("", "write stats, bandwidth and plan messages into this bag (empty: none)")
    output: str = setting("text", "stdout format: json or text")
    dilation: float = setting(1.0, "time-dilation factor k for undilated figures")

    def check(self) -> None:
        """ValueError naming the first setting out of its range or choices."""
        choices = {"reader": ("auto", "rosbag", "rosbags"), "pacing": ("lockstep", "rate"), "output": ("json", "text")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"setting {name}={getattr(self, name)!r}: one of {', '.join(allowed)}")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"setting rate={self.rate!r}: frames per second > 0")
        if not 0 <= self.frames <= MAX_FRAMES:
            raise ValueError(f"setting frames={self.frames!r}: 0 (all) to {MAX_FRAMES}")
        if not (self.dilation > 0 and math.isfinite(self.dilation)):
            raise ValueError(f"setting dilation={self.dilation!r}: > 0")
        for name in ("gap", "frame_timeout", "startup_timeout", "settle", "warmup"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"setting {name}={value!r}: >= 0")
        try:
            validate_robot(self.robot)
        except ValueError as err:
            raise ValueError(f"setting robot={self.robot!r}: {err}") from None


SPEC: Spec = spec_of(EvalDriverSettings)
DESCRIPTION = "Replay a bag's frames to an intradp client and record its InferenceStats"


def build_parser() -> argparse.ArgumentParser:
    return node_params.build_parser("eval_driver", DESCRIPTION, SPEC)


def load_settings(args: argparse.Namespace | None, params: ParamLookup | None = None) -> EvalDriverSettings:
    """The driver's settings; ValueError naming a bad one."""
    settings = from_mapping(EvalDriverSettings, resolve(SPEC, args, params=params))
    settings.check()
    return settings


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/eval_driver."""
    args = build_parser().parse_args(node_params.cli_args(argv))
    rospy.init_node("eval_driver", anonymous=True, disable_signals=False)
    try:
        s = load_settings(args)
    except ValueError as err:
        Printer("json" if getattr(args, "output", None) == "json" else "text").emit(
            {"kind": "error", "error": str(err)}
        )
        return 1
    printer = Printer(s.output, dilation=s.dilation)
    recorder = None
    source: FrameSource | None = None
    try:
        bag = s.bag
        if not bag:
            from intradp_ros.eval.sample_data import ensure_sample_bags

            bag = str(ensure_sample_bags()["camera"])
        source = open_frames(bag, s.topic or None, s.reader)
        count = s.frames if s.frames > 0 else source.count
        out_topic = s.out_topic or source.topic
        recorder = Recorder(s.record or None)
        driver = EvalDriver(s.robot, source, out_topic, printer, recorder)
        if count > MAX_FRAMES:
            raise ValueError(f"the bag holds {count} frames, more than {MAX_FRAMES}: set frames")
        startup = s.startup_timeout
        if not driver.wait_for_subscriber(startup):
            raise RuntimeError(f"nobody subscribed to {out_topic} within {startup:g} s (is the client running?)")
        printer.emit(
            {
                "kind": "ready",
                "frames": count,
                "topic": out_topic,
                "bag": str(bag),
                "pacing": s.pacing if s.pacing == "lockstep" else f"{s.rate:g} Hz",
            }
        )
        if not driver.warmup(
            s.warmup, startup, s.settle, s.ready_plan_not, s.frame_timeout, s.ready_status, s.quiet_until_ready
        ):
            raise RuntimeError(
                f"the client produced no InferenceStats on {driver.names.stats} within "
                f"{startup:g} s of the first warm-up frame"
            )
        if s.pacing == "lockstep":
            counts = driver.run_lockstep(count, s.frame_timeout, s.gap)
        else:
            counts = driver.run_rate(count, s.rate, s.frame_timeout)
        printer.emit(driver.health_record())
        driver.close()
        printer.emit(dict(counts, kind="done"))
        return 0
    except (ValueError, RuntimeError, OSError, BagFramesError) as err:
        printer.emit({"kind": "error", "error": str(err)})
        return 1
    finally:
        if recorder is not None:
            recorder.close()
        if source is not None:
            source.close()
