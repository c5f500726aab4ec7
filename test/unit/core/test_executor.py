"""A tile lost, duplicated, out of order or malformed is detected (error or wait), never merged."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn
from engine_testlib import MangledEnd, assert_close, one_thread  # noqa: F401 (fixture)

from intradp_ros.core import Plan, capture
from intradp_ros.core.executor import ClientHalf, ExecutionError, ServerHalf
from intradp_ros.core.tile import Tile
from intradp_ros.core.transport import inprocess_pair

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2, padding=1),
    ).eval()
    x = torch.randn(1, 3, 24, 16)
    g = capture(model, x)
    plan = Plan.row_split(g, 0.5)
    assert len([t for t in plan.transfers()]) >= 4
    return model, g, plan, x


def run_with(
    g,
    plan,
    x,
    up: Callable[[Tile], list[Tile]] = lambda t: [t],
    down: Callable[[Tile], list[Tile]] = lambda t: [t],
    timeout: float = 1.0,
):
    r, s = inprocess_pair()
    server = ServerHalf(g, MangledEnd(s, down), [plan], device="cpu", timeout=timeout)
    client = ClientHalf(g, MangledEnd(r, up), timeout=timeout)
    try:
        return client.infer(plan, x)
    finally:
        client.close()
        server.close()


def test_reference_run_is_correct(setup) -> None:
    model, g, plan, x = setup
    with torch.no_grad():
        assert_close(model(x), run_with(g, plan, x))


def test_lost_tile_is_detected(setup) -> None:
    _, g, plan, x = setup
    state = {"n": 0}

    def drop_second(t: Tile) -> list[Tile]:
        state["n"] += 1
        return [] if state["n"] == 2 else [t]

    with pytest.raises(ExecutionError, match="tile lost|aborted"):
        run_with(g, plan, x, up=drop_second, timeout=0.5)


def test_duplicated_tile_is_detected(setup) -> None:
    _, g, plan, x = setup
    with pytest.raises(ExecutionError, match="duplicate|aborted"):
        run_with(g, plan, x, down=lambda t: [t, t], timeout=2.0)


def test_out_of_order_tiles_are_waited_for(setup) -> None:
    model, g, plan, x = setup
    held: list[Tile] = []
    lock = threading.Lock()
    swapped = []

    def swap(t: Tile) -> list[Tile]:
        """Hold each tile until the next one comes (or 0.1 s pass), then send the newer one first."""
        with lock:
            if held:
                swapped.append((t.node_id, held[0].node_id))
                out = [t, held.pop()]
                return out
            held.append(t)

        def flush() -> None:
            with lock:
                late = held.pop() if held else None
            if late is not None:
                end.inner.send(late)

        threading.Timer(0.1, flush).start()
        return []

    r, s = inprocess_pair()
    end = MangledEnd(r, swap)
    server = ServerHalf(g, s, [plan], device="cpu", timeout=5.0)
    client = ClientHalf(g, end, timeout=5.0)
    try:
        assert_close(model(x), client.infer(plan, x))
    finally:
        client.close()
        server.close()
    assert any(a > b for a, b in swapped), "some tile must have overtaken an earlier one"


@pytest.mark.parametrize("field", ["shape", "dtype", "plan_id", "rows", "node"])
def test_malformed_tile_is_never_merged(setup, field: str) -> None:
    _, g, plan, x = setup

    def corrupt(t: Tile) -> list[Tile]:
        if field == "shape":
            return [replace(t, data=t.data[..., :-1, :] if t.data.ndim > 2 else t.data[:-1])]
        if field == "dtype":
            return [replace(t, data=t.data.astype(np.float64))]
        if field == "plan_id":
            return [replace(t, plan_id=t.plan_id + 1)]
        if field == "rows":
            return [replace(t, row_start=t.row_start + 1)]
        return [replace(t, node_id=t.node_id + 1)]

    with pytest.raises(ExecutionError):
        run_with(g, plan, x, down=corrupt, timeout=0.5)


def test_client_survives_a_failed_request(setup) -> None:
    model, g, plan, x = setup
    r, s = inprocess_pair()
    drop = threading.Event()
    drop.set()

    def maybe_drop(t: Tile) -> list[Tile]:
        return [] if drop.is_set() else [t]

    server = ServerHalf(g, s, [plan], device="cpu", timeout=0.5)
    client = ClientHalf(g, MangledEnd(r, maybe_drop), timeout=0.5)
    try:
        with pytest.raises(ExecutionError):
            client.infer(plan, x)
        drop.clear()
        assert_close(model(x), client.infer(plan, x))
    finally:
        client.close()
        server.close()


def test_tiles_survive_the_wire_codec() -> None:
    """Every tile the executors send (split rows, whole tensors, raw uint8 input) goes through the wire
    codec's bytes and back; results stay equal."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    x = torch.randn(1, 3, 48, 48)
    g = capture(model, x)
    with torch.no_grad():
        ref = model(x)
    for plan in [Plan.server_only(g), Plan.halo_split(g, 0.5)] + [Plan.random(g, s) for s in range(4)]:
        r, s = inprocess_pair(wire=True)
        server = ServerHalf(g, s, [plan], device="cpu", timeout=5.0)
        client = ClientHalf(g, r, timeout=5.0)
        try:
            assert_close(ref, client.infer(plan, x), what=plan.name)
        finally:
            client.close()
            server.close()


def test_server_rows_that_need_no_input_still_start_the_server_half() -> None:
    """Regression (found by the property test): the server's only rows are made of padding, so no tile goes up;
    the server half must still run the request (it learns of it from a start tile), not leave the robot waiting."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1, stride=2), nn.Conv2d(3, 2, 1, stride=2, padding=1)).eval()
    x = torch.randn(1, 2, 8, 6)
    g = capture(model, x)
    extents = [n.extent for n in g.nodes]
    assert extents == [8, 4, 3]
    assert g.input_rows(g.nodes[2], (0, 1)) == [None]  # output row 0 reads only padding
    plan = Plan(g, [(0, 8), (0, 4), (1, 3)], [(0, 0), (0, 0), (0, 1)], "padding_rows_on_server")
    assert plan.server_needs_start() and [t.direction for t in plan.transfers()] == ["server->robot"]
    robot_end, server_end = inprocess_pair()
    server = ServerHalf(g, server_end, [plan], device="cpu", timeout=5.0)
    client = ClientHalf(g, robot_end, device="cpu", timeout=5.0)
    try:
        assert_close(model(x), client.infer(plan, x))
    finally:
        client.close()
        server.close()
