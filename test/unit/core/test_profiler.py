"""Profiler: the fit, the measured profile's shape, JSON round trip, graph check, scaling, the cache."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from sched_toys import conv_chain

from intradp_ros.core.profiler import Profile, ProfileError, cached_profile, fit_line, profile_graph, row_counts


def test_fit_recovers_fixed_and_per_row_cost():
    rows = [1, 2, 4, 8, 16]
    a, b = fit_line(rows, [0.5e-3 + 0.1e-3 * r for r in rows])
    assert a == pytest.approx(0.5e-3, rel=1e-6)
    assert b == pytest.approx(0.1e-3, rel=1e-6)
    a, b = fit_line([4], [2.0])  # one size: all fixed cost
    assert (a, b) == (2.0, 0.0)
    a, b = fit_line([1, 10], [5.0, 1.0])  # never negative
    assert a >= 0 and b >= 0


def test_row_counts_are_distinct_and_include_the_whole():
    assert row_counts(1) == [1]
    rc = row_counts(100, 4)
    assert rc == sorted(set(rc)) and rc[-1] == 100 and len(rc) == 4 and rc[0] >= 1


def test_profile_graph_measures_every_node_and_round_trips():
    g, x = conv_chain(2, h=8)
    p = profile_graph(g, [x], warmup=0, repeats=1, sizes=3, message_overhead_s=1e-4)
    assert len(p.nodes) == len(g.nodes)
    assert p.bytes_per_row == [n.bytes_per_row for n in g.nodes]
    for n, np_ in zip(g.nodes, p.nodes):
        assert np_.time(0) == 0.0
        if not n.is_input:
            assert len(np_.rows) == 3 and all(s > 0 for s in np_.seconds)
            assert np_.time(n.extent) > 0
    assert p.device["device"] == "cpu" and "torch" in p.device
    q = Profile.from_json(p.to_json(), g)
    assert q.to_json() == p.to_json()
    assert p.message_overhead_s == 1e-4
    assert 0 < p.mac_s_per_byte < 1e-6 and q.mac_s_per_byte == p.mac_s_per_byte  # the tile MAC, measured here


def test_profile_refuses_another_graph_and_bad_numbers():
    g, x = conv_chain(2, h=8)
    other, _ = conv_chain(2, h=10)
    p = profile_graph(g, [x], warmup=0, repeats=1, sizes=2, message_overhead_s=0.0)
    with pytest.raises(ProfileError, match="graph"):
        Profile.from_json(p.to_json(), other)
    d = json.loads(p.to_json())
    d["nodes"][1]["a"] = -1.0
    with pytest.raises(ProfileError):
        Profile.from_json(json.dumps(d))
    with pytest.raises(ProfileError):
        Profile.from_json("[1, 2]")


def test_scaled_profile_divides_times_and_records_the_factor():
    g, x = conv_chain(2, h=8)
    p = profile_graph(g, [x], warmup=0, repeats=1, sizes=2, message_overhead_s=0.0)
    s = p.scaled(0.05, "server")
    assert s.total() == pytest.approx(p.total() * 0.05)
    assert s.device["time_factor"] == 0.05 and s.device["name"] == "server"
    with pytest.raises(ValueError):
        p.scaled(0, "x")


def test_cached_profile_is_read_back(tmp_path):
    g, x = conv_chain(2, h=8)
    p1, hit1 = cached_profile(g, [x], tmp_path, warmup=0, repeats=1, sizes=2, message_overhead_s=0.0)
    p2, hit2 = cached_profile(g, [x], tmp_path, warmup=0, repeats=1, sizes=2, message_overhead_s=0.0)
    assert (hit1, hit2) == (False, True)
    assert p2.to_json() == p1.to_json()


def test_a_stale_cached_profile_is_measured_again_and_said_why(tmp_path):
    """A cached profile far slower than a forward pass here (measured in a robot's quota, or under load, and
    stored under this machine's key) must not price plans: with `check_frame` it is measured again."""
    from intradp_ros.core import profiler

    g, x = conv_chain(2, h=8)
    kw = {"warmup": 0, "repeats": 1, "sizes": 2, "message_overhead_s": 0.0}
    fresh, hit = cached_profile(g, [x], tmp_path, **kw)
    told: list[str] = []
    again, hit = cached_profile(g, [x], tmp_path, check_frame=told.append, **kw)
    assert hit and not told, "a right profile is kept (a cold pass is no faster than the least of its passes)"
    path = profiler.profile_cache_path(tmp_path, g)
    slow = fresh.scaled(1000.0, "measured in a CPU quota")
    with open(path, "w") as f:
        f.write(slow.to_json())
    assert cached_profile(g, [x], tmp_path, **kw)[0].total() == pytest.approx(slow.total()), "unchecked: kept"
    redone, hit = cached_profile(g, [x], tmp_path, check_frame=told.append, **kw)
    assert not hit and len(told) == 1 and "forward pass here" in told[0]
    assert redone.total() < slow.total() / 100
    assert profiler.stale_profile(g, [x], "cpu", redone) is None


# ------------------------------------------------------------------ calibration to whole frames
def _toy_profile(step_overhead_s: float = 2e-4):
    from sched_toys import uniform_profile

    g, _x = conv_chain(3, h=8)
    p = uniform_profile(g, 1e-4, fixed_s=5e-4, overhead_s=3e-5)
    p.step_overhead_s = step_overhead_s
    return g, p


def test_device_only_s_is_what_the_cost_model_predicts():
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.plan import Plan

    g, p = _toy_profile()
    assert CostModel(g, p, p).latency(Plan.device_only(g), 1e6) == pytest.approx(p.device_only_s(), rel=1e-12)


@pytest.mark.parametrize("factor", [3.5, 0.8])
def test_calibrated_profile_predicts_the_measured_frame_time(factor):
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.profiler import calibrate_to_frames

    g, p = _toy_profile()
    raw = p.device_only_s()
    frames = [raw * factor * 1.2, raw * factor, raw * factor * 0.9]  # median: raw * factor
    cal_prof, cal = calibrate_to_frames(p, frames)
    assert cal.raw_s == pytest.approx(raw)
    assert cal.measured_s == pytest.approx(raw * factor)
    assert cal.factor == pytest.approx(factor)
    assert cal.frames == 3
    predicted = CostModel(g, cal_prof, cal_prof).latency(Plan.device_only(g), 1e6)
    assert predicted == pytest.approx(raw * factor, rel=1e-9)
    # every node and the step overhead scale alike; transfers (message overhead, bytes) do not
    for a, b in zip(p.nodes, cal_prof.nodes):
        assert b.time(4) == pytest.approx(a.time(4) * factor)
    assert cal_prof.step_overhead_s == pytest.approx(p.step_overhead_s * factor)
    assert cal_prof.message_overhead_s == p.message_overhead_s
    assert cal_prof.bytes_per_row == p.bytes_per_row
    # recorded in the profile, survives JSON, the original is untouched
    assert cal_prof.device["calibration"]["factor"] == pytest.approx(factor)
    assert cal_prof.device["name"] == p.device["name"]
    assert Profile.from_json(cal_prof.to_json(), g).device["calibration"] == cal_prof.device["calibration"]
    assert "calibration" not in p.device and p.device_only_s() == pytest.approx(raw)


def test_calibration_refuses_what_it_cannot_use():
    from intradp_ros.core.profiler import calibrate_to_frames

    g, p = _toy_profile()
    for frames in ([], [0.0, 0.1], [float("nan")], [-1.0]):
        with pytest.raises(ProfileError):
            calibrate_to_frames(p, frames)
    empty = p._times_scaled(0.0, {"name": "nothing"})
    with pytest.raises(ProfileError, match="cannot calibrate"):
        calibrate_to_frames(empty, [0.1])


def test_measure_frames_uses_the_given_clock_and_skips_warmup():
    from intradp_ros.core.profiler import measure_frames

    ticks = iter([10.0, 10.5, 20.0, 21.0])
    calls = []
    out = measure_frames(lambda: calls.append(1), frames=2, warmup=3, clock=lambda: next(ticks))
    assert out == [0.5, 1.0]
    assert len(calls) == 5
    with pytest.raises(ValueError):
        measure_frames(lambda: None, frames=0)


# ------------------------------------------------------------------ CPU quota in the cache key
def _cgroup_tree(tmp_path, v1: bool, quota_us: int, period_us: int, parent_quota_us: int = -1):
    root = tmp_path / "cpu"
    (root / "robot" / "inner").mkdir(parents=True)
    proc = tmp_path / "proc_cgroup"
    if v1:
        proc.write_text("4:memory:/x\n2:cpu,cpuacct:/robot/inner\n0::/\n")
        (root / "cpu.cfs_quota_us").write_text("-1\n")
        (root / "cpu.cfs_period_us").write_text("100000\n")
        for d, q in ((root / "robot", parent_quota_us), (root / "robot" / "inner", quota_us)):
            (d / "cpu.cfs_quota_us").write_text(f"{q}\n")
            (d / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    else:
        proc.write_text("0::/robot/inner\n")
        (root / "cgroup.controllers").write_text("cpu memory\n")
        (root / "robot" / "cpu.max").write_text(
            "max 100000\n" if parent_quota_us < 0 else f"{parent_quota_us} {period_us}\n"
        )
        (root / "robot" / "inner" / "cpu.max").write_text(
            "max 100000\n" if quota_us < 0 else f"{quota_us} {period_us}\n"
        )
    return str(proc), str(root)


@pytest.mark.parametrize("v1", [True, False])
def test_cpu_quota_reads_the_tightest_share_on_the_process_path(tmp_path, v1):
    from intradp_ros.core.profiler import cpu_quota

    proc, root = _cgroup_tree(tmp_path, v1, 1000, 10000)
    kw = {"v1_roots": [root]} if v1 else {"v1_roots": [], "v2_root": root}
    assert cpu_quota(proc, **kw) == pytest.approx(0.1)
    proc, root = _cgroup_tree(tmp_path / "b", v1, 50000, 100000, parent_quota_us=20000)
    kw = {"v1_roots": [root]} if v1 else {"v1_roots": [], "v2_root": root}
    assert cpu_quota(proc, **kw) == pytest.approx(0.2)  # the parent's is tighter
    proc, root = _cgroup_tree(tmp_path / "c", v1, -1, 100000)
    kw = {"v1_roots": [root]} if v1 else {"v1_roots": [], "v2_root": root}
    assert cpu_quota(proc, **kw) is None
    assert cpu_quota(str(tmp_path / "missing")) is None


def test_cache_key_separates_throttled_and_unthrottled_robots(tmp_path, monkeypatch):
    from intradp_ros.core import profiler

    g, x = conv_chain(2, h=8)
    monkeypatch.setattr(profiler, "cpu_quota", lambda: None)
    free = profiler.profile_cache_path(tmp_path, g)
    p_free, hit = cached_profile(g, [x], tmp_path, warmup=0, repeats=1, sizes=2, message_overhead_s=0.0)
    assert not hit and p_free.device["cpu_quota"] is None
    monkeypatch.setattr(profiler, "cpu_quota", lambda: 0.1)
    slow = profiler.profile_cache_path(tmp_path, g)
    assert slow != free and os.path.basename(slow).startswith(g.fingerprint)
    p_slow, hit = cached_profile(g, [x], tmp_path, warmup=0, repeats=1, sizes=2, message_overhead_s=0.0)
    assert not hit and p_slow.device["cpu_quota"] == 0.1  # measured again, not the unthrottled entry
    assert cached_profile(g, [x], tmp_path, warmup=0, repeats=1, sizes=2, message_overhead_s=0.0)[1]
    assert profiler.profile_cache_path(tmp_path, g, "cpu") == slow


def test_codec_profiles_travel_in_the_json_and_scale():
    from intradp_ros.core.codecs.profile import CodecProfile

    g, p = _toy_profile()
    cp = CodecProfile(3, "zstd", "here", "float32", 0.5, 0.01, 0.02, 2, "float32")
    withc = p.with_codecs([cp])
    d = json.loads(withc.to_json())
    assert d["format"] == "intradp_profile/2" and d["codecs"][0]["name"] == "zstd"
    assert Profile.from_json(withc.to_json(), g).codecs == [cp]
    old = json.loads(p.to_json())
    old["format"] = "intradp_profile/1"
    del old["codecs"]
    assert Profile.from_json(json.dumps(old), g).codecs == [], "a profile from before codecs loads raw-only"
    robot = withc.scaled(4.0, "robot")
    assert robot.codecs[0].encode_s_per_mb == pytest.approx(0.04), "a slowed robot codes slower too"
    server = withc.scaled(0.1, "server", codec_factor=1.0)
    assert server.codecs[0].encode_s_per_mb == pytest.approx(0.01) and server.device["codec_factor"] == 1.0
    bad = json.loads(withc.to_json())
    bad["codecs"][0]["ratio"] = -1
    with pytest.raises(ProfileError):
        Profile.from_json(json.dumps(bad), g)


def test_profile_graph_measures_codecs_on_its_own_tensors():
    g, x = conv_chain(2, h=8)
    prof = profile_graph(g, [x], repeats=1, step_overhead=False, codec_repeats=1)
    kinds = {(c.kind, c.name) for c in prof.codecs}
    assert ("float32", "zstd_shuffle") in kinds and ("float32", "raw") in kinds
    assert profile_graph(g, [x], repeats=1, step_overhead=False, codecs=False).codecs == []


def test_tile_wire_costs_are_measured_travel_in_the_json_and_scale_like_cpu_work():
    g, p = _toy_profile()
    measured = profile_graph(g, [conv_chain(2, h=8)[1]], warmup=0, repeats=1, sizes=2, step_overhead=False)
    assert measured.tile_send_s > 0 and measured.tile_recv_s > 0, "the per-tile wire work is measured"
    assert measured.tile_send_time(1e6) > measured.tile_send_time(0)
    wired = dataclasses.replace(p, tile_send_s=2e-5, tile_send_s_per_byte=1e-9, tile_recv_s=1e-5)
    back = Profile.from_json(wired.to_json(), g)
    assert back.wire_costs() == (2e-5, 1e-9, 1e-5, 0.0)
    assert back.tile_send_time(1000) == pytest.approx(2e-5 + 1e-6)
    old = json.loads(p.to_json())
    for k in ("tile_send_s", "tile_send_s_per_byte", "tile_recv_s", "tile_recv_s_per_byte"):
        del old[k]
    assert Profile.from_json(json.dumps(old), g).wire_costs() == (0.0, 0.0, 0.0, 0.0), "older profiles load"
    robot = wired.scaled(3.0, "robot", scale_overhead=False, codec_factor=5.0)
    assert robot.tile_send_s == pytest.approx(1e-4) and robot.tile_recv_s == pytest.approx(5e-5)
    assert wired.with_codecs([]).wire_costs() == wired.wire_costs()
    bad = json.loads(wired.to_json())
    bad["tile_recv_s"] = -1.0
    with pytest.raises(ProfileError):
        Profile.from_json(json.dumps(bad), g)


def test_band_overhead_is_measured_travels_in_the_json_and_old_profiles_load_without_it():
    from intradp_ros.core.profiler import measure_band_overhead

    g, x = conv_chain(2, h=32)
    p = profile_graph(g, [x], warmup=0, repeats=1, sizes=2, band_overhead=True)
    assert p.band_step_s >= 0.0
    assert measure_band_overhead(g, [x], torch.device("cpu"), p, runs=1) >= 0.0
    slow = dataclasses.replace(
        p,
        nodes=[dataclasses.replace(n, a=0.0, b=0.0, seconds=[0.0] * len(n.seconds)) for n in p.nodes],
        step_overhead_s=0.0,
    )
    assert measure_band_overhead(g, [x], torch.device("cpu"), slow, runs=1) == 0.0, "the measured run is the scale"
    q = dataclasses.replace(p, band_step_s=3e-4)
    assert Profile.from_json(q.to_json(), g).band_step_s == 3e-4
    old = json.loads(q.to_json())
    del old["band_step_s"]
    assert Profile.from_json(json.dumps(old), g).band_step_s == 0.0
    assert q.scaled(0.5, "server").band_step_s == pytest.approx(1.5e-4)


def test_band_times_follow_the_measured_rows_curve_not_one_line():
    from intradp_ros.core.profiler import PROFILE_SIZES, NodeProfile

    # measured: 4 rows 1 ms, 8 rows 1.5 ms, 16 rows 4 ms (small tiles faster per row, the line does not pass there)
    rows, secs = [4, 8, 16], [1e-3, 1.5e-3, 4e-3]
    a, b = fit_line(rows, secs)
    p = NodeProfile(rows, secs, a, b)
    assert p.time(8) == 1.5e-3 and p.time(16) == 4e-3, "a measured count is its median"
    assert p.time(6) == pytest.approx(1.25e-3) and p.time(12) == pytest.approx(2.75e-3), "between: the curve"
    assert p.time(2) == pytest.approx(a + 2 * b) and p.time(0) == 0.0, "outside: the fitted line"
    assert NodeProfile([16], [4e-3], 1e-3, 1e-4).time(8) == pytest.approx(1.8e-3), "one count: the line"
    assert NodeProfile([16, 4], [4e-3, 1e-3], 0.0, 2e-4).time(8) == pytest.approx(1.6e-3), "unordered: the line"
    assert len(row_counts(320, PROFILE_SIZES)) == 6 and min(row_counts(320, PROFILE_SIZES)) == 10, "down to 1/32"


def test_band_overhead_is_the_measured_banded_time_at_the_profiles_scale_beyond_its_prediction(monkeypatch):
    """A fake executor: one band takes 1 s, 8 bands 3 s; the profile predicts pred_1 and pred_8: the term is
    (3 x pred_1 / 1 - pred_8) / banded steps, so the model's banded / one-band ratio becomes the measured 3x."""
    import intradp_ros.core.executor as executor
    from intradp_ros.core import profiler
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.runtime.schedule import plan_schedule

    g, x = conv_chain(2, h=32)
    from sched_toys import uniform_profile

    # a fixed profile (a measured one made the expected term depend on this host's timings: flaky under load)
    p = uniform_profile(g, 1e-4, fixed_s=1e-4, overhead_s=1e-5)

    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            return self.now

    clock = Clock()

    class FakeClient:
        def __init__(self, *a, **k) -> None:
            pass

        def infer(self, plan, *inputs):
            clock.now += 3.0 if plan.is_banded else 1.0

        def close(self) -> None:
            pass

    monkeypatch.setattr(executor, "ClientHalf", FakeClient)
    monkeypatch.setattr(profiler, "time", clock)
    got = profiler.measure_band_overhead(g, [x], torch.device("cpu"), p, k=8, runs=2)
    one, many = Plan.device_only(g), Plan.device_only(g).with_bands(8)
    cm = CostModel(g, p, p, codecs=False)
    steps = sum(1 for st in plan_schedule(many, "robot").steps if st.bands > 1 and not st.node.is_input)
    want = (3.0 * cm.latency(one, 1e12) - cm.latency(many, 1e12)) / steps
    assert want > 0 and got == pytest.approx(want)
    charged = CostModel(g, dataclasses.replace(p, band_step_s=got), p, codecs=False)
    assert charged.latency(many, 1e12) / charged.latency(one, 1e12) == pytest.approx(3.0)


def test_cached_codecs_are_measured_again_on_a_named_input(tmp_path):
    """A profile cached from a random example gets its codec profiles measured on the named real input (operator
    times kept) and is stored with the input's name; the next read is a plain hit."""
    import torch

    g, x = conv_chain(2, h=8)
    kw = dict(warmup=0, repeats=1, sizes=2, message_overhead_s=0.0, step_overhead=False, codec_repeats=1)
    first, _ = cached_profile(g, [x], tmp_path, **kw)
    flat = torch.zeros_like(x)  # compresses to nothing: its ratios must differ from the random example's
    again, hit = cached_profile(g, [flat], tmp_path, codec_input="flat", **kw)
    assert hit and again.device["codec_input"] == "flat"
    assert [n.seconds for n in again.nodes] == [n.seconds for n in first.nodes]
    ratio = {(c.kind_name, c.name): c.ratio for c in again.codecs}
    old = {(c.kind_name, c.name): c.ratio for c in first.codecs}
    assert ratio[("float32", "zstd")] < old[("float32", "zstd")] / 10
    third, hit = cached_profile(g, [x], tmp_path, codec_input="flat", **kw)
    assert hit and third.to_json() == again.to_json()


def test_handshake_profiles_round_trip(tmp_path):
    from intradp_ros.core.profiler import handshake_profiles_path, read_handshake_profiles, write_handshake_profiles

    g, prof = _toy_profile()
    path = handshake_profiles_path(tmp_path, g, "robot/1")
    write_handshake_profiles(path, prof.to_json(), prof.scaled(0.1, "server").to_json())
    robot, server = read_handshake_profiles(path, g)
    assert robot.to_json() == prof.to_json() and server is not None and server.device["name"] == "server"
    with open(path, "w") as f:
        f.write("{not json")
    assert read_handshake_profiles(path, g) is None


def test_fewer_rows_never_cost_more_than_more_rows():
    """A small tile timed during a load spike (the system benchmark's cached server profile: 56 rows of an
    element-wise op 19.9 ms, all 224 rows 6.0 ms) is capped by the larger counts' times, so a band is never
    charged more than the whole layer; an ordinary curve is unchanged."""
    from intradp_ros.core.profiler import NodeProfile

    spiked = NodeProfile([28, 56, 112, 224], [0.07e-3, 19.9e-3, 11.9e-3, 5.97e-3], 0.0, 2.7e-5)
    assert spiked.time(56) == pytest.approx(5.97e-3) and spiked.time(112) == pytest.approx(5.97e-3)
    assert spiked.time(28) == pytest.approx(0.07e-3) and spiked.time(224) == pytest.approx(5.97e-3)
    assert spiked.time(84) <= spiked.time(224), "between two counts: the capped curve"
    assert spiked.time(10) <= spiked.time(28), "below the smallest count: the line, at most that count's time"
    times = [spiked.time(r) for r in range(1, 225)]
    assert all(a <= b + 1e-15 for a, b in zip(times, times[1:])), "non-decreasing in rows"
    plain = NodeProfile([4, 8, 16], [1e-3, 1.5e-3, 4e-3], 0.0, 2.5e-4)
    assert [plain.time(r) for r in (4, 8, 16)] == [1e-3, 1.5e-3, 4e-3]


def test_a_cached_profile_without_band_costs_is_measured_again_when_they_are_asked_for(tmp_path):
    """The server asks for the per-band cost: a cached profile made without it (the system benchmark's, from before
    streamed plans) is profiled again, with it; one that has it is a plain hit; callers not asking are unaffected."""
    from intradp_ros.core.profiler import BAND_COST_KEY

    g, x = conv_chain(2, h=8)
    kw = dict(warmup=0, repeats=1, sizes=2, message_overhead_s=0.0, step_overhead=False, codec_repeats=1)
    plain, hit = cached_profile(g, [x], tmp_path, **kw)
    assert not hit and BAND_COST_KEY not in plain.device
    assert cached_profile(g, [x], tmp_path, **kw)[1], "not asked: the cached one"
    banded, hit = cached_profile(g, [x], tmp_path, band_overhead=True, **kw)
    assert not hit and banded.device[BAND_COST_KEY] is True and any(banded.wire_costs())
    again, hit = cached_profile(g, [x], tmp_path, band_overhead=True, **kw)
    assert hit and again.to_json() == banded.to_json()


def test_band_factors_are_measured_per_count_travel_in_the_json_and_are_bounded():
    """`profile_graph(band_overhead=True)` measures one factor per band count the solver tries; the factors round
    trip through JSON; out-of-range ones (a client's profile arrives in the handshake) are refused; profiles without
    them keep their JSON (plan-book keys) and load with none."""
    g, x = conv_chain(2, h=32)
    p = profile_graph(g, [x], warmup=0, repeats=1, sizes=2, band_overhead=True)
    assert set(p.band_factors) <= {2, 4, 8, 16, 32} and p.band_factors
    assert all(0 < f <= 1000 for f in p.band_factors.values())
    back = Profile.from_json(p.to_json(), g)
    assert back.band_factors == p.band_factors
    for bad in ({"1": 2.0}, {"4": 0.0}, {"4": 1e9}, {"x": 1.0}, [1, 2]):
        d = json.loads(p.to_json())
        d["band_factors"] = bad
        with pytest.raises(ProfileError):
            Profile.from_json(json.dumps(d), g)
    plain = dataclasses.replace(p, band_factors={})
    assert "band_factors" not in json.loads(plain.to_json())
    assert Profile.from_json(plain.to_json(), g).band_factors == {}


def test_quota_clock_times_frames_by_cpu_time_over_the_quota(monkeypatch):
    """Calibration frames of a throttled robot are timed by its CPU seconds / its quota (the wall time the frame
    takes with the whole quota), which other jobs on the host do not stretch; no quota below 1 CPU: wall time."""
    import time

    import intradp_ros.core.profiler as profiler

    cpu = iter([1.0, 1.05, 2.0, 2.02])
    monkeypatch.setattr(time, "process_time", lambda: next(cpu))
    out = profiler.measure_frames(lambda: None, frames=2, warmup=0, clock=profiler.quota_clock(0.1))
    assert out == pytest.approx([0.5, 0.2])  # 50 ms and 20 ms of CPU at 0.1 CPU
    assert profiler.quota_clock(1.0) is time.perf_counter and profiler.quota_clock(2.0) is time.perf_counter
    monkeypatch.setattr(profiler, "cpu_quota", lambda: None)
    assert profiler.quota_clock() is time.perf_counter
    monkeypatch.setattr(profiler, "cpu_quota", lambda: 0.25)
    cpu = iter([3.0, 3.5])
    clock = profiler.quota_clock()
    assert clock() == pytest.approx(12.0) and clock() == pytest.approx(14.0)


def test_entries_made_for_other_candidate_codecs_are_never_read_as_they_are(tmp_path, monkeypatch):
    """The cache file is named after the candidate codecs: an entry made before green_delta_zstd (no tag) is read
    once, its codec profiles measured again (operator times kept), stored under the tagged name, and left in place
    for older code; a change of the candidate set changes the name again."""
    from intradp_ros.core import codec_choice, profiler

    g, x = conv_chain(2, h=8)
    kw = dict(warmup=0, repeats=1, sizes=2, message_overhead_s=0.0, step_overhead=False, codec_repeats=1)
    made, _ = cached_profile(g, [x], tmp_path, **kw)
    tagged = profiler.profile_cache_path(tmp_path, g)
    legacy = profiler.profile_cache_path(tmp_path, g, codec_tag=False)
    assert tagged != legacy and os.path.isfile(tagged) and not os.path.exists(legacy)
    os.replace(tagged, legacy)
    old_text = made.with_codecs([]).to_json()  # as if made when no codec was profiled
    with open(legacy, "w") as f:
        f.write(old_text)
    got, hit = cached_profile(g, [x], tmp_path, **kw)
    assert hit and got.codecs, "the legacy entry's codecs are measured again"
    assert [n.seconds for n in got.nodes] == [n.seconds for n in made.nodes]
    assert os.path.isfile(tagged) and Path(legacy).read_text() == old_text
    assert cached_profile(g, [x], tmp_path, **kw)[0].to_json() == got.to_json()
    monkeypatch.setitem(codec_choice.CANDIDATES, codec_choice.KIND_IMAGE, (codec_choice.CODEC_ZSTD,))
    assert profiler.profile_cache_path(tmp_path, g) != tagged
