"""Profiler: the fit, the measured profile's shape, JSON round trip, graph check, scaling, the cache."""
from __future__ import annotations

import json

import pytest

from intradp_ros.core.profiler import (Profile, ProfileError, cached_profile, fit_line, profile_graph,
                                       row_counts)

from sched_toys import conv_chain


def test_fit_recovers_fixed_and_per_row_cost():
    rows = [1, 2, 4, 8, 16]
    a, b = fit_line(rows, [0.5e-3 + 0.1e-3 * r for r in rows])
    assert a == pytest.approx(0.5e-3, rel=1e-6)
    assert b == pytest.approx(0.1e-3, rel=1e-6)
    a, b = fit_line([4], [2.0])                        # one size: all fixed cost
    assert (a, b) == (2.0, 0.0)
    a, b = fit_line([1, 10], [5.0, 1.0])               # never negative
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
