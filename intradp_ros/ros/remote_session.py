"""IntraDP's remote path: `IntraDP(server="<host>")` runs the robot half here against an `intradp_server`.

`RemoteSession.connect(model, example, server=..., robot=...)` makes this process a ROS node (if it is not one
yet) on the master at `server` ("host" -> http://host:11311, a full http:// URI, or "ros" for the master this
process already uses, e.g. the robot's master bridged to the server's), derives the replica id from the model
(registry name from `model.model_name`, its input size from the example), handshakes through the same protocol
code as the client nodes (intradp_ros.core.robot_session; the server refuses other weights or graphs), and then
runs requests through the same client half and ROS transport. Plans come from the session's plan book:
`session.plan(mode, bandwidth_MBps)`; the API finishes a failed frame locally with the same FrameRunner.
"""

from __future__ import annotations

import os
import socket
import time
import xmlrpc.client
from typing import Any

import rospy
import torch
import torch.nn as nn

from intradp_ros.core.auth import load_secret
from intradp_ros.core.cache import default_cache_dir
from intradp_ros.core.capture_graph import capture
from intradp_ros.core.plan import Plan
from intradp_ros.core.plan_book import PlanBook, validate_mode
from intradp_ros.core.profiler import cached_profile
from intradp_ros.core.robot_session import SessionIds, SessionProtocol, SessionRefused
from intradp_ros.core.session import ModelConfig, Replica, weights_fingerprint
from intradp_ros.core.session_auth import ClientKeys
from intradp_ros.core.vocabulary import Side
from intradp_ros.ros.names import RobotNames
from intradp_ros.ros.session_link import handshake_call
from intradp_ros.ros.session_transport import RecordingTransport, RobotClientHalf


class RemoteUnavailable(RuntimeError):
    """The server could not be reached or refused the session (the message says why)."""


def master_uri_of(server: str) -> str | None:
    """'host' -> 'http://host:11311', a URI unchanged, 'ros' -> None (keep this process's master)."""
    if server == "ros":
        return None
    if server.startswith("http://"):
        return server
    return f"http://{server}:11311"


def master_reachable(uri: str, timeout: float) -> bool:
    """True when a ROS master answers getPid at `uri` within `timeout` seconds."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        xmlrpc.client.ServerProxy(uri).getPid("/intradp_api")
        return True
    except (OSError, xmlrpc.client.Error):
        return False
    finally:
        socket.setdefaulttimeout(old)


def config_of(model: nn.Module, example: torch.Tensor) -> ModelConfig:
    """The replica id of a registry-built model at this input size (weights are compared by fingerprint)."""
    name = getattr(model, "model_name", None)
    if not name:
        raise RemoteUnavailable("a remote server needs a model from intradp_ros.models.build (it has no model_name)")
    if name.startswith("sconet"):
        return ModelConfig(name, {"grid_xzy": [int(v) for v in example.shape[-3:]]})
    return ModelConfig(name, {"input_size": [int(v) for v in example.shape[-2:]]})


class RemoteSession:
    """One captured model served by a remote intradp_server."""

    def __init__(
        self,
        replica: Replica,
        robot: str,
        book: PlanBook,
        device: Any = "cpu",
        timeout: float = 30.0,
        keys: ClientKeys | None = None,
    ) -> None:
        self.replica, self.robot, self.book = replica, robot, book
        self.transport = RecordingTransport(Side.ROBOT, robot, replica.graph, auth=keys.tiles if keys else None)
        self.client = RobotClientHalf(replica.graph, self.transport, device, timeout, robot)

    @classmethod
    def connect(
        cls,
        model: nn.Module,
        example: torch.Tensor,
        server: str,
        robot: str = "robot1",
        timeout: float = 60.0,
        device: Any = "cpu",
        key_file: str = "",
    ) -> RemoteSession:
        """Handshake with the server and open the tile link; with `key_file` (the server's shared secret,
        docs/security.md) the handshake and every tile are authenticated."""
        keys = ClientKeys(load_secret(key_file) if key_file else None, robot)  # a bad key file fails here, first
        uri = master_uri_of(server)
        config = config_of(model, example)
        if uri is not None and not master_reachable(uri, min(timeout, 5.0)):
            raise RemoteUnavailable(
                f"server {server!r}: no ROS master answers at {uri} (is intradp_server running, "
                "and ROS_IP set on both sides?)"
            )
        if not rospy.core.is_initialized():
            if uri is not None:
                os.environ["ROS_MASTER_URI"] = uri
            rospy.init_node(f"intradp_api_{robot}", anonymous=True, disable_signals=True)
        graph = capture(model, example, check=False)
        replica = Replica(config, model, graph, example, weights_fingerprint(model))
        profile, _hit = cached_profile(graph, [example], default_cache_dir(), device, repeats=1)
        deadline = time.monotonic() + timeout
        names = RobotNames(robot)
        service = names.handshake
        try:  # a server that is still loading (or a bridge still syncing) has not registered it yet
            rospy.wait_for_service(service, timeout=timeout)
        except rospy.ROSException:
            raise RemoteUnavailable(
                f"server {server!r}: no {service} service within {timeout:g} s (is intradp_server "
                f"running for robot {robot}, and the master bridge?)"
            ) from None
        protocol = SessionProtocol(SessionIds.of(robot, replica), graph, handshake_call(names, keys))
        try:
            book = protocol.handshake(profile.to_json(), max(1.0, deadline - time.monotonic()))
        except SessionRefused as e:
            raise RemoteUnavailable(f"server {server!r} (robot {robot}): {e}") from None
        session = cls(replica, robot, book, device, keys=keys)
        deadline = time.monotonic() + 10.0
        while not session.transport.peer_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not session.transport.peer_connected():
            session.close()
            raise RemoteUnavailable(f"server {server!r}: tile topics of {robot} never connected (bridge? ROS_IP?)")
        return session

    def plan(self, mode: str = "intradp", bandwidth_MBps: float | None = None) -> Plan:
        """The book's plan for a mode and bandwidth (plans the server knows; others would be refused)."""
        return self.book.plan_for(validate_mode(mode), bandwidth_MBps)

    def infer(self, plan: Plan, *inputs: torch.Tensor) -> Any:
        """One distributed inference (ExecutionError when the server does not answer in time)."""
        return self.client.infer(plan, *inputs)

    def close(self) -> None:
        self.client.close()
