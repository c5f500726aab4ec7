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
