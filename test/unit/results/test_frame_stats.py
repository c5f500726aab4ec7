"""frame_stats: a frame's record + delivered tiles + the server's report -> the InferenceStats fields, adding up."""

from __future__ import annotations

import dataclasses

import pytest

from intradp_ros.core.plan import Plan
from intradp_ros.core.power import PowerModel
from intradp_ros.core.tile_ledger import ReceivedTile, SentTile
from intradp_ros.core.vocabulary import Mode
from intradp_ros.results.frame_stats import FrameRecord, FrameStats, frame_stats
from intradp_ros.results.stats_records import STATS_FIELDS, consistency_problems


@pytest.fixture(scope="module")
def plans(graph_and_input):
    _m, g, _x = graph_and_input
    return Plan.device_only(g), Plan.server_only(g)


def test_a_distributed_frame_adds_up_and_counts_only_delivered_tiles(plans) -> None:
    _device, server = plans
    f = FrameRecord("hdr", 100.0, 101.0, 7, server, True, False, [(100.2, 100.9)], "", 12.5)
    assert f.expects_report
    sent = [SentTile(0, 0, 100.2, 100.4, 3000), SentTile(0, 16, 100.4, 100.5, 1000)]
    recv = [ReceivedTile(5, 0, 100.7, 100.8, 200)]
    arrivals = {(0, 0): 100.45}  # the server got only the first up tile
    s = frame_stats(f, "robot1", "toy", Mode.INTRADP, sent, recv, arrivals, 0.25, PowerModel())
    assert s.latency_s == pytest.approx(1.0)
    assert s.robot_compute_s + s.robot_transmit_only_s + s.robot_wait_s == pytest.approx(s.latency_s)
    assert (s.bytes_up, s.tiles_up, s.bytes_down, s.tiles_down) == (3000, 1, 200, 1)
    assert s.server_compute_s == 0.25 and s.bandwidth_estimate_mbit_per_s == 12.5
    assert s.plan_id == server.plan_id and s.mode == "intradp" and type(s.mode) is str
    assert s.mean_power_w == pytest.approx(s.energy_j / s.latency_s)
    assert consistency_problems({**s.fields(), "stamp_s": 0.0}) == []


def test_a_local_frame_has_no_tiles_and_expects_no_report(plans) -> None:
    device, server = plans
    f = FrameRecord("hdr", 5.0, 5.5, 3, device, False, False)
    assert not f.expects_report
    assert not FrameRecord("h", 0.0, 1.0, 1, server, True, True).expects_report  # fell back: no report
    s = frame_stats(f, "robot1", "toy", "device_only", [], [])
    assert s.robot_compute_s == pytest.approx(0.5) and s.bytes_up == s.bytes_down == 0 and not s.fell_back_local


def test_fields_are_the_messages_fields() -> None:
    """FrameStats must stay field-for-field InferenceStats less its header (the ROS shell copies them)."""
    from intradp_ros.msg import InferenceStats

    names = [f.name for f in dataclasses.fields(FrameStats)]
    assert names == [n for n in InferenceStats.__slots__ if n != "header"]
    assert names == [n for n in STATS_FIELDS if n != "stamp_s"]
