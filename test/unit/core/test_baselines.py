"""Baselines: DSCCS min-cut against brute force, SPSO's energy choice, plans in the shared format."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sched_toys import conv_chain, toy_graph, uniform_profile

from intradp_ros.core.baselines import (
    LayerPartitions,
    baselines_at,
    dsccs_partition,
    partition_cost,
    spso_choice,
    whole_partition,
)
from intradp_ros.core.cost_model import CostModel
from intradp_ros.core.graph import ConstRef, NodeRef
from intradp_ros.core.plan import EMPTY, Plan


def random_costs(g, seed):
    rng = np.random.default_rng(seed)
    robot = uniform_profile(g, list(rng.uniform(1e-4, 5e-3, len(g.nodes))), overhead_s=1e-4)
    server = uniform_profile(g, list(rng.uniform(1e-6, 5e-4, len(g.nodes))), overhead_s=1e-4)
    return CostModel(g, robot, server)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bw", [1e3, 3e4, 1e5, 1e6, 1e8])
def test_min_cut_equals_brute_force_on_a_chain(seed, bw):
    g, _ = conv_chain(4, h=8, seed=seed)
    cm = random_costs(g, seed)
    on = dsccs_partition(g, cm, bw)
    got = partition_cost(g, cm, on, bw)
    brute = min(partition_cost(g, cm, [i < cut for i in range(len(g.nodes))], bw) for cut in range(len(g.nodes) + 1))
    assert got == pytest.approx(brute, rel=1e-5, abs=2e-6)  # capacities are rounded to microseconds
    # its partition is a topological prefix (the chain has no other downsets)
    k = sum(on)
    assert on == [i < k for i in range(len(g.nodes))]


def diamond():
    """x -> a -> (b, c) -> add -> d: a DAG with a fork, so downsets are not just prefixes."""
    x = torch.randn(1, 2, 8, 8)
    w = {f"w{i}": torch.randn(2, 2, 3, 3) for i in range(4)}
    ops = [
        ("a", F.conv2d, (0,), (NodeRef(0), ConstRef("w0")), {"padding": 1}),
        ("b", F.conv2d, (1,), (NodeRef(0), ConstRef("w1")), {"padding": 1}),
        ("c", F.relu, (1,), (NodeRef(0),), {}),
        ("add", torch.add, (2, 3), (NodeRef(0), NodeRef(1)), {}),
        ("d", F.conv2d, (4,), (NodeRef(0), ConstRef("w2")), {"padding": 1}),
    ]
    return toy_graph(ops, x, w)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bw", [2e3, 5e4, 1e7])
def test_min_cut_equals_brute_force_over_downsets_of_a_dag(seed, bw):
    g = diamond()
    cm = random_costs(g, seed)
    N = len(g.nodes)
    best = np.inf
    for bits in itertools.product([False, True], repeat=N - 1):
        on = [True] + list(bits)
        if any(on[v] and not all(on[u] for u in g.nodes[v].inputs) for v in range(N)):
            continue  # not a downset: a robot node after a server node
        best = min(best, partition_cost(g, cm, on, bw))
    on = dsccs_partition(g, cm, bw)
    assert partition_cost(g, cm, on, bw) == pytest.approx(best, rel=1e-5, abs=3e-6)
    plan = whole_partition(g, on, "dsccs")
    assert all(r in (EMPTY, (0, n.extent)) for r, n in zip(plan.robot, g.nodes))


def test_spso_is_the_least_energy_prefix_meeting_the_deadline():
    g, _ = conv_chain(4, h=8)
    cm = random_costs(g, 3)
    lp = LayerPartitions(g, cm)
    bws = [1e3, 1e4, 1e5, 1e6]
    preds = lp.predictions(bws)
    for b in range(len(bws)):
        lat = [p[b].latency_s for p in preds]
        for deadline in (min(lat) * 1.01, np.median(lat), max(lat) + 1, min(lat) / 2):
            c = spso_choice(preds, b, deadline)
            ok = [i for i in range(len(preds)) if lat[i] <= deadline]
            if ok:
                assert lat[c] <= deadline
                assert preds[c][b].energy_j == min(preds[i][b].energy_j for i in ok)
            else:
                assert lat[c] == min(lat)


def test_layer_partitions_match_plan_constructors():
    g, _ = conv_chain(2, h=8)
    cm = random_costs(g, 0)
    lp = LayerPartitions(g, cm)
    assert lp.plan(0).robot == Plan.server_only(g).robot
    assert lp.plan(len(g.nodes)).server == Plan.device_only(g).server
    for cut in range(1, len(g.nodes)):
        ref = Plan.layer_partition(g, cut)
        assert (lp.plan(cut).robot, lp.plan(cut).server) == (ref.robot, ref.server)


def test_baselines_at_gives_four_plans_with_predictions():
    g, _ = conv_chain(3, h=8)
    cm = random_costs(g, 1)
    bs = baselines_at(g, cm, 1e5)
    assert set(bs.plans) == {"device_only", "server_only", "dsccs", "spso_ga"}
    for name, plan in bs.plans.items():
        assert Plan.from_json(plan.to_json(), g).robot == plan.robot
        assert bs.predictions[name].latency_s == pytest.approx(cm.latency(plan, 1e5))
    # DSCCS minimises the sequential sum, which for whole-operator partitions of a chain is the replayed latency
    assert (
        bs.predictions["dsccs"].latency_s
        <= min(bs.predictions[k].latency_s for k in ("device_only", "server_only")) + 1e-6
    )
