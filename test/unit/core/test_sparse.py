"""Sparse gathers: survivors of row pieces equal those of the whole tensor, through capture, plans and the wire."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from intradp_ros.core import Plan, capture, run_pair
from intradp_ros.core.executor import ClientHalf, ExecutionError, ServerHalf, SideExecutor
from intradp_ros.core.plan import ROBOT
from intradp_ros.core.sparse import SparseRows, merge, rows, select_rows, sparse_select
from intradp_ros.core.tile import CODEC_SPARSE, Tile
from intradp_ros.core.transport import inprocess_pair


class Candidates(nn.Module):
    """Conv stack, then the positions whose first channel passes a threshold (a KAPAO-like candidate head)."""

    def __init__(self, thr: float) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 5, 3, padding=1, stride=2)
        self.thr = thr

    def forward(self, x: torch.Tensor) -> tuple:
        y = self.c2(torch.relu(self.c1(x.float() / 255))).unflatten(1, (1, 5)).permute(0, 1, 3, 4, 2)
        return sparse_select(y[..., 0] > self.thr, y, density=0.1), y.amax()


@pytest.fixture(scope="module")
def model_and_input() -> tuple:
    torch.manual_seed(0)
    return Candidates(-0.05).eval(), torch.randint(0, 256, (1, 3, 40, 24), dtype=torch.uint8)


def test_row_pieces_merge_to_the_whole_selection() -> None:
    g = torch.Generator().manual_seed(1)
    values = torch.randn(2, 3, 9, 4, 6, generator=g)
    mask = values[..., 0] > 0.3
    whole = sparse_select(mask, values)
    assert len(whole) == int(mask.sum()) and whole.values.shape[1:] == (6,)
    cuts = [0, 2, 3, 7, 9]
    parts = [select_rows(mask[:, :, a:b], values[:, :, a:b], 2, a, mask.shape) for a, b in zip(cuts, cuts[1:])]
    assert merge(parts[::-1]).equal(whole)
    assert rows(whole, 2, 3, 7).equal(parts[2])


def test_capture_makes_one_row_wise_sparse_node(model_and_input: tuple) -> None:
    m, x = model_and_input
    for method in ("fx", "dispatch"):
        g = capture(m, x, method=method)
        sparse = [n for n in g.nodes if n.is_sparse]
        assert len(sparse) == 1 and sparse[0].kind == "row" and sparse[0].extent == 20
        n = sparse[0]
        # expected wire bytes: 10% of the 1*1*24*... positions per row, 8 + 5*4 bytes each
        assert n.bytes_per_row == round(0.1 * 12 * (8 + 20))


def test_every_plan_returns_the_local_survivors(model_and_input: tuple) -> None:
    m, x = model_and_input
    ref = m(x)
    assert len(ref[0]) > 20
    g = capture(m, x)
    plans = [Plan.device_only(g), Plan.server_only(g), Plan.halo_split(g, 0.5)]
    plans += [Plan.row_split(g, f) for f in (0.25, 0.6)] + [Plan.random(g, s) for s in range(12)]
    for p in plans:
        out = run_pair(g, p, x)
        assert isinstance(out[0], SparseRows) and out[0].equal(ref[0], atol=1e-5), p.name
        assert torch.allclose(out[1], ref[1], atol=1e-5)


def test_sparse_tiles_cross_the_wire_codec(model_and_input: tuple) -> None:
    m, x = model_and_input
    ref = m(x)
    g = capture(m, x)
    plan = Plan.row_split(g, 0.5)
    robot_end, server_end = inprocess_pair(None, wire=True)
    server = ServerHalf(g, server_end, [plan], device="cpu")
    client = ClientHalf(g, robot_end)
    try:
        out = client.infer(plan, x)
    finally:
        client.close()
        server.close()
    assert out[0].equal(ref[0], atol=1e-5)


def _sparse_tile(g, plan, node, index, values) -> Tile:
    return Tile(1, plan.plan_id, node.index, node.axis, 10, 20, values, CODEC_SPARSE, index=index)


@pytest.mark.parametrize("case", ["unsorted", "outside_rows", "wrong_features", "no_positions"])
def test_bad_sparse_tiles_fail_the_request(model_and_input: tuple, case: str) -> None:
    m, x = model_and_input
    g = capture(m, x)
    node = next(n for n in g.nodes if n.is_sparse)
    robot = [(0, n.extent) for n in g.nodes]
    server = [(0, 0)] * len(g.nodes)
    robot[node.index], server[node.index] = (0, 10), (10, 20)
    robot[node.index - 1] = (0, g.nodes[node.index - 1].extent)
    plan = Plan(g, robot, server)
    # rows [10, 20) of the mask (1, 1, 20, 12): positions 120..239
    index = (
        np.array([130, 125], dtype=np.int64)
        if case == "unsorted"
        else np.array([100, 130], dtype=np.int64)
        if case == "outside_rows"
        else np.array([125, 130], dtype=np.int64)
    )
    values = np.zeros((2, 4 if case == "wrong_features" else 5), dtype=np.float32)
    tile = _sparse_tile(g, plan, node, None if case == "no_positions" else index, values)
    ex = SideExecutor(g, plan, ROBOT, 1, lambda *a: None, torch.device("cpu"), timeout=0.5)
    ex.deliver(tile)
    want = {
        "unsorted": "ascending",
        "outside_rows": "outside rows",
        "wrong_features": "do not fit",
        "no_positions": "positions expected",
    }[case]
    assert ex.errors and want in ex.errors[0]
    with pytest.raises(ExecutionError):
        ex.run((x,))


def test_sparse_select_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        sparse_select(torch.ones(3), torch.ones(3, 2))
    with pytest.raises(ValueError):
        sparse_select(torch.ones(3, dtype=torch.bool), torch.ones(4, 2))


def test_cost_model_charges_the_survivors_the_profile_saw(model_and_input: tuple) -> None:
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.profiler import profile_graph

    m, x = model_and_input
    g = capture(m, x)
    node = next(n for n in g.nodes if n.is_sparse)
    prof = profile_graph(g, [x], repeats=1, warmup=0, message_overhead_s=0.0, step_overhead=False)
    survivors = m(x)[0]
    measured = -(-survivors.nbytes // node.extent)
    assert prof.bytes_per_row[node.index] == max(node.bytes_per_row, measured)
    cp = CostModel(g, prof, prof.scaled(0.1, "server")).compile(Plan.server_only(g))
    sparse_down = cp.bytes_down - sum(
        t.nbytes for t in cp.transfers if t.node != node.index and t.direction != "robot->server"
    )
    assert sparse_down == node.extent * prof.bytes_per_row[node.index] >= survivors.nbytes
