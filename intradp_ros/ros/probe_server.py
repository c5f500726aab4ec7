"""Server-side endpoint for the bandwidth monitor's active probes: `/intradp/<robot>/probe` (BandwidthProbe).

It takes the uploaded payload (raw bytes; its content is never looked at), stamps when the request arrived
(wall clock, so a robot with a synchronised clock can split the time into up- and downlink), and answers with
`reply_bytes` zero bytes. Requests above `max_payload_bytes` or asking for more than `max_reply_bytes` are
refused with a logged error (the caller gets a ServiceException), so a bad or hostile client cannot make the
server allocate or send without bound. One process can serve several robots (`--robots robot1,robot2`).

Settings: command line, else private parameters (``~robots``, ``~max_reply_bytes``, ``~max_payload_bytes``).
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import rospy

from intradp_ros.srv import BandwidthProbe, BandwidthProbeRequest, BandwidthProbeResponse

DEFAULT_MAX_REPLY = 4 << 20
DEFAULT_MAX_PAYLOAD = 4 << 20


def probe_service_name(robot: str) -> str:
    """`/intradp/<robot>/probe` (the robot name must be a valid ROS name segment)."""
    validate_robot(robot)
    return f"/intradp/{robot}/probe"


def validate_robot(robot: str) -> str:
    """A robot name is one ROS graph name segment: a letter, then letters, digits or '_'."""
    if (
        not isinstance(robot, str)
        or not robot
        or not (robot[0].isalpha() and all(c.isalnum() or c == "_" for c in robot))
    ):
        raise ValueError(f"robot must be a ROS name segment (letter, then letters/digits/_), got {robot!r}")
    return robot


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

    def handle(self, req: BandwidthProbeRequest, stamp: Optional[float] = None) -> BandwidthProbeResponse:
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
        self.endpoints: Dict[str, ProbeEndpoint] = {
            r: ProbeEndpoint(r, max_reply_bytes, max_payload_bytes) for r in robots
        }
        self._services: List[rospy.Service] = []

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bandwidth_probe_server",
        description="Answer the bandwidth monitor's active probes on /intradp/<robot>/probe.",
    )
    p.add_argument(
        "--robots", help="robot names, comma separated (default: ~robots param, else 'robot1', the clients' default)"
    )
    p.add_argument(
        "--max-reply-bytes",
        dest="max_reply_bytes",
        type=int,
        help=f"largest reply served (default {DEFAULT_MAX_REPLY})",
    )
    p.add_argument(
        "--max-payload-bytes",
        dest="max_payload_bytes",
        type=int,
        help=f"largest upload accepted (default {DEFAULT_MAX_PAYLOAD})",
    )
    return p


def _names(value: Any) -> List[str]:
    if isinstance(value, str):
        return [r for r in value.replace(",", " ").split() if r]
    return [str(r) for r in value]


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/bandwidth_probe_server."""
    args = build_parser().parse_args(rospy.myargv(list(argv))[1:])
    rospy.init_node("bandwidth_probe_server", anonymous=False)
    robots = _names(args.robots if args.robots is not None else rospy.get_param("~robots", "robot1"))
    max_reply = (
        args.max_reply_bytes
        if args.max_reply_bytes is not None
        else int(rospy.get_param("~max_reply_bytes", DEFAULT_MAX_REPLY))
    )
    max_payload = (
        args.max_payload_bytes
        if args.max_payload_bytes is not None
        else int(rospy.get_param("~max_payload_bytes", DEFAULT_MAX_PAYLOAD))
    )
    try:
        if not robots:
            raise ValueError("no robot names given")
        server = ProbeServer(robots, max_reply, max_payload)
    except ValueError as err:
        rospy.logfatal(f"bandwidth_probe_server: {err}")
        return 2
    server.start()
    rospy.spin()
    server.shutdown()
    return 0
