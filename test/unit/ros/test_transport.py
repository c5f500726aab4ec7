"""RosTransport without a master: its receive limit comes from the graph, and its publisher gets per-subscriber
writers (shared by transports of the same topic in one process)."""

from __future__ import annotations

import pytest

pytest.importorskip("rospy")

from intradp_ros.core.codec import UNKNOWN_GRAPH_LIMIT, graph_tile_limit
from intradp_ros.ros.connection_writer import WriterSet
from intradp_ros.ros.transport import RosTransport


def test_the_size_limit_follows_the_graph_and_writers_are_installed(graph_and_input) -> None:
    _m, g, _x = graph_and_input
    t = RosTransport("robot", "robot_limits", g)
    other = RosTransport("robot", "robot_limits", None)  # the same topic in this process
    try:
        assert t.max_bytes == graph_tile_limit(g) and other.max_bytes == UNKNOWN_GRAPH_LIMIT
        assert WriterSet.of(t._pub) is t.writers and other.writers is t.writers
        server = RosTransport("server", "robot_limits", g, max_bytes=1234)
        assert server.max_bytes == 1234
        server.close()
    finally:
        t.close()
        other.close()
