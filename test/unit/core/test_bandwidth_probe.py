"""Unit tests of probe planning, the duty-cycle budget, link activity and passive samples."""

import math

import pytest

from intradp_ros.core.bandwidth import InvalidSample
from intradp_ros.core.bandwidth_probe import (
    DutyBudget,
    LinkActivity,
    ProbeConfig,
    passive_sample,
    plan_probe,
    probe_bytes,
    probe_sample,
)

CFG = ProbeConfig()


def test_probe_size_follows_the_estimate_within_bounds() -> None:
    assert probe_bytes(None, CFG) == CFG.initial_bytes
    assert probe_bytes(5e6, CFG) == int(5e6 * CFG.target_s)
    assert probe_bytes(1e3, CFG) == CFG.min_bytes
    assert probe_bytes(1e12, CFG) == CFG.max_bytes
    assert probe_bytes(math.nan, CFG) == CFG.initial_bytes


def test_probe_plan_has_an_untimed_lead_in_in_the_same_direction() -> None:
    up = plan_probe("up", 100_000, CFG)
    assert [(c.payload_bytes, c.reply_bytes, c.timed) for c in up] == [(CFG.omit_bytes, 0, False), (100_000, 0, True)]
    down = plan_probe("down", 100_000, CFG)
    assert [(c.payload_bytes, c.reply_bytes, c.timed) for c in down] == [(0, CFG.omit_bytes, False), (0, 100_000, True)]
    assert len(plan_probe("up", 10, ProbeConfig(omit_bytes=0))) == 1
    with pytest.raises(ValueError):
        plan_probe("both", 10, CFG)


def test_probe_sample_is_goodput_of_the_timed_call() -> None:
    call = plan_probe("down", 500_000, CFG)[-1]
    s = probe_sample(call, 0.1, 12.0, received_bytes=500_000)
    assert s.bytes_per_s == pytest.approx(5e6) and s.source == "probe" and s.stamp == 12.0
    with pytest.raises(InvalidSample):
        probe_sample(call, 0.1, 12.0, received_bytes=400_000)  # truncated reply
    with pytest.raises(InvalidSample):
        probe_sample(call, 0.0, 12.0, received_bytes=500_000)
    with pytest.raises(ValueError):
        probe_sample(plan_probe("up", 10, CFG)[0], 0.1, 1.0, CFG.omit_bytes)


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
        {"omit_bytes": -1},
    ):
        with pytest.raises(ValueError):
            ProbeConfig(**kwargs)
