"""Unit tests of probe planning, the duty-cycle budget, link activity and passive samples."""

import math
import socket
import struct
import threading
import time

import pytest

from intradp_ros.core.bandwidth import InvalidSample
from intradp_ros.core.bandwidth_probe import (
    DutyBudget,
    LinkActivity,
    ProbeCall,
    ProbeConfig,
    call_timeout,
    passive_sample,
    plan_probe,
    probe_bytes,
    socket_network_time_s,
    tcp_network_time_s,
    thread_run_queue_wait_s,
    timeout_sample,
    train_sample,
)

CFG = ProbeConfig()


def test_probe_size_follows_the_estimate_within_bounds() -> None:
    assert probe_bytes(None, CFG) == CFG.initial_bytes
    assert probe_bytes(5e6, CFG) == int(5e6 * CFG.target_s)
    assert probe_bytes(1e3, CFG) == CFG.min_bytes
    assert probe_bytes(1e12, CFG) == CFG.max_bytes
    assert probe_bytes(math.nan, CFG) == CFG.initial_bytes


def test_probe_train_is_equal_calls_in_one_direction() -> None:
    up = plan_probe("up", 100_000, CFG)
    assert up == [ProbeCall(100_000, 0, "up")] * CFG.train_calls
    down = plan_probe("down", 100_000, CFG)
    assert [(c.payload_bytes, c.reply_bytes, c.measured_bytes) for c in down] == [(0, 100_000, 100_000)] * len(up)
    with pytest.raises(ValueError):
        plan_probe("both", 10, CFG)


def train(seconds, chunk=50_000, direction="up"):
    calls = plan_probe(direction, chunk, ProbeConfig(train_calls=len(seconds)))
    return train_sample(calls, seconds, [chunk] * len(seconds), 7.0, CFG.drain_ratio)


def test_train_excludes_the_first_call_and_calls_still_inside_the_bucket() -> None:
    # 1 MB/s link; a 4 KiB bucket makes only the first call fast
    r = train([0.046, 0.05, 0.05, 0.05])
    assert r.excluded == 1 and r.sample.bytes_per_s == pytest.approx(1e6) and r.sample.stamp == 7.0
    # a bucket larger than a call (e.g. 80 kB): the first two calls are fast, both are excluded
    r = train([0.001, 0.02, 0.05, 0.05, 0.05])
    assert r.excluded == 2 and r.sample.bytes_per_s == pytest.approx(1e6)
    assert r.call_rates[0] == pytest.approx(5e7)


def test_train_keeps_at_least_one_call_and_does_not_drop_a_slow_tail() -> None:
    r = train([0.001, 0.001, 0.05, 0.05, 0.05, 0.05])  # the last call that is still fast is the last excluded
    assert r.excluded == 2 and r.sample.bytes_per_s == pytest.approx(1e6)
    r = train([0.05, 0.05, 0.05, 0.1])  # a slow last call is link time: it is kept
    assert r.excluded == 1 and r.sample.bytes_per_s == pytest.approx(150_000 / 0.2)


def test_train_refuses_short_transfers_and_bad_times() -> None:
    calls = plan_probe("down", 1000, ProbeConfig(train_calls=4))
    with pytest.raises(InvalidSample):
        train_sample(calls, [0.1] * 4, [1000, 1000, 900, 1000], 1.0, 1.3)  # truncated reply
    with pytest.raises(InvalidSample):
        train_sample(calls, [0.1, 0.1, 0.0, 0.1], [1000] * 4, 1.0, 1.3)
    with pytest.raises(ValueError):
        train_sample(calls, [0.1] * 3, [1000] * 4, 1.0, 1.3)


def test_call_timeout_follows_the_estimate_within_bounds() -> None:
    call = ProbeCall(100_000, 0, "up")
    assert call_timeout(call, None, CFG) == CFG.call_timeout_s
    assert call_timeout(call, 1e6, CFG) == pytest.approx(CFG.timeout_factor * 0.1)  # 0.8 s
    assert call_timeout(call, 1e9, CFG) == CFG.min_timeout_s
    assert call_timeout(call, 1e5, CFG) == CFG.call_timeout_s  # 1 s expected: 8 s capped at 3 s
    assert call_timeout(call, 1e3, CFG) == CFG.max_call_timeout_s  # 100 s expected: capped at 30 s


def test_call_timeout_lets_a_very_slow_link_be_measured() -> None:
    """SCONet's k = 1387 made the indoor link 67 kbit/s (8.4 kB/s): a 32 KiB call takes 3.9 s, over the 3 s cap,
    so every call timed out and the estimate stuck at the timeout's upper bound, 32 KiB / 3 s (+30 %)."""
    call = ProbeCall(CFG.min_bytes, 0, "up")
    upper = CFG.min_bytes / CFG.call_timeout_s  # what a timed-out call says
    assert call_timeout(call, upper, CFG) == pytest.approx(2 * CFG.call_timeout_s)  # room for the 3.9 s call
    assert call.measured_bytes / 8400 < call_timeout(call, upper, CFG)


def test_timeout_sample_is_an_upper_bound() -> None:
    s = timeout_sample(ProbeCall(0, 100_000, "down"), 0.5, 3.0)
    assert s.bytes_per_s == pytest.approx(200_000) and s.source == "probe"


def test_duty_budget_limits_the_share_and_paces_probes() -> None:
    b = DutyBudget(window_s=10.0)
    assert b.allows(0.0, 0.1, 0.05)
    b.record(0.0, 0.1)
    assert not b.allows(0.5, 0.1, 0.05)  # pacing: 0.1 s probe at 5 % -> 1.9 s of quiet
    assert b.allows(2.0, 0.1, 0.05)
    # fill the window: never more than 5 % of 10 s
    t = 0.0
    b = DutyBudget(window_s=10.0)
    while t < 60.0:
        if b.allows(t, 0.1, 0.05):
            b.record(t, t + 0.1)
        assert b.used(t) <= 0.05 * 10.0 + 1e-9
        t += 0.01
    assert b.used(60.0) >= 0.2  # and it does probe
    assert not b.allows(100.0, 1.0, 0.0)


def test_a_probe_longer_than_the_windows_share_runs_alone_and_paced() -> None:
    """VGG19 at k = 1171 made a 80 kbit/s link: three 32 KiB calls take 4.5 s, more than 40 % of the 10 s window,
    so no probe was ever allowed and the estimate stayed at the first probe's timeout bound."""
    budget = DutyBudget(10.0)
    assert budget.allows(0.0, 4.5, 0.4)  # nothing in the window: it may run
    budget.record(0.0, 4.5)
    assert not budget.allows(5.0, 4.5, 0.4)  # paced: 4.5 s x (1 / 0.4 - 1) = 6.75 s of quiet
    assert not budget.allows(11.3, 4.5, 0.4)  # paced out, but the window still holds part of it
    assert budget.allows(14.6, 4.5, 0.4)  # the window is empty again
    assert not budget.allows(0.0, 4.5, 0.0)


def test_link_activity_gates_probes_between_frames() -> None:
    cfg = ProbeConfig(idle_gap_s=0.1, active_window_s=2.0, guard_s=0.02)
    a = LinkActivity()
    assert a.probe_fits(0.0, 0.1, cfg)  # never saw traffic
    for k in range(4):  # frames every 1.0 s, each 0.4 s long, ending at k + 0.4
        a.on_frame(k + 0.4, 0.4)
    assert a.inference_running(3.5, cfg.active_window_s)
    assert not a.probe_fits(3.45, 0.1, cfg)  # traffic 50 ms ago
    assert a.next_frame_start() == pytest.approx(4.0)
    assert a.probe_fits(3.6, 0.2, cfg)  # ends at 3.8 < 4.0 - guard
    assert not a.probe_fits(3.6, 0.39, cfg)  # would run into the next frame
    assert a.probe_fits(10.0, 5.0, cfg)  # inference stopped: only the budget limits


def test_passive_sample_only_from_link_limited_frames() -> None:
    # the robot waited on its own uploads for 0.2 of 0.25 s: the link set the pace
    s = passive_sample(1_000_000, 200_000, 0.25, 5.0, 256 * 1024, transmit_only_s=0.2)
    assert s is not None and s.bytes_per_s == pytest.approx(4e6)
    # tiles trickled out while the robot computed: the compute's pace, not the link's
    assert passive_sample(1_000_000, 200_000, 0.25, 5.0, 256 * 1024, transmit_only_s=0.05) is None
    with pytest.raises(InvalidSample):
        passive_sample(1_000_000, 0, 0.25, 5.0, 1, transmit_only_s=math.nan)


def test_passive_sample_uses_the_larger_direction() -> None:
    s = passive_sample(1_000_000, 200_000, 0.25, 5.0, min_bytes=256 * 1024)
    assert s.bytes_per_s == pytest.approx(4e6) and s.source == "passive"
    assert passive_sample(10_000, 5_000, 0.01, 5.0, min_bytes=256 * 1024) is None  # too small to tell
    for bad in ((-1, 0, 0.1), (10**6, 0, math.nan), (10**6, 0, -0.1), (10**6, 0, 0.0)):
        with pytest.raises(InvalidSample):
            passive_sample(*bad, 5.0, min_bytes=1)


def test_bad_probe_config_is_refused() -> None:
    for kwargs in (
        {"direction": "sideways"},
        {"min_bytes": 0},
        {"max_bytes": 10, "min_bytes": 20},
        {"busy_duty": 1.5},
        {"target_s": 0},
        {"train_calls": 1},
        {"drain_ratio": 1.0},
        {"min_timeout_s": 5.0, "call_timeout_s": 3.0},
        {"timeout_factor": 0.5},
        {"max_call_timeout_s": 2.0},
    ):
        with pytest.raises(ValueError):
            ProbeConfig(**kwargs)


def test_calls_that_waited_for_a_cpu_are_left_out() -> None:
    calls = plan_probe("up", 50_000, ProbeConfig(train_calls=4))
    # call 2 took 3x longer because the probe thread sat on the run queue for 0.1 of its 0.15 s
    r = train_sample(calls, [0.04, 0.05, 0.15, 0.05], [50_000] * 4, 1.0, 1.3, [0.0, 0.001, 0.1, 0.002], 0.2)
    assert r.excluded == 1 and r.starved == 1 and r.sample.bytes_per_s == pytest.approx(1e6)
    # every timed call starved: no sample at all
    r = train_sample(calls, [0.04, 0.15, 0.15, 0.15], [50_000] * 4, 1.0, 1.3, [0.0, 0.1, 0.1, 0.1], 0.2)
    assert r.sample is None and r.starved == 3
    # unknown waits (no schedstat) keep every call
    r = train_sample(calls, [0.04, 0.05, 0.05, 0.05], [50_000] * 4, 1.0, 1.3, [None] * 4, 0.2)
    assert r.starved == 0 and r.sample.bytes_per_s == pytest.approx(1e6)


def test_run_queue_wait_is_read_on_linux() -> None:
    wait = thread_run_queue_wait_s()
    assert wait is None or wait >= 0.0


def test_starved_download_calls_are_timed_by_the_kernel_instead() -> None:
    """The robot's CPU was saturated (device-only inference on a CPU quota): every call's thread sat on the run
    queue, so no call was usable and no sample ever came. The kernel's stamps time the downloads instead."""
    calls = plan_probe("down", 50_000, ProbeConfig(train_calls=3))
    wall, waits = [0.12, 0.14, 0.13], [0.07, 0.09, 0.08]  # 50 kB at 1 MB/s is 0.05 s of link time
    r = train_sample(calls, wall, [50_000] * 3, 1.0, 1.3, waits, 0.2, [0.049, 0.05, 0.05])
    assert r.starved == 0 and r.rescued == 2 and r.sample.bytes_per_s == pytest.approx(1e6)
    # without kernel times the same train gives nothing (the rule the rescue extends)
    r = train_sample(calls, wall, [50_000] * 3, 1.0, 1.3, waits, 0.2, [None, None, 0.0])
    assert r.sample is None and r.starved == 2 and r.rescued == 0
    # a kernel time is only used for a starved call, and never above the call's wall time
    r = train_sample(calls, [0.05, 0.05, 0.05], [50_000] * 3, 1.0, 1.3, [0.0] * 3, 0.2, [0.01, 0.01, 0.01])
    assert r.rescued == 0 and r.sample.bytes_per_s == pytest.approx(1e6)
    r = train_sample(calls, [0.05, 0.05, 0.05], [50_000] * 3, 1.0, 1.3, [0.0, 0.04, 0.0], 0.2, [0.2, 0.2, 0.2])
    assert r.rescued == 1 and r.sample.bytes_per_s == pytest.approx(1e6)
    with pytest.raises(ValueError):
        train_sample(calls, wall, [50_000] * 3, 1.0, 1.3, waits, 0.2, [0.05])


def test_a_call_the_server_was_stalled_in_is_left_out() -> None:
    """The probe server reports its own stall (its model compute starved it): such a call measured the server's
    scheduler, not the link, and is left out; the kernel's time cannot rescue it (it includes the stall)."""
    calls = plan_probe("down", 50_000, ProbeConfig(train_calls=4))
    wall = [0.05, 0.05, 0.30, 0.05]  # call 2 was answered 0.25 s late by a busy server
    kernel = [0.05, 0.05, 0.30, 0.05]
    blamed = train_sample(calls, wall, [50_000] * 4, 1.0, 1.3, [0.0] * 4, 0.2, kernel)
    assert blamed.sample.bytes_per_s < 0.5e6, "without the server's report the slow call drags the sample down"
    r = train_sample(calls, wall, [50_000] * 4, 1.0, 1.3, [0.0] * 4, 0.2, kernel, [0.0, 0.0, 0.25, 0.004])
    assert r.starved == 1 and r.sample.bytes_per_s == pytest.approx(1e6), "small stalls (0.004 s) are kept"
    r = train_sample(calls, wall, [50_000] * 4, 1.0, 1.3, None, 0.2, None, [None, None, None, None])
    assert r.starved == 0, "an old server without the field: every call counts as before"
    with pytest.raises(ValueError, match="server stall"):
        train_sample(calls, wall, [50_000] * 4, 1.0, 1.3, None, 0.2, None, [0.0])


def tcp_info(sent_ago_ms: int, recv_ago_ms: int) -> bytes:
    info = bytearray(104)
    struct.pack_into("=I", info, 44, sent_ago_ms)
    struct.pack_into("=I", info, 52, recv_ago_ms)
    return bytes(info)


def test_tcp_info_gives_the_time_from_request_to_last_reply_byte() -> None:
    assert tcp_network_time_s(tcp_info(130, 30)) == pytest.approx(0.1)
    assert tcp_network_time_s(tcp_info(30, 130)) is None  # reply older than the request: not this call
    assert tcp_network_time_s(b"\0" * 20) is None  # truncated
    assert socket_network_time_s(None) is None


def test_tcp_info_is_read_from_a_real_socket() -> None:
    """A loopback download: the kernel time is at most the wall time of the call (and readable on Linux)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5.0)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(16)
            conn.sendall(bytes(200_000))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = socket.create_connection(server.getsockname(), timeout=5.0)
    try:
        t0 = time.monotonic()
        client.sendall(b"probe")
        got = 0
        while got < 200_000:
            chunk = client.recv(65536)
            assert chunk
            got += len(chunk)
        wall = time.monotonic() - t0
        kernel = socket_network_time_s(client)
        if hasattr(socket, "TCP_INFO"):
            assert kernel is not None and 0.0 <= kernel <= wall + 0.01
    finally:
        client.close()
        thread.join(timeout=5.0)
        server.close()
