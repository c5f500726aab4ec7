"""names: every topic and service of a robot, relative to the node's namespace; today's names at the root."""

from __future__ import annotations

import pytest
from rosgraph.names import resolve_name

from intradp_ros.ros.names import RobotNames, validate_base


def test_root_nodes_keep_todays_absolute_names() -> None:
    n = RobotNames("robot1")
    for leaf in ("stats", "plan", "bandwidth", "server_report", "handshake", "up", "down", "probe"):
        assert resolve_name(getattr(n, leaf), "/kapao_client") == f"/intradp/robot1/{leaf}"


def test_a_namespace_moves_every_name_and_an_absolute_base_does_not() -> None:
    n = RobotNames("robot1")
    assert resolve_name(n.stats, "/r1/kapao_client") == "/r1/intradp/robot1/stats"
    assert resolve_name(n.name("poses"), "/r2/kapao_client") == "/r2/intradp/robot1/poses"
    assert resolve_name(RobotNames("robot1", "/intradp").handshake, "/r1/kapao_client") == "/intradp/robot1/handshake"


@pytest.mark.parametrize("base", ["", "~intradp", "intradp/", "a//b"])
def test_bad_bases_and_robot_names_are_refused(base: str) -> None:
    with pytest.raises(ValueError):
        validate_base(base)
    with pytest.raises(ValueError):
        RobotNames("a/b")


def test_client_result_leaves_keep_todays_topics() -> None:
    from intradp_ros.ros import names

    n = RobotNames("robot1")
    leaves = (names.OUTPUT, names.POSES, names.ANNOTATED, names.COMPLETED_VOXELS, names.COMPLETED_VOXELS_CLOUD)
    assert [resolve_name(n.name(leaf), "/c") for leaf in leaves] == [
        "/intradp/robot1/output",
        "/intradp/robot1/poses",
        "/intradp/robot1/annotated",
        "/intradp/robot1/completed_voxels",
        "/intradp/robot1/completed_voxels_cloud",
    ]
