"""session_transport's executor halves over an in-process link (no master): the robot half records its idle
intervals and can be aborted mid-request (the client's fallback path), the server half reports every request."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from intradp_ros.core import Plan
from intradp_ros.core.executor import ExecutionError
from intradp_ros.core.tile import Tile
from intradp_ros.core.transport import inprocess_pair
from intradp_ros.ros.session_transport import ReportingServerHalf, RobotClientHalf


def test_split_request_is_reported_and_idle_time_recorded(graph_and_input) -> None:
    m, g, x = graph_and_input
    plan = Plan.server_only(g)
    robot_end, server_end = inprocess_pair(2e6)  # 2 MB/s: the robot waits for the server's rows
    done = []
    server = ReportingServerHalf(g, server_end, [plan], "cpu", 5.0, lambda ex, err: done.append((ex.request_id, err)))
    client = RobotClientHalf(g, robot_end, "cpu", 5.0, "robot1")
    try:
        y = client.infer(plan, x)
        with torch.no_grad():
            torch.testing.assert_close(y, m(x), rtol=1e-4, atol=1e-5)
        rid = client.last_request_id
        assert rid > 10**12, "request ids start from the wall clock, so a restarted client never reuses one"
        assert client.last_idle and all(b > a for a, b in client.last_idle)
        waited = sum(b - a for a, b in client.last_idle)
        assert waited == pytest.approx(client.last_stats.wait_s, rel=1e-6, abs=1e-6)
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done == [(rid, "")]
        assert client.next_local_id() == rid + 1
    finally:
        client.close()
        server.close()


def test_abort_fails_the_running_request_at_once(graph_and_input) -> None:
    _m, g, x = graph_and_input
    plan = Plan.server_only(g)
    robot_end, _server_end = inprocess_pair(None)  # nobody serves: the robot would wait 30 s
    client = RobotClientHalf(g, robot_end, "cpu", 30.0, "robot1")
    assert client.abort("nothing running") is False
    timer = threading.Timer(0.2, client.abort, args=("server disconnected",))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(ExecutionError, match="server disconnected"):
            client.infer(plan, x)
        assert time.monotonic() - t0 < 5.0
        assert client.infer(Plan.device_only(g), x).shape == (1, 8, 32, 32)  # the local fallback still runs
    finally:
        timer.cancel()
        client.close()


def test_failed_server_request_is_reported_with_its_error(graph_and_input) -> None:
    _m, g, x = graph_and_input
    plan = Plan.server_only(g)
    robot_end, server_end = inprocess_pair(None)
    done = []
    server = ReportingServerHalf(g, server_end, [plan], "cpu", 5.0, lambda ex, err: done.append((ex.request_id, err)))
    node = g.nodes[g.input_indices[0]]
    bad = Tile(77, plan.plan_id, node.index, node.axis, 0, 1, x.narrow(node.axis, 0, 1).contiguous().numpy())
    try:
        robot_end.send(bad)  # rows the plan never sends: the server half must fail, not merge them
        deadline = time.monotonic() + 8
        while not done and time.monotonic() < deadline:
            time.sleep(0.02)
        assert done and done[0][0] == 77 and "unexpected tile" in done[0][1]
    finally:
        robot_end.close()
        server.close()


# ------------------------------------------------------------------------------------------ authenticated tiles
class _FakeTopicImpl:
    """What the per-connection writers wrap on a rospy topic (no connection ever comes here)."""

    def add_connection(self, c: object) -> bool:
        return True

    def remove_connection(self, c: object) -> None:
        pass


class _FakePub:
    def __init__(self, name: str, *args: object, **kwargs: object) -> None:
        self.resolved_name, self.sent, self.impl = name, [], _FakeTopicImpl()

    def get_num_connections(self) -> int:
        return 1

    def publish(self, msg: object) -> None:
        self.sent.append(msg)

    def unregister(self) -> None:
        pass


class _FakeSub(_FakePub):
    pass


@pytest.fixture
def fake_topics(monkeypatch):
    from intradp_ros.ros import transport as ros_transport

    monkeypatch.setattr(ros_transport.rospy, "Publisher", _FakePub)
    monkeypatch.setattr(ros_transport.rospy, "Subscriber", _FakeSub)


def _tile() -> Tile:
    import numpy as np

    return Tile(42, 1, 0, 2, 0, 4, np.arange(8 * 4 * 5, dtype=np.float32).reshape(1, 8, 4, 5), robot="robot1")


def _ends(auth_robot, auth_server):
    from intradp_ros.ros.session_transport import RecordingTransport

    return RecordingTransport("robot", "robot1", auth=auth_robot), RecordingTransport(
        "server", "robot1", auth=auth_server
    )


def test_authentic_tiles_pass_and_forged_ones_are_dropped_before_the_ledger(fake_topics) -> None:
    import copy

    from intradp_ros.core.auth import TileAuth

    key = b"k" * 32
    robot, server = _ends(TileAuth("robot", key), TileAuth("server", key))
    try:
        robot.send(_tile())
        msg = robot._pub.sent[-1]
        assert len(msg.mac) == 16
        server._on_msg(msg)
        got = server.recv(timeout=1.0)
        assert got is not None and got.request_id == 42
        forged = copy.deepcopy(msg)
        forged.data = bytes(len(msg.data))  # zeroed payload, the running request id, the old MAC
        server._on_msg(forged)
        unsigned = copy.deepcopy(msg)
        unsigned.mac = b""
        server._on_msg(unsigned)
        server._on_msg(copy.deepcopy(msg))  # the authentic tile recorded and sent again
        assert server.recv(timeout=0.2) is None
        assert server.forged == 3 and server.auth_drops.count("bad_mac") == 2
        assert server.auth_drops.count("replayed") == 1
        sent, received = server.take_records(42)
        assert len(received) == 1  # only the authentic tile was accounted for
    finally:
        robot.close()
        server.close()


def test_tiles_of_another_session_are_dropped(fake_topics) -> None:
    from intradp_ros.core.auth import TileAuth

    robot, server = _ends(TileAuth("robot", b"a" * 32), TileAuth("server", b"b" * 32))
    try:
        robot.send(_tile())
        server._on_msg(robot._pub.sent[-1])
        assert server.recv(timeout=0.2) is None and server.forged == 1
    finally:
        robot.close()
        server.close()


def test_without_a_key_tiles_travel_unauthenticated_as_before(fake_topics) -> None:
    robot, server = _ends(None, None)
    try:
        robot.send(_tile())
        msg = robot._pub.sent[-1]
        assert len(msg.mac) == 0
        server._on_msg(msg)
        assert server.recv(timeout=1.0) is not None and server.forged == 0
    finally:
        robot.close()
        server.close()


def test_a_robot_without_a_session_key_cannot_send(fake_topics) -> None:
    from intradp_ros.core.auth import AuthError, TileAuth

    robot, server = _ends(TileAuth("robot"), None)
    try:
        with pytest.raises(AuthError, match="no session key"):
            robot.send(_tile())  # the engine's sender fails the request with this cause
        assert not robot._pub.sent
    finally:
        robot.close()
        server.close()
