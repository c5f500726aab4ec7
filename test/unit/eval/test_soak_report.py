"""Slopes, growth verdicts and robot figures of the scale and soak runs (pure functions)."""

import math
import os

import pytest

from intradp_ros.eval.soak_report import (
    ProcSample,
    figures_table,
    growth,
    input_drops,
    python_pid,
    read_proc_status,
    robot_figures,
    slope_per_hour,
)


def test_slope_per_hour_of_a_line_is_its_rate():
    ts = [0.0, 60.0, 120.0, 180.0]
    assert slope_per_hour(ts, [100.0, 101.0, 102.0, 103.0]) == pytest.approx(60.0)
    assert slope_per_hour(ts, [5.0] * 4) == pytest.approx(0.0, abs=1e-9)


def test_slope_per_hour_is_least_squares_not_last_minus_first():
    # a one-sample spike at the end moves the fitted slope much less than (last - first) / span would say
    ts = [float(i * 10) for i in range(37)]
    ys = [500.0] * 36 + [536.0]
    assert slope_per_hour(ts, ys) < 0.5 * (36.0 / 360.0 * 3600.0)


def test_slope_per_hour_needs_two_distinct_times_and_matching_lengths():
    assert slope_per_hour([1.0], [3.0]) == 0.0
    assert slope_per_hour([1.0, 1.0], [3.0, 4.0]) == 0.0
    with pytest.raises(ValueError):
        slope_per_hour([1.0, 2.0], [3.0])


def samples(rss, threads, every=10.0):
    return [ProcSample(1000.0 + i * every, r, t) for i, (r, t) in enumerate(zip(rss, threads))]


def test_growth_leaves_out_the_warmup_and_judges_both_slopes():
    # 10 min of warm-up growing fast, then flat: passes
    ss = samples([100.0 + i for i in range(60)] + [160.0] * 120, [20] * 180)
    g = growth("server", ss, warmup_s=600.0, mb_bound=30.0, threads_bound=4.0)
    assert g.samples == 120 and g.mb_per_h == pytest.approx(0.0, abs=1e-6) and g.passed
    assert "PASS" in g.line()
    # counted from the start, the warm-up's growth fails the memory bound
    assert not growth("server", ss, warmup_s=0.0, mb_bound=30.0).passed


def test_growth_fails_a_thread_leak():
    ss = samples([200.0] * 120, [20 + i // 10 for i in range(120)])  # one thread per 100 s = 36/h
    g = growth("client", ss, warmup_s=0.0, threads_bound=4.0)
    assert g.threads_per_h == pytest.approx(36.0, rel=0.05)
    assert not g.passed and "FAIL" in g.line()


def test_growth_of_no_samples_fails():
    g = growth("gone", [], warmup_s=0.0)
    assert not g.passed and math.isnan(g.mb_per_h)


def stat(frame, t, latency=0.3, wait=0.1, fell_back=False, stale=0, replaced=0):
    return {
        "frame": frame,
        "t": t,
        "latency_s": latency,
        "wait_s": wait,
        "server_compute_s": 0.05,
        "tiles_up": 0 if fell_back else 3,
        "tiles_down": 0 if fell_back else 2,
        "fell_back": fell_back,
        "dropped_stale": stale,
        "dropped_replaced": replaced,
    }


def test_input_drops_counts_the_running_totals_growth_inside_the_window():
    st = [stat("a", 1.0, replaced=2), stat("b", 5.0, replaced=3, stale=1), stat("c", 9.0, replaced=4, stale=1)]
    assert input_drops(st, 2.0, 9.5) == 3
    assert input_drops(st, 0.0, 6.0) == 4
    assert input_drops([], 0.0, 1.0) == 0


def test_robot_figures_count_only_the_window_and_split_lost_from_dropped():
    sent = [{"frame": f"f{i}", "t": float(i)} for i in range(10)]
    results = [{"frame": f"f{i}"} for i in range(10) if i not in (4, 5, 6)]
    stats = [stat(f"f{i}", i + 0.3, latency=0.1 * i, fell_back=(i == 7)) for i in range(10) if i not in (4, 5, 6)]
    stats[4] = {**stats[4], "dropped_replaced": 1}  # frame 7's stats report that one frame was replaced
    f = robot_figures("robot1", sent, results, stats, wrong=0, window=(2.0, 8.0))
    assert (f.sent, f.answered, f.dropped, f.lost) == (7, 4, 1, 2)
    assert f.fell_back == 1 and f.distributed == 3
    assert f.latency_p50 == pytest.approx(0.5)  # frames 2, 3, 7, 8 had stats: 0.2, 0.3, 0.7, 0.8 s
    table = figures_table([f], reference_p50=f.latency_p50)
    assert "robot1" in table and "1.00" in table


def test_read_proc_status_of_this_process_and_of_a_gone_one():
    s = read_proc_status(os.getpid())
    assert s is not None and s.rss_mb > 1.0 and s.threads >= 1
    assert read_proc_status(2**22 + 17) is None


def test_python_pid_finds_this_interpreter():
    assert python_pid(os.getpid()) == os.getpid()
    assert python_pid(2**22 + 17) is None


def test_growth_judges_anonymous_memory_when_known_not_rss_that_page_reclaim_moves():
    # the kernel drops 300 MB of mapped library pages half-way (another job's memory pressure): RSS falls, anon flat
    ss = [ProcSample(1000.0 + 10 * i, 960.0 if i < 60 else 660.0, 26, 420.0 + (i % 3) * 0.1) for i in range(120)]
    g = growth("client", ss, warmup_s=0.0)
    assert g.memory == "anon" and abs(g.mb_per_h) < 1.0 and g.passed
    leak = [ProcSample(s.t, s.rss_mb, s.threads, 420.0 + i * 0.5) for i, s in enumerate(ss)]  # 0.5 MB per 10 s
    assert growth("client", leak, warmup_s=0.0).mb_per_h == pytest.approx(180.0, rel=0.01)
    assert growth("client", samples([960.0] * 60 + [660.0] * 60, [26] * 120), warmup_s=0.0).memory == "RSS"


def test_memory_needed_grows_per_robot_and_mem_available_reads_meminfo():
    from intradp_ros.eval.soak_report import CLIENT_MB, mem_available_mb, memory_needed_mb

    assert memory_needed_mb(8) - memory_needed_mb(1) == pytest.approx(7 * CLIENT_MB)
    assert mem_available_mb("MemTotal: 100 kB\nMemAvailable:    2097152 kB\n") == pytest.approx(2048.0)
    assert math.isnan(mem_available_mb("MemTotal: 100 kB\n"))
    assert mem_available_mb() > 0
