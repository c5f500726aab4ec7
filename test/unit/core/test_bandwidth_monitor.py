"""The bandwidth monitor's ROS-free core with a fake clock: estimates, plan changes, stability on a steady noisy
link, a single slow probe, probe trains and timeouts, passive samples, the server's plan book, log throttling."""

from __future__ import annotations

import math
import random

import pytest

from intradp_ros.core.bandwidth import BandwidthSample, InvalidSample, mbit_to_bytes_per_s
from intradp_ros.core.bandwidth_monitor import (
    FrameStats,
    MonitorCore,
    MonitorSettings,
    PlanChange,
    SwitchLogThrottle,
)
from intradp_ros.core.bandwidth_plans import PlanChoice


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_core(**settings):
    clock = FakeClock()
    changes = []
    core = MonitorCore(MonitorSettings(robot="robot1", **settings), changes.append, clock)
    return core, changes, clock


def probe(core, clock, mbit: float, seconds: float = 0.05, period: float = 0.3) -> None:
    clock.t += period
    core.add_sample(BandwidthSample(mbit_to_bytes_per_s(mbit) * seconds, seconds, "probe", clock.t))


def stats(**fields) -> FrameStats:
    base = dict(
        robot="robot1",
        request_id=7,
        latency_s=0.5,
        transmit_s=0.2,
        transmit_only_s=0.15,
        bytes_up=1_000_000,
        bytes_down=100_000,
    )
    base.update(fields)
    return FrameStats(**base)


def test_first_estimate_announces_a_plan_and_a_step_switches_it() -> None:
    core, changes, clock = make_core()
    assert core.estimate() is None  # nothing measured yet: nothing published
    for _ in range(6):
        probe(core, clock, 38.0)
    assert len(changes) == 1
    first = changes[0]
    assert isinstance(first, PlanChange)
    assert (first.robot, first.mode, first.bucket_mbyte_per_s, first.plan_id) == ("robot1", "intradp", 4.0, 4)
    assert first.estimate_mbit_per_s == pytest.approx(38.0) and first.stamp == pytest.approx(100.3)
    for _ in range(3):
        probe(core, clock, 9.5)
    assert len(changes) == 2 and changes[1].bucket_mbyte_per_s == 1.0
    est = core.estimate()
    assert est.mbit_per_s == pytest.approx(9.5, rel=0.05)
    assert est.samples == est.probe_samples and est.passive_samples == 0
    assert est.last_sample_mbit_per_s == pytest.approx(9.5)


def test_estimate_after_the_window_aged_out_keeps_the_value_with_zero_samples() -> None:
    core, _, clock = make_core()
    probe(core, clock, 20.0)
    clock.t += core.settings.predictor.max_age_s + 1.0
    est = core.estimate()
    assert est.samples == 0 and est.mbit_per_s == pytest.approx(20.0)


@pytest.mark.parametrize("mbit", [4.4, 8.0, 9.5, 38.0])
def test_steady_noisy_link_makes_at_most_one_switch_per_minute(mbit: float) -> None:
    """Five minutes of probes every 0.5 s with +-10 % noise and, one in twenty, a single probe slowed to a third
    (CPU contention; two slow ones in a row are a level shift, followed on purpose)."""
    core, changes, clock = make_core()
    rng = random.Random(int(mbit * 10))
    slow = False
    for _ in range(600):
        slow = not slow and rng.random() < 0.05
        probe(core, clock, mbit * rng.uniform(0.9, 1.1) * (0.3 if slow else 1.0), period=0.5)
    assert len(changes) <= 1 + 5, [c.bucket_mbyte_per_s for c in changes]
    assert abs(core.estimate().raw_mbit_per_s - mbit) / mbit < 0.15


def test_a_single_slow_probe_cannot_move_the_bucket() -> None:
    core, changes, clock = make_core()
    for _ in range(6):
        probe(core, clock, 40.0)
    probe(core, clock, 4.0)  # one probe ten times too slow
    for _ in range(6):
        probe(core, clock, 40.0)
    assert len(changes) == 1 and core.predictor.outliers == 1


def test_a_single_slow_probe_while_the_window_is_short_cannot_move_the_bucket() -> None:
    """`make demo`'s warm-up: one good probe (3.96 Mbit/s), then one slowed by the server's CPU (0.63 Mbit/s)
    while the window held a single sample; the harmonic mean of the two fell past the jump ratio. The jump needs
    a second sample to confirm it, and the next good probes bring the estimate back."""
    demo_book = [
        PlanChoice(0.05, 1, "device", "intradp", 4.0),
        PlanChoice(0.3, 2, "split", "intradp", 2.0),
        PlanChoice(0.45, 3, "server", "intradp", 1.0),
    ]
    core, changes, clock = make_core(choices=demo_book, choices_fixed=True)
    probe(core, clock, 3.96, period=1.0)
    assert len(changes) == 1 and changes[0].plan_name == "server"  # 0.495 MB/s
    probe(core, clock, 0.63, period=1.0)  # the slow one
    assert core.estimate().mbit_per_s < 0.5 * 3.96  # it did drag the estimate ...
    assert len(changes) == 1  # ... but not the bucket
    for _ in range(4):
        probe(core, clock, 3.96, period=1.0)
    assert len(changes) == 1 and core.estimate().mbit_per_s == pytest.approx(3.96, rel=0.15)


def test_a_single_slow_probe_after_the_window_aged_out_cannot_move_the_bucket() -> None:
    core, changes, clock = make_core()
    for _ in range(5):
        probe(core, clock, 40.0)
    clock.t += core.settings.predictor.max_age_s + 1.0  # stale: the window is empty
    probe(core, clock, 4.0)  # alone in the window: it is the whole estimate
    assert core.estimate().mbit_per_s == pytest.approx(4.0) and len(changes) == 1
    probe(core, clock, 40.0)
    probe(core, clock, 40.0)
    assert len(changes) == 1 and changes[0].bucket_mbyte_per_s == 5.0


def test_stats_give_passive_samples_from_link_limited_frames_and_mark_traffic() -> None:
    core, changes, clock = make_core()
    assert core.on_stats(stats()) is None
    est = core.estimate()
    assert est.passive_samples == 1 and est.mbit_per_s == pytest.approx(40.0)  # 1 MB in 0.2 s
    assert core.activity.quiet_for(clock.t) == 0.0
    assert len(changes) == 1
    core2, _, _ = make_core()
    assert core2.on_stats(stats(transmit_only_s=0.01)) is None  # compute-paced: no sample
    assert core2.estimate() is None


def test_small_failed_and_local_frames_give_no_sample() -> None:
    core, _, _ = make_core()
    assert core.on_stats(stats(bytes_up=1000, bytes_down=10)) is None
    assert core.on_stats(stats(error="server gone")) is None
    assert core.on_stats(stats(fell_back_local=True)) is None
    assert core.estimate() is None
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
        dict(transmit_only_s=math.inf),
    ],
)
def test_bad_stats_are_dropped_with_a_reason(bad) -> None:
    core, _, _ = make_core()
    reason = core.on_stats(stats(**bad))
    assert reason and core.dropped_stats == 1
    assert core.estimate() is None


def test_probe_waits_for_an_idle_link_and_the_budget() -> None:
    core, _, clock = make_core()
    assert core.may_probe(0.1)
    core.on_stats(stats(bytes_up=10, bytes_down=10))  # traffic just now
    clock.t += 0.01
    assert not core.may_probe(0.1)
    train = core.next_probe("up")
    start = clock.t = clock.t + 0.5
    clock.t += 0.1
    n = len(train.calls)
    core.finish_train(train, [0.01] + [0.03] * (n - 1), [train.calls[0].payload_bytes] * n, start)
    clock.t += 0.1
    assert not core.may_probe(0.1)  # paced: 5 % while inference runs
    clock.t += 5.0
    assert core.may_probe(0.1)  # inference no longer running, old probe paced out


def test_probe_train_is_sized_from_the_estimate_and_gives_a_sample() -> None:
    core, _, clock = make_core()
    first = core.next_probe("up")
    n = core.settings.probe.train_calls
    assert [c.payload_bytes for c in first.calls] == [core.settings.probe.initial_bytes] * n
    assert first.timeouts_s == [core.settings.probe.call_timeout_s] * n
    probe(core, clock, 40.0)
    train = core.next_probe("down")
    chunk = int(mbit_to_bytes_per_s(40.0) * core.settings.probe.target_s)
    assert [c.reply_bytes for c in train.calls] == [chunk] * n
    assert train.expected_s == pytest.approx(n * chunk / mbit_to_bytes_per_s(40.0))
    assert train.timeouts_s[0] == pytest.approx(core.settings.probe.min_timeout_s)  # 8 x 25 ms < 0.5 s
    # a 10 Mbit/s link: the first call crossed in the bucket, the rest at the rate
    t = chunk / mbit_to_bytes_per_s(10.0)
    start = clock.t
    for _ in range(2):
        clock.t += 0.5
        result = core.finish_train(train, [t / 20] + [t] * (n - 1), [chunk] * n, start)
    assert result.excluded == 1 and result.sample.bytes_per_s == pytest.approx(mbit_to_bytes_per_s(10.0))
    assert core.estimate().raw_mbit_per_s == pytest.approx(10.0, rel=0.01)  # two trains: a level shift


def test_a_timed_out_call_pulls_a_stale_estimate_down() -> None:
    core, _, clock = make_core()
    for _ in range(5):
        probe(core, clock, 40.0)
    train = core.next_probe("up")
    for _ in range(2):  # the link faded: two trains in a row time out
        start = clock.t
        clock.t += train.timeouts_s[0]
        core.call_timed_out(train, 0, start)
    assert core.probe_timeouts == 2
    upper = train.calls[0].payload_bytes / train.timeouts_s[0]
    assert core.current_bytes_per_s() == pytest.approx(upper)
    with pytest.raises(InvalidSample):
        core.finish_train(train, [0.1] * len(train.calls), [1] * len(train.calls), clock.t)


def book(latency: float = 0.05):
    return [
        PlanChoice(0.25, 11, "slow", "intradp", latency * 3),
        PlanChoice(1.0, 12, "mid", "intradp", latency * 2),
        PlanChoice(3.0, 13, "fast", "intradp", latency),
    ]


def test_the_servers_plan_book_replaces_the_grid_and_is_announced() -> None:
    core, changes, clock = make_core()
    for _ in range(3):
        probe(core, clock, 12.0)  # 1.5 MB/s
    assert changes[-1].predicted_latency_s == 0.0  # plain grid: unknown
    assert core.set_choices(book(), "server plan book")
    assert core.choices_source == "server plan book"
    last = changes[-1]
    assert (last.plan_id, last.plan_name, last.bucket_mbyte_per_s) == (12, "mid", 1.0)
    assert last.predicted_latency_s == pytest.approx(0.1)


def test_a_plan_table_file_is_not_replaced_by_the_book() -> None:
    core, changes, _ = make_core(choices=book(), choices_fixed=True)
    assert not core.set_choices(book(0.5), "server plan book")
    assert core.choices_source == "plan table" and core.choices[0].predicted_latency_s == pytest.approx(0.15)


def test_plan_switch_logging_is_throttled() -> None:
    clock = FakeClock()
    log = SwitchLogThrottle(10.0, clock)
    change = PlanChange("robot1", "intradp", 1, "p", 1.0, 8.0, 0.1, 0.0)
    assert log.line(change).startswith("plan switch: bucket 1 MB/s")
    lines = []
    for _ in range(20):
        clock.t += 1.0
        lines.append(log.line(change))
    logged = [x for x in lines if x]
    assert len(logged) == 2 and "9 more switches" in logged[0]


def test_invalid_sample_from_the_probe_path_is_refused() -> None:
    core, _, clock = make_core()
    with pytest.raises(InvalidSample):
        core.add_sample(BandwidthSample(0.0, 0.1, "probe", clock.t))


def test_settings_are_validated() -> None:
    for bad in (
        {"robot": "bad name"},
        {"rate_hz": 0},
        {"choices": []},
        {"passive_min_link_share": 2.0},
        {"jump_confirm": -1},
    ):
        with pytest.raises(ValueError):
            MonitorSettings(**bad)


def device_only_frame(core, clock, seconds: float = 3.0) -> None:
    """A device-only frame on a saturated robot CPU: stats with no bytes after `seconds`."""
    clock.t += seconds
    core.on_stats(stats(latency_s=seconds, transmit_s=0.0, transmit_only_s=0.0, bytes_up=0, bytes_down=0))


def test_starved_probes_under_device_only_frames_still_bring_the_estimate_back() -> None:
    """`make demo` after the slow probe: the low estimate chose device-only, device-only inference saturated the
    robot's CPU quota, every probe call's thread sat on the run queue and was dropped, so no sample came for the
    rest of the run and the stale estimate pinned device-only. Downloads timed by the kernel still give samples,
    probes turn to downloads while calls starve, and the bucket comes back up."""
    demo_book = [PlanChoice(0.05, 1, "device", "intradp", 4.0), PlanChoice(0.45, 3, "server", "intradp", 1.0)]
    core, changes, clock = make_core(choices=demo_book, choices_fixed=True)
    for _ in range(2):
        probe(core, clock, 0.8)  # a low level: device-only
    assert changes[-1].plan_name == "device"
    rate = mbit_to_bytes_per_s(3.96)  # the link recovered
    for _ in range(8):
        device_only_frame(core, clock)
        train = core.next_probe("up")
        assert all(c.direction == "down" for c in train.calls) or core.starving is False
        n = len(train.calls)
        link = [c.measured_bytes / rate for c in train.calls]
        wall = [t + 0.09 for t in link]  # throttled 90 ms per call
        start = clock.t
        clock.t += sum(wall)
        kernel = [t if c.direction == "down" else None for t, c in zip(link, train.calls, strict=True)]
        core.finish_train(train, wall, [c.measured_bytes for c in train.calls], start, [0.08] * n, kernel)
    assert core.starving and core.rescued_calls > 0
    assert changes[-1].plan_name == "server"
    assert core.estimate().mbit_per_s == pytest.approx(3.96, rel=0.15)


def test_a_stale_estimate_reprobes_at_full_duty_between_back_to_back_frames() -> None:
    """While frames run back to back (no gap a probe fits in), a fresh estimate waits; a stale one probes."""
    core, _, clock = make_core()
    probe(core, clock, 4.0)
    for _ in range(4):  # frames every 1 s, 0.95 s each: the gap is 50 ms
        clock.t += 1.0
        core.on_stats(stats(latency_s=0.95, bytes_up=10, bytes_down=10))
    clock.t += 0.15  # idle gap seen
    assert not core.stale()
    assert not core.may_probe(0.3)  # does not fit before the next frame
    clock.t = core.last_sample_at + core.settings.predictor.max_age_s + 0.1
    core.on_stats(stats(latency_s=0.95, bytes_up=10, bytes_down=10))
    clock.t += 0.15
    assert core.stale() and core.may_probe(0.3)
