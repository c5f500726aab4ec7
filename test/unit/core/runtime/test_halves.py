"""Fail fast: any failure on either side of a request (sender thread, an operator in a band, a bad band tile,
a dtype the wire cannot carry) ends the request on both sides at once with a message naming the real cause,
never a timeout that blames a lost tile. Streaming: the server starts computing before the input has arrived."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
from engine_testlib import MangledEnd

from intradp_ros.core import Plan, capture
from intradp_ros.core.plan import PlanError
from intradp_ros.core.runtime.halves import ClientHalf, ServerHalf
from intradp_ros.core.runtime.stage import ExecutionError, Stage
from intradp_ros.core.tile import Tile
from intradp_ros.core.transport import inprocess_pair

TIMEOUT = 30.0  # long: a test that waits it out instead of failing fast would show in the message, not pass


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1),
    ).eval()
    x = torch.randn(1, 3, 32, 16)
    return model, capture(model, x), x


def run(g, plan, x, up=lambda t: [t], down=lambda t: [t], server_stage=Stage):
    """(result or exception, server error, seconds) of one request through mangling ends."""
    r, s = inprocess_pair()
    done = threading.Event()
    server_error: list[str] = []

    def on_done(stage: Stage, error: str) -> None:
        server_error.append(error)
        done.set()

    server = ServerHalf(g, MangledEnd(s, down), [plan], device="cpu", timeout=TIMEOUT, on_done=on_done)
    server.stage_type = server_stage
    client = ClientHalf(g, MangledEnd(r, up), timeout=TIMEOUT)
    t0 = time.perf_counter()
    try:
        try:
            out: object = client.infer(plan, x)
        except ExecutionError as e:
            out = e
        done.wait(TIMEOUT)
        return out, (server_error or ["<server never finished>"])[0], time.perf_counter() - t0
    finally:
        client.close()
        server.close()


def test_banded_request_succeeds(net) -> None:
    model, g, x = net
    out, server_error, _ = run(g, Plan.server_only(g, bands=4), x)
    assert server_error == ""
    assert torch.allclose(out, model(x), atol=1e-5)


def test_sender_thread_failure_aborts_both_sides_with_its_cause(net) -> None:
    _, g, x = net
    plan = Plan.server_only(g, bands=4)

    def broken_link(t: Tile) -> list[Tile]:
        if t.row_start == 8 and not t.flags:  # the second input band cannot be sent
            raise OSError("link refused the tile")
        return [t]

    out, server_error, _ = run(g, plan, x, up=broken_link)
    assert isinstance(out, ExecutionError)
    assert "link refused the tile" in str(out) and "tile lost" not in str(out)
    assert "a tile could not be sent" in server_error and "rows [8, 16)" in server_error, server_error


def test_operator_failure_in_a_server_band_aborts_both_sides(net) -> None:
    _, g, x = net
    plan = Plan.server_only(g, bands=4)
    bad = next(n for n in g.nodes if n.op == "conv2d" and n.index > 2)
    band = plan.bands("server", bad.index)[1]

    class FailingStage(Stage):
        def _run_step(self, step, *args):  # the second band of one convolution raises
            if step.node.index == bad.index and step.rows == band:
                raise RuntimeError("CUDA out of memory (simulated)")
            return super()._run_step(step, *args)

    out, server_error, _ = run(g, plan, x, server_stage=FailingStage)
    assert isinstance(out, ExecutionError)
    assert f"node {bad.index}" in str(out) and f"rows [{band[0]}, {band[1]})" in str(out), str(out)
    assert "an operator raised" in str(out) and "tile lost" not in str(out)
    assert "out of memory (simulated)" in server_error


def test_a_tile_with_a_band_the_plan_does_not_have_aborts_both_sides(net) -> None:
    _, g, x = net
    plan = Plan.server_only(g, bands=4)

    def shifted(t: Tile) -> list[Tile]:
        return [replace(t, row_start=t.row_start + 1, data=t.data[:, :, 1:])] if t.row_start == 16 else [t]

    out, server_error, _ = run(g, plan, x, up=shifted)
    assert isinstance(out, ExecutionError)
    assert "the server aborted" in str(out) and "bad tile" in str(out), str(out)
    assert "unexpected tile node 0 rows [17, 24)" in server_error


def test_a_dtype_the_wire_cannot_carry_is_refused_at_plan_time() -> None:
    class Bf16(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.conv(x).to(torch.bfloat16) * 2).float()

    x = torch.randn(1, 3, 8, 8)
    g = capture(Bf16().eval(), x)
    cut = next(n.index for n in g.nodes if n.dtype == torch.bfloat16) + 1
    with pytest.raises(PlanError, match="bfloat16 cannot cross the wire"):
        Plan.layer_partition(g, cut)
    Plan.layer_partition(g, cut - 1)  # float32 crosses: fine


def test_server_starts_before_the_last_input_band_arrives(net) -> None:
    """The last input band is held until the server has computed something: a server that waited for the
    whole input would never start, and the request would end in the hold's bound."""
    model, g, x = net
    plan = Plan.server_only(g, bands=4)
    last = plan.bands("robot", 0)[-1]
    servers: list[ServerHalf] = []
    released = threading.Event()

    def hold_last(t: Tile) -> list[Tile]:
        if t.row_start == last[0] and not t.flags:
            for _ in range(200):  # at most 10 s
                stages = list(servers[0]._active.values()) if servers else []
                if stages and stages[0].stats.steps > 0:
                    released.set()
                    break
                time.sleep(0.05)
        return [t]

    r, s = inprocess_pair()
    server = ServerHalf(g, s, [plan], device="cpu", timeout=TIMEOUT)
    servers.append(server)
    client = ClientHalf(g, MangledEnd(r, hold_last), timeout=TIMEOUT)
    try:
        out = client.infer(plan, x)
    finally:
        client.close()
        server.close()
    assert released.is_set(), "the server computed nothing before the last input band arrived"
    assert torch.allclose(out, model(x), atol=1e-5)


def test_a_tile_that_never_comes_times_out_naming_it_with_the_request_timeout(net) -> None:
    _, g, x = net
    plan = Plan.server_only(g, bands=2)
    r, s = inprocess_pair()
    server = ServerHalf(g, s, [plan], device="cpu", timeout=TIMEOUT)
    client = ClientHalf(g, MangledEnd(r, lambda t: [] if t.row_start == 16 and not t.flags else [t]), timeout=TIMEOUT)
    try:
        with pytest.raises(ExecutionError, match=r"tile lost: robot waited 0\.3s for tiles node \d+"):
            client.infer(plan, x, timeout=0.3)
    finally:
        client.close()
        server.close()


# ---------------------------------------------------------------------------------------- bounded work per robot
def _start_tile(rid: int, plan: Plan) -> Tile:
    import numpy as np

    from intradp_ros.core.tile import FLAG_START

    return Tile(rid, plan.plan_id, 0, 0, 0, 0, np.zeros(0, np.uint8), flags=FLAG_START, robot="r")


def _aborts(end, n: int, wait_s: float = 5.0) -> list[Tile]:
    """Up to `n` tiles the server sent back, waiting at most `wait_s` in all."""
    out: list[Tile] = []
    deadline = time.monotonic() + wait_s
    while len(out) < n and time.monotonic() < deadline:
        t = end.recv(timeout=0.1)
        if t is not None:
            out.append(t)
    return out


def _server_workers() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("intradp-server-worker"))


def test_a_flood_of_new_request_ids_runs_at_most_max_in_flight_on_a_fixed_pool(net) -> None:
    from intradp_ros.core.runtime.wire import ABORT_REFUSED, describe_abort

    _, g, _x = net
    plan = Plan.server_only(g, bands=2)
    r, s = inprocess_pair()
    before = _server_workers()
    server = ServerHalf(g, s, [plan], device="cpu", timeout=TIMEOUT, max_in_flight=2)
    try:
        for rid in range(100, 300):  # 200 announced requests that never send their input
            r.send(_start_tile(rid, plan))
        aborts = _aborts(r, 198)
        assert len(aborts) == 198 and server.refused_busy == 198
        assert {t.request_id for t in aborts} == set(range(102, 300))  # the first two run, every later one refused
        assert all(t.axis == ABORT_REFUSED for t in aborts)
        assert "refused the request" in describe_abort(g, aborts[0])
        assert server.in_flight == 2 and _server_workers() - before <= 2  # no thread per request
    finally:
        server.close()
    assert _server_workers() == before


def test_ids_not_above_the_newest_announced_are_refused_until_a_new_session(net) -> None:
    _, g, _x = net
    plan = Plan.server_only(g, bands=2)
    r, s = inprocess_pair()
    server = ServerHalf(g, s, [plan], device="cpu", timeout=TIMEOUT, max_in_flight=4)
    try:
        r.send(_start_tile(50, plan))
        r.send(_start_tile(40, plan))  # older than the newest announced: a replay or a made-up id
        r.send(_start_tile(50, plan))  # the running request's own id: delivered to it, not a new request
        for _ in range(50):
            if server.refused_stale:
                break
            time.sleep(0.02)
        assert server.refused_stale == 1 and server.in_flight == 1
        server.new_session()
        r.send(_start_tile(40, plan))  # a new session starts a new id sequence
        for _ in range(50):
            if server.in_flight == 2:
                break
            time.sleep(0.02)
        assert server.in_flight == 2 and server.refused_stale == 1
    finally:
        server.close()


def test_a_refused_request_fails_the_robot_at_once_naming_the_cause(net) -> None:
    _, g, x = net
    plan = Plan.server_only(g, bands=2)
    r, s = inprocess_pair()
    server = ServerHalf(g, s, [plan], device="cpu", timeout=TIMEOUT, max_in_flight=1)
    client = ClientHalf(g, r, timeout=TIMEOUT)
    try:
        client.next_request_id = lambda: 7  # type: ignore[method-assign]
        r.send(_start_tile(5, plan))  # a request of this robot still running on the server
        for _ in range(50):
            if server.in_flight == 1:
                break
            time.sleep(0.02)
        t0 = time.perf_counter()
        with pytest.raises(ExecutionError, match="refused the request"):
            client.infer(plan, x)
        assert time.perf_counter() - t0 < TIMEOUT / 2  # fails at once, not after the tile timeout
    finally:
        client.close()
        server.close()


def test_a_flooded_robot_does_not_hold_up_another_robots_request(net) -> None:
    model, g, x = net
    plan = Plan.server_only(g, bands=2)
    flooded_end, flooded_server_end = inprocess_pair()
    robot_end, server_end = inprocess_pair()
    flooded = ServerHalf(g, flooded_server_end, [plan], device="cpu", timeout=TIMEOUT, max_in_flight=2)
    other = ServerHalf(g, server_end, [plan], device="cpu", timeout=TIMEOUT, max_in_flight=2)
    client = ClientHalf(g, robot_end, timeout=TIMEOUT)
    try:
        for rid in range(1000, 1200):
            flooded_end.send(_start_tile(rid, plan))
        assert len(_aborts(flooded_end, 198)) == 198
        out = client.infer(plan, x)  # the other robot's own pool and topics: served as usual
        assert torch.allclose(out, model(x), atol=1e-5) and other.refused_busy == 0
    finally:
        client.close()
        flooded.close()
        other.close()


def test_senders_use_the_plans_codecs_per_direction(net) -> None:
    """The client sends UP tiles in the plan's UP codecs, the server DOWN tiles in its DOWN codecs; the result is
    bit-identical to the same plan uncompressed (through the wire codec both times)."""
    from intradp_ros.core.plan import DOWN, UP
    from intradp_ros.core.runtime.halves import run_pair
    from intradp_ros.core.tile import CODEC_ZSTD, CODEC_ZSTD_SHUFFLE

    model, g, x = net
    out = g.output_indices[0]
    raw = Plan.server_only(g)
    plan = raw.with_codecs({(0, UP): CODEC_ZSTD_SHUFFLE, (out, DOWN): CODEC_ZSTD})
    seen: list[tuple[int, int]] = []

    def spy(t: Tile) -> list[Tile]:
        seen.append((t.node_id, t.codec))
        return [t]

    got, server_error, _ = run(g, plan, x, up=spy, down=spy)
    assert server_error == ""
    assert (0, CODEC_ZSTD_SHUFFLE) in seen and (out, CODEC_ZSTD) in seen
    assert torch.equal(got, run_pair(g, raw, x, wire=True)) and torch.equal(run_pair(g, plan, x), got)
