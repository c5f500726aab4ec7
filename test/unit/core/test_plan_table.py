"""Plan tables: JSON round trip, refusal of another graph, bucket lookup, the on-disk cache."""

from __future__ import annotations

import json

import pytest
from sched_toys import conv_chain, uniform_profile

import intradp_ros.core.plan_table as pt
from intradp_ros.core.plan_table import PlanTable, PlanTableError, build_table, cached_table, default_grid, make_grid
from intradp_ros.core.solver import SolverConfig

FAST = SolverConfig(groups=3, maxiter=2, popsize=6)


@pytest.fixture(scope="module")
def setup():
    g, _ = conv_chain(3, h=12)
    server = uniform_profile(g, 2e-5, fixed_s=1e-5, overhead_s=1e-4)
    return g, server.scaled(20.0, "robot"), server


def test_default_grid_has_51_buckets():
    grid = default_grid()
    assert len(grid) == 51 and grid[0] == 0.5 and grid[1] == 1.0 and grid[-1] == 50.0
    assert make_grid(0.5, 50, 1) == grid
    assert make_grid(2, 10, 4) == [2.0, 4.0, 8.0]


def test_round_trip(setup):
    g, robot, server = setup
    t = build_table(g, robot, server, [0.1, 1.0, 10.0], config=FAST)
    back = PlanTable.from_json(t.to_json(), g)
    assert back.to_json() == t.to_json()
    for a, b in zip(t.rows, back.rows):
        assert (a.plan.robot, a.plan.server, a.plan.plan_id) == (b.plan.robot, b.plan.server, b.plan.plan_id)
        assert a.predictions["intradp"].latency_s == b.predictions["intradp"].latency_s


def test_refuses_another_graph_and_garbage(setup):
    g, robot, server = setup
    t = build_table(g, robot, server, [1.0], config=FAST)
    other, _ = conv_chain(3, h=14)
    with pytest.raises(PlanTableError, match="graph"):
        PlanTable.from_json(t.to_json(), other)
    with pytest.raises(PlanTableError):
        PlanTable.from_json("{not json", g)
    d = json.loads(t.to_json())
    d["rows"][0]["plan"]["robot"] = [[0, 1]] * len(g.nodes)  # does not cover the rows
    with pytest.raises(PlanTableError):
        PlanTable.from_json(json.dumps(d), g)


def test_bucket_lookup(setup):
    g, robot, server = setup
    t = build_table(g, robot, server, [0.5, 1.0, 2.0], config=FAST)
    assert t.row_for(0.1).bandwidth_MBps == 0.5  # below the grid: the lowest bucket
    assert t.row_for(1.7).bandwidth_MBps == 1.0  # the largest bucket not above the estimate
    assert t.row_for(99).bandwidth_MBps == 2.0
    assert t.plan_for(2.0) is t.rows[2].plan


def test_cache_is_hit_the_second_time(setup, tmp_path, monkeypatch):
    g, robot, server = setup
    t1, hit1 = cached_table(g, robot, server, [0.5, 5.0], config=FAST, cache_dir=tmp_path)

    def fail(*a, **k):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(pt, "build_table", fail)
    t2, hit2 = cached_table(g, robot, server, [0.5, 5.0], config=FAST, cache_dir=tmp_path)
    assert (hit1, hit2) == (False, True)
    assert t2.to_json() == t1.to_json()
    # another server profile is another key: a miss (which would rebuild)
    with pytest.raises(AssertionError, match="rebuilt"):
        cached_table(g, robot, server.scaled(0.5, "faster"), [0.5, 5.0], config=FAST, cache_dir=tmp_path)


def test_default_cache_dir_never_puts_root_files_in_a_sudo_users_home(monkeypatch, tmp_path) -> None:
    import os
    import pwd
    from pathlib import Path

    from intradp_ros.core.plan_table import default_cache_dir

    monkeypatch.delenv("INTRADP_CACHE", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "alice"))  # sudo -E kept HOME
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "alice")
    assert default_cache_dir() == Path(pwd.getpwuid(0).pw_dir) / ".cache" / "intradp_ros"
    monkeypatch.delenv("SUDO_USER")
    assert default_cache_dir() == tmp_path / "alice" / ".cache" / "intradp_ros"
    monkeypatch.setenv("INTRADP_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
