"""Server-side endpoint for the bandwidth monitor's active probes: `intradp/<robot>/probe` (BandwidthProbe).

It takes the uploaded payload (raw bytes; its content is never looked at), stamps when the request arrived
(wall clock, so a robot with a synchronised clock can split the time into up- and downlink), and answers with
`reply_bytes` zero bytes. Requests above `max_payload_bytes` or asking for more than `max_reply_bytes` are
refused with a logged error (the caller gets a ServiceException), so a bad or hostile client cannot make the
server allocate or send without bound. One process can serve several robots (`--robots robot1,robot2`).

Settings (`ProbeServerSettings`): command line, else private parameters (``~robots``, ``~max_reply_bytes``,
``~max_payload_bytes``), else the defaults, through the nodes' one loader (intradp_ros.ros.node_params).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
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

    def handle(self, req: BandwidthProbeRequest, stamp: float | None = None) -> BandwidthProbeResponse:
        """Check the request, count it and build the reply (raises ProbeRefused for an oversized one)."""
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
        return BandwidthProbeResponse(received_bytes=received, server_receive_stamp=stamp, payload=self._zeros[:reply])


class ProbeServer:
    """rospy services for the endpoints of several robots."""

    def __init__(self, robots: Sequence[str], max_reply_bytes: int, max_payload_bytes: int) -> None:
        self.endpoints: dict[str, ProbeEndpoint] = {
            r: ProbeEndpoint(r, max_reply_bytes, max_payload_bytes) for r in robots
        }
        self._services: list[rospy.Service] = []

    def start(self) -> None:
        for robot, endpoint in self.endpoints.items():
            name = probe_service_name(robot)
            self._services.append(rospy.Service(name, BandwidthProbe, self._callback(endpoint)))
            rospy.loginfo(
                "bandwidth probe endpoint %s (replies up to %d B, payloads up to %d B)",
                name,
                endpoint.max_reply_bytes,
                endpoint.max_payload_bytes,
            )

    @staticmethod
    def _callback(endpoint: ProbeEndpoint) -> Any:
        def on_probe(req: BandwidthProbeRequest) -> BandwidthProbeResponse:
            stamp = time.time()
            try:
                return endpoint.handle(req, stamp)
            except ProbeRefused as err:
                rospy.logerr_throttle(5.0, f"[{endpoint.robot}] refused probe: {err}")
                raise rospy.ServiceException(str(err)) from None

        return on_probe

    def shutdown(self) -> None:
        for s in self._services:
            s.shutdown("probe server stopping")


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
