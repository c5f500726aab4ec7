"""Unit tests of the monitor's message logic and the probe endpoint, without a master (fake clock, captured publishes)."""

import math

import pytest
from rosgraph.names import resolve_name

from intradp_ros.core.bandwidth import BandwidthSample, InvalidSample, mbit_to_bytes_per_s
from intradp_ros.msg import InferenceStats
from intradp_ros.ros.bandwidth_monitor import MonitorCore, MonitorSettings, settings_from
from intradp_ros.ros.probe_server import ProbeEndpoint, ProbeRefused, probe_service_name
from intradp_ros.srv import BandwidthProbeRequest


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_core(**settings):
    clock = FakeClock()
    switches = []
    core = MonitorCore(MonitorSettings(robot="robot1", **settings), switches.append, clock)
    return core, switches, clock


def probe(core, clock, mbit: float, seconds: float = 0.05) -> None:
    clock.t += 0.3
    core.add_sample(BandwidthSample(mbit_to_bytes_per_s(mbit) * seconds, seconds, "probe", clock.t))


def test_first_estimate_announces_a_plan_and_a_step_switches_it() -> None:
    core, switches, clock = make_core()
    assert core.estimate_msg() is None  # nothing measured yet: nothing published
    for _ in range(6):
        probe(core, clock, 38.0)
    assert len(switches) == 1
    first = switches[0]
    assert (first.robot, first.mode, first.bucket_mbyte_per_s, first.plan_id) == ("robot1", "intradp", 4.0, 4)
    assert first.estimate_mbit_per_s == pytest.approx(38.0)
    for _ in range(3):
        probe(core, clock, 9.5)
    assert len(switches) == 2 and switches[1].bucket_mbyte_per_s == 1.0
    est = core.estimate_msg()
    assert est.mbit_per_s == pytest.approx(9.5, rel=0.05)
    assert est.samples == est.probe_samples and est.passive_samples == 0
    assert est.last_sample_mbit_per_s == pytest.approx(9.5)


def test_estimate_after_the_window_aged_out_keeps_the_value_with_zero_samples() -> None:
    core, _, clock = make_core()
    probe(core, clock, 20.0)
    clock.t += 10.0
    est = core.estimate_msg()
    assert est.samples == 0 and est.mbit_per_s == pytest.approx(20.0)


def stats(**fields) -> InferenceStats:
    base = dict(robot="robot1", request_id=7, latency_s=0.5, transmit_s=0.2, bytes_up=1_000_000, bytes_down=100_000)
    base.update(fields)
    return InferenceStats(**base)


def test_stats_give_passive_samples_and_mark_traffic() -> None:
    core, switches, clock = make_core()
    assert core.on_stats(stats()) is None
    est = core.estimate_msg()
    assert est.passive_samples == 1 and est.mbit_per_s == pytest.approx(40.0)  # 1 MB in 0.2 s
    assert core.activity.quiet_for(clock.t) == 0.0
    assert len(switches) == 1


def test_small_failed_and_local_frames_give_no_sample() -> None:
    core, _, _ = make_core()
    assert core.on_stats(stats(bytes_up=1000, bytes_down=10)) is None
    assert core.on_stats(stats(error="server gone")) is None
    assert core.on_stats(stats(fell_back_local=True)) is None
    assert core.estimate_msg() is None
    assert core.activity.last_traffic is not None  # but they were traffic


@pytest.mark.parametrize(
    "bad",
    [
        dict(robot="robot2"),
        dict(latency_s=math.nan),
        dict(transmit_s=math.nan),
        dict(transmit_s=-1.0),
        dict(transmit_s=0.0),
        dict(latency_s=-2.0),
    ],
)
def test_bad_stats_are_dropped_with_a_reason(bad) -> None:
    core, _, _ = make_core()
    reason = core.on_stats(stats(**bad))
    assert reason and core.dropped_stats == 1
    assert core.estimate_msg() is None


def test_probe_waits_for_an_idle_link_and_the_budget() -> None:
    core, _, clock = make_core()
    assert core.may_probe(clock.t, 0.1)
    core.on_stats(stats(bytes_up=10, bytes_down=10))  # traffic just now
    assert not core.may_probe(clock.t + 0.01, 0.1)
    core.record_probe(clock.t + 0.5, clock.t + 0.6)
    assert not core.may_probe(clock.t + 0.7, 0.1)  # paced: 5 % while inference runs
    assert core.may_probe(clock.t + 3.0, 0.1)  # inference no longer running, old probe paced out


def test_probe_calls_are_sized_from_the_estimate() -> None:
    core, _, clock = make_core()
    calls = core.probe_calls("up")
    assert calls[-1].payload_bytes == core.settings.probe.initial_bytes
    probe(core, clock, 40.0)
    calls = core.probe_calls("down")
    assert calls[-1].reply_bytes == int(mbit_to_bytes_per_s(40.0) * core.settings.probe.target_s)
    assert core.expected_probe_s(calls) == pytest.approx(
        (calls[0].reply_bytes + calls[1].reply_bytes) / mbit_to_bytes_per_s(40.0)
    )


def test_settings_from_parameters() -> None:
    s = settings_from({"robot": "r2", "rate": "10", "buckets": "1,2,4", "hysteresis": 2, "probes": "false"})
    assert s.robot == "r2" and s.rate_hz == 10.0 and s.confirm_updates == 2 and not s.probes_enabled
    assert [c.bucket_mbyte_per_s for c in s.choices] == [1.0, 2.0, 4.0]
    for bad in (
        {"robot": "bad name"},
        {"rate": 0},
        {"buckets": "3,1"},
        {"probe_direction": "x"},
        {"plan_table": "/nonexistent/table.json"},
        {"window": 0},
    ):
        with pytest.raises(ValueError):
            settings_from(bad)


# ---- probe endpoint -------------------------------------------------------------------------------------------
def test_probe_endpoint_answers_with_the_requested_bytes() -> None:
    ep = ProbeEndpoint("robot1", max_reply_bytes=1 << 20, max_payload_bytes=1 << 20)
    resp = ep.handle(BandwidthProbeRequest(payload=bytes(1000), reply_bytes=5000), stamp=42.0)
    assert resp.received_bytes == 1000 and resp.server_receive_stamp == 42.0
    assert isinstance(resp.payload, bytes) and len(resp.payload) == 5000
    assert ep.counters.calls == 1 and ep.counters.bytes_in == 1000 and ep.counters.bytes_out == 5000
    # relative (intradp_ros.ros.names): today's name for a node at the root, inside the namespace of a node in one
    assert resolve_name(probe_service_name("robot1"), "/bandwidth_monitor") == "/intradp/robot1/probe"
    assert resolve_name(probe_service_name("robot1"), "/r1/bandwidth_monitor") == "/r1/intradp/robot1/probe"


def test_probe_endpoint_refuses_oversized_requests() -> None:
    ep = ProbeEndpoint("robot1", max_reply_bytes=100, max_payload_bytes=100)
    with pytest.raises(ProbeRefused, match="reply_bytes"):
        ep.handle(BandwidthProbeRequest(payload=b"", reply_bytes=101))
    with pytest.raises(ProbeRefused, match="payload"):
        ep.handle(BandwidthProbeRequest(payload=bytes(101), reply_bytes=0))
    assert ep.counters.refused == 2 and ep.counters.bytes_out == 0
    with pytest.raises(ValueError):
        ProbeEndpoint("robot 1")
    with pytest.raises(ValueError):
        ProbeEndpoint("robot1", max_reply_bytes=-1)


def test_invalid_sample_from_the_probe_path_is_refused() -> None:
    core, _, clock = make_core()
    with pytest.raises(InvalidSample):
        core.add_sample(BandwidthSample(0.0, 0.1, "probe", clock.t))
