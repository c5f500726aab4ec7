"""The monitor node's shell without a master: settings, message conversion, and the probe endpoint.
(The monitor's logic is tested ROS-free in test/unit/core/test_bandwidth_monitor.py.)"""

import socket
from types import SimpleNamespace

import pytest
from rosgraph.names import resolve_name

from intradp_ros.core.bandwidth_monitor import EstimateReport, PlanChange
from intradp_ros.msg import InferenceStats
from intradp_ros.ros.bandwidth_monitor import (
    _proxy_socket,
    build_parser,
    estimate_msg,
    frame_stats,
    load_settings,
    plan_book_topic,
    settings_from,
    switch_msg,
)
from intradp_ros.ros.probe_server import ProbeEndpoint, ProbeRefused, StallMeter, probe_service_name
from intradp_ros.srv import BandwidthProbeRequest


def test_settings_from_parameters() -> None:
    s = settings_from(
        {"robot": "r2", "rate": "10", "buckets": "1,2,4", "hysteresis": 2, "probes": "false", "probe_calls": 5}
    )
    assert s.robot == "r2" and s.rate_hz == 10.0 and s.confirm_updates == 2 and not s.probes_enabled
    assert [c.bucket_mbyte_per_s for c in s.choices] == [1.0, 2.0, 4.0] and not s.choices_fixed
    assert s.probe.train_calls == 5 and s.dead_band == 0.1 and s.jump_confirm == 2
    assert settings_from({"jump_confirm": 1}).jump_confirm == 1
    for bad in (
        {"robot": "bad name"},
        {"rate": 0},
        {"buckets": "3,1"},
        {"probe_direction": "x"},
        {"plan_table": "/nonexistent/table.json"},
        {"window": 0},
        {"probe_calls": 1},
        {"dead_band": 1.5},
    ):
        with pytest.raises(ValueError):
            settings_from(bad)


def test_command_line_beats_parameters_beats_defaults() -> None:
    args = build_parser().parse_args(["--rate", "4", "--probes", "no", "--probe-calls", "6"])
    params = {"rate": 9.0, "robot": "r3", "probe_calls": 8}
    s = load_settings(args, params=lambda name: (name in params, params.get(name)))
    assert s.rate_hz == 4.0 and not s.probes_enabled and s.robot == "r3" and s.probe.train_calls == 6
    assert s.confirm_updates == 3  # default


@pytest.mark.parametrize(("name", "value"), [("probes", "maybe"), ("rate", "fast"), ("window", "2.5x")])
def test_a_bad_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"setting {name}="):
        settings_from({name: value})


def test_messages_carry_the_cores_objects() -> None:
    sw = switch_msg(PlanChange("robot1", "intradp", 12, "mid", 1.0, 9.5, 0.1, 3.0))
    assert (sw.robot, sw.plan_id, sw.plan_name, sw.bucket_mbyte_per_s, sw.predicted_latency_s) == (
        "robot1",
        12,
        "mid",
        1.0,
        0.1,
    )
    est = estimate_msg(EstimateReport(8.0, 9.0, 9.5, 0.125, 4, 3, 1))
    assert (est.mbit_per_s, est.raw_mbit_per_s, est.samples, est.passive_samples) == (8.0, 9.0, 4, 1)
    fs = frame_stats(
        InferenceStats(robot="robot1", request_id=3, latency_s=0.5, transmit_s=0.2, robot_transmit_only_s=0.1)
    )
    assert (fs.request_id, fs.transmit_s, fs.transmit_only_s, fs.error) == (3, 0.2, 0.1, "")
    # relative (intradp_ros.ros.names): today's name for a node at the root, inside the namespace of a node in one
    assert resolve_name(plan_book_topic("robot1"), "/bandwidth_monitor") == "/intradp/robot1/plan_book"
    assert resolve_name(plan_book_topic("robot1"), "/r1/bandwidth_monitor") == "/r1/intradp/robot1/plan_book"


# ---- probe endpoint -------------------------------------------------------------------------------------------
def test_probe_endpoint_answers_with_the_requested_bytes() -> None:
    ep = ProbeEndpoint("robot1", max_reply_bytes=1 << 20, max_payload_bytes=1 << 20)
    resp = ep.handle(BandwidthProbeRequest(payload=bytes(1000), reply_bytes=5000), stamp=42.0)
    assert resp.received_bytes == 1000 and resp.server_receive_stamp == 42.0
    assert isinstance(resp.payload, bytes) and len(resp.payload) == 5000
    assert ep.counters.calls == 1 and ep.counters.bytes_in == 1000 and ep.counters.bytes_out == 5000
    assert resolve_name(probe_service_name("robot1"), "/bandwidth_monitor") == "/intradp/robot1/probe"
    assert resolve_name(probe_service_name("robot1"), "/r1/bandwidth_monitor") == "/r1/intradp/robot1/probe"


def test_the_stall_meter_sums_how_late_the_process_woke() -> None:
    now = [0.0]
    late_by = iter([0.0, 0.001, 0.5, 0.0, 0.2])

    def sleep(s: float) -> None:
        now[0] += s + next(late_by)

    meter = StallMeter(period_s=0.01, horizon_s=30.0, min_late_s=0.002, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        meter.tick()
    assert meter.stall_s(-1.0) == pytest.approx(0.7), "0.5 + 0.2 late; 1 ms is timer noise"
    assert meter.stall_s(0.6) == pytest.approx(0.2), "only wake-ups after `since` count"
    now[0] += 100.0
    meter._due = now[0] - 0.3  # a wake-up still overdue when the request is handled counts too
    assert meter.stall_s(now[0] - 5.0) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        StallMeter(period_s=0.0)


def test_the_probe_server_sends_its_stall_since_the_last_reply() -> None:
    from intradp_ros.ros.bandwidth_monitor import server_stall
    from intradp_ros.ros.probe_server import ProbeServer

    server = ProbeServer(["robot1"], 1 << 20, 1 << 20, window_s=10.0)
    now = [1000.0]
    stalls: list[float] = []
    server.meter.clock = lambda: now[0]
    server.meter.stall_s = lambda since: stalls.append(since) or 0.25  # type: ignore[method-assign]
    on_probe = server._callback(server.endpoints["robot1"])
    resp = on_probe(BandwidthProbeRequest(payload=bytes(10), reply_bytes=0))
    assert resp.server_stall_s == 0.25 and stalls == [990.0], "the first call looks back at most window_s"
    now[0] = 1000.5
    on_probe(BandwidthProbeRequest(payload=bytes(10), reply_bytes=0))
    assert stalls[-1] == 1000.0, "later calls look back to the previous reply"
    assert server_stall(resp) == 0.25
    for bad in (None, "x", float("nan"), -1.0):
        assert server_stall(type("R", (), {"server_stall_s": bad})()) is None
    assert server_stall(object()) is None, "a server without the field"


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


def test_the_probe_proxys_socket_is_found_for_kernel_timing() -> None:
    """rospy keeps a persistent proxy's socket on proxy.transport.socket; anything else gives None (no rescue)."""
    sock = socket.socket()
    try:
        assert _proxy_socket(SimpleNamespace(transport=SimpleNamespace(socket=sock))) is sock
        assert _proxy_socket(SimpleNamespace(transport=None)) is None
        assert _proxy_socket(SimpleNamespace(transport=SimpleNamespace(socket=None))) is None
    finally:
        sock.close()


def test_a_watchdog_that_fires_as_a_call_ends_does_not_leave_a_closed_connection(monkeypatch) -> None:
    """The watchdog closed the persistent connection just as a call succeeded; the next call used the closed
    proxy, rospy raised AttributeError ('NoneType' object has no attribute 'tell') and the probe thread died
    (seen in the system benchmark: no probe for the rest of the run)."""
    import threading as th

    from intradp_ros.ros import bandwidth_monitor as bm

    class SlowProxy:
        closed = 0

        def __init__(self, *args, **kwargs) -> None:
            pass

        def __call__(self, payload, reply_bytes):
            th.Event().wait(0.05)  # longer than the call's timeout: the watchdog fires meanwhile
            return type("Resp", (), {"received_bytes": len(payload), "payload": b""})()

        def close(self) -> None:
            SlowProxy.closed += 1

    monkeypatch.setattr(bm.rospy, "wait_for_service", lambda *a, **k: None)
    monkeypatch.setattr(bm.rospy, "ServiceProxy", SlowProxy)
    client = bm.ProbeClient("/intradp/robot1/probe", 1 << 10)
    client.call(10, 0, timeout_s=0.01)
    assert SlowProxy.closed >= 1 and client._proxy is None, "the next call must open a fresh connection"
