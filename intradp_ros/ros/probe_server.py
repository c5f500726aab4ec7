"""Server-side endpoint for the bandwidth monitor's active probes: `intradp/<robot>/probe` (BandwidthProbe).

It takes the uploaded payload (raw bytes; its content is never looked at), stamps when the request arrived
(wall clock, so a robot with a synchronised clock can split the time into up- and downlink), and answers with
`reply_bytes` zero bytes. Requests above `max_payload_bytes` or asking for more than `max_reply_bytes` are
refused with a logged error (the caller gets a ServiceException), so a bad or hostile client cannot make the
server allocate or send without bound. One process can serve several robots (`--robots robot1,robot2`).

The endpoint usually lives in the inference server, whose model compute can starve it (CPU, or the interpreter
lock held between operators); a probe answered late then looked like a slow link. A `StallMeter` thread sleeps
`period_s` at a time and records how late it wakes; every reply carries `server_stall_s`, the lateness summed
since the previous reply of that endpoint (at most `window_s` back), and the monitor leaves out a call whose
server stall is a large share of its time.

Settings (`ProbeServerSettings`): command line, else private parameters (``~robots``, ``~max_reply_bytes``,
``~max_payload_bytes``), else the defaults, through the nodes' one loader (intradp_ros.ros.node_params).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rospy

from intradp_ros.core.bandwidth_monitor import validate_robot
from intradp_ros.ros import node_params
from intradp_ros.ros.names import RobotNames
from intradp_ros.ros.node_params import setting
from intradp_ros.srv import BandwidthProbe, BandwidthProbeRequest, BandwidthProbeResponse

DEFAULT_MAX_REPLY = 4 << 20
DEFAULT_MAX_PAYLOAD = 4 << 20


def probe_service_name(robot: str) -> str:
    """`intradp/<robot>/probe`, relative to the node's namespace (the robot name must be a valid ROS name segment)."""
    validate_robot(robot)
    return RobotNames(robot).probe


class StallMeter:
    """How long this process could not run a thread when it should have: `tick` sleeps `period_s` and records
    how much later than that it woke (lateness below `min_late_s` is timer noise and not kept). Entries older than
    `horizon_s` are dropped, so memory stays bounded."""

    def __init__(
        self,
        period_s: float = 0.01,
        horizon_s: float = 30.0,
        min_late_s: float = 0.002,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (period_s > 0 and horizon_s > 0 and min_late_s >= 0):
            raise ValueError("period_s and horizon_s must be > 0, min_late_s >= 0")
        self.period_s, self.horizon_s, self.min_late_s = period_s, horizon_s, min_late_s
        self.clock, self.sleep = clock, sleep
        self._late: deque[tuple[float, float]] = deque()  # (woke at, seconds late)
        self._due: float | None = None  # when the current sleep should end (None: not sleeping)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        t0 = self.clock()
        with self._lock:
            self._due = t0 + self.period_s
        self.sleep(self.period_s)
        now = self.clock()
        late = now - t0 - self.period_s
        with self._lock:
            self._due = None
            if late > self.min_late_s:
                self._late.append((now, late))
            while self._late and self._late[0][0] < now - self.horizon_s:
                self._late.popleft()

    def stall_s(self, since: float) -> float:
        """Seconds of lateness recorded after `since` (the meter's clock), plus the lateness of a wake-up still
        overdue now (the meter is starved at this moment too, and would only record it after the reply)."""
        now = self.clock()
        with self._lock:
            overdue = now - self._due if self._due is not None else 0.0
            recorded = sum(late for woke, late in self._late if woke > since)
        return recorded + (overdue if overdue > self.min_late_s else 0.0)

    def start(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self.tick()

        self._thread = threading.Thread(target=run, name="probe-stall-meter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)


class ProbeRefused(ValueError):
    """A probe request that is not answered (too large); the reason goes back to the caller."""


@dataclass
class ProbeCounters:
    """What one endpoint has served, for logs and tests."""

    calls: int = 0
    refused: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class ProbeEndpoint:
    """Answers BandwidthProbe calls for one robot; `handle` is ROS-message-in, message-out and testable alone."""

    def __init__(
        self, robot: str, max_reply_bytes: int = DEFAULT_MAX_REPLY, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD
    ) -> None:
        for name, value in (("max_reply_bytes", max_reply_bytes), ("max_payload_bytes", max_payload_bytes)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self.robot = validate_robot(robot)
        self.max_reply_bytes = max_reply_bytes
        self.max_payload_bytes = max_payload_bytes
        self.counters = ProbeCounters()
        self._zeros = bytes(max_reply_bytes)
        self._lock = threading.Lock()

    def handle(
        self, req: BandwidthProbeRequest, stamp: float | None = None, stall_s: float = 0.0
    ) -> BandwidthProbeResponse:
        """Check the request, count it and build the reply (raises ProbeRefused for an oversized one); `stall_s`:
        the server's own stall before it handled the request (StallMeter), sent back with the reply."""
        stamp = time.time() if stamp is None else stamp
        payload = req.payload
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            payload = bytes(payload)  # a client that sent a list; still only its length matters
        received = len(payload)
        reply = int(req.reply_bytes)
        with self._lock:
            self.counters.calls += 1
            if received > self.max_payload_bytes:
                self.counters.refused += 1
                raise ProbeRefused(f"probe payload of {received} B exceeds max_payload_bytes={self.max_payload_bytes}")
            if reply > self.max_reply_bytes:
                self.counters.refused += 1
                raise ProbeRefused(f"probe asks for reply_bytes={reply}, above max_reply_bytes={self.max_reply_bytes}")
            self.counters.bytes_in += received
            self.counters.bytes_out += reply
        return BandwidthProbeResponse(
            received_bytes=received, server_receive_stamp=stamp, server_stall_s=stall_s, payload=self._zeros[:reply]
        )


class ProbeServer:
    """rospy services for the endpoints of several robots."""

    def __init__(
        self, robots: Sequence[str], max_reply_bytes: int, max_payload_bytes: int, window_s: float = 10.0
    ) -> None:
        self.endpoints: dict[str, ProbeEndpoint] = {
            r: ProbeEndpoint(r, max_reply_bytes, max_payload_bytes) for r in robots
        }
        self._services: list[rospy.Service] = []
        self.meter = StallMeter(horizon_s=max(30.0, 2 * window_s))
        self.window_s = window_s

    def start(self) -> None:
        self.meter.start()
        for robot, endpoint in self.endpoints.items():
            name = probe_service_name(robot)
            self._services.append(rospy.Service(name, BandwidthProbe, self._callback(endpoint)))
            rospy.loginfo(
                "bandwidth probe endpoint %s (replies up to %d B, payloads up to %d B)",
                name,
                endpoint.max_reply_bytes,
                endpoint.max_payload_bytes,
            )

    def _callback(self, endpoint: ProbeEndpoint) -> Any:
        last_reply = [float("-inf")]  # the meter's clock when this endpoint last answered

        def on_probe(req: BandwidthProbeRequest) -> BandwidthProbeResponse:
            stamp = time.time()
            now = self.meter.clock()
            stall = self.meter.stall_s(max(last_reply[0], now - self.window_s))
            try:
                return endpoint.handle(req, stamp, stall)
            except ProbeRefused as err:
                rospy.logerr_throttle(5.0, f"[{endpoint.robot}] refused probe: {err}")
                raise rospy.ServiceException(str(err)) from None
            finally:
                last_reply[0] = self.meter.clock()

        return on_probe

    def shutdown(self) -> None:
        for s in self._services:
            s.shutdown("probe server stopping")
        self.meter.stop()


@dataclass
class ProbeServerSettings:
    """The probe server's settings (defaults < private parameters < command line, `ros/node_params.py`)."""

    robots: list = setting(["robot1"], "robot names (comma separated or a JSON list; robot1 is the clients' default)")
    max_reply_bytes: int = setting(DEFAULT_MAX_REPLY, "largest reply served")
    max_payload_bytes: int = setting(DEFAULT_MAX_PAYLOAD, "largest upload accepted")


DESCRIPTION = "Answer the bandwidth monitor's active probes on intradp/<robot>/probe."


def build_parser() -> argparse.ArgumentParser:
    return node_params.build_parser("bandwidth_probe_server", DESCRIPTION, node_params.spec_of(ProbeServerSettings))


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/bandwidth_probe_server."""
    spec = node_params.spec_of(ProbeServerSettings)
    args = build_parser().parse_args(node_params.cli_args(argv))
    rospy.init_node("bandwidth_probe_server", anonymous=False)
    try:
        settings = node_params.from_mapping(ProbeServerSettings, node_params.resolve(spec, args))
        robots = [str(r) for r in settings.robots]
        if not robots:
            raise ValueError("no robot names given")
        server = ProbeServer(robots, settings.max_reply_bytes, settings.max_payload_bytes)
    except ValueError as err:
        rospy.logfatal(f"bandwidth_probe_server: {err}")
        return 2
    server.start()
    rospy.spin()
    server.shutdown()
    return 0
