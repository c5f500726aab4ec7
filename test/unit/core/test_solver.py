"""Solver: encodings are valid plans, seeds are exact, and the result is never predicted worse than any
seed or baseline at any bandwidth (the quality test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_toys import conv_chain, uniform_profile
from torch import nn

from intradp_ros.core import capture
from intradp_ros.core.baselines import LayerPartitions, dsccs_plan
from intradp_ros.core.cost_model import BandedSimulation, CostModel
from intradp_ros.core.plan import UP, Plan
from intradp_ros.core.plan_table import build_table
from intradp_ros.core.solver import Encoding, SolverConfig, choose_bands, solve


class TinyNet(nn.Module):
    """uint8 image -> float -> conv/relu x2 with a residual -> pool -> conv -> flatten -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x.float() / 255.0))
        y = torch.relu(self.c2(y)) + y
        y = torch.relu(self.c3(nn.functional.max_pool2d(y, 2)))
        return self.fc(torch.flatten(y, 1))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    m = TinyNet().eval()
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    g = capture(m, x)
    rng = np.random.default_rng(0)
    server = uniform_profile(g, list(rng.uniform(1e-6, 2e-5, len(g.nodes))), fixed_s=2e-5, overhead_s=1e-4)
    robot = server.scaled(20.0, "robot")
    return g, CostModel(g, robot, server)


def test_seed_encodings_are_exactly_the_seed_plans(tiny):
    g, cm = tiny
    enc = Encoding(g, cm, groups=4)
    N = len(g.nodes)
    dev, srv = enc.compiled(enc.layer_cut(N)), enc.compiled(enc.layer_cut(0))
    assert (dev.robot, dev.server) == (Plan.device_only(g).robot, Plan.device_only(g).server)
    assert (srv.robot, srv.server) == (Plan.server_only(g).robot, Plan.server_only(g).server)
    for cut in range(1, N):
        cp, ref = enc.compiled(enc.layer_cut(cut)), Plan.layer_partition(g, cut)
        assert (cp.robot, cp.server) == (ref.robot, ref.server)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7))
def test_every_encoding_is_a_valid_plan(x):
    g, _ = conv_chain(3, h=12)
    cm = CostModel(g, uniform_profile(g, 1e-3), uniform_profile(g, 1e-4))
    enc = Encoding(g, cm, groups=4)
    cp = enc.compiled(np.array(x))
    plan = cp.plan  # validates (PlanError otherwise)
    assert cm.transfers(plan.robot, plan.server) == plan.transfers()


def test_solution_never_worse_than_seeds_and_candidates(tiny):
    g, cm = tiny
    enc = Encoding(g, cm, groups=4)
    lp = LayerPartitions(g, cm)
    for bw in (2e4, 2e5, 2e6):
        seeds = [enc.layer_cut(c) for c in range(len(g.nodes) + 1)]
        cands = [("dsccs", cm.compile(dsccs_plan(g, cm, bw)))]
        sol = solve(enc, bw, seeds, cands, SolverConfig(maxiter=3, popsize=8))
        assert sol.latency_s == pytest.approx(cm.latency(sol.plan, bw))
        floor = min([cm.latency(cp, bw) for cp in lp.compiled] + [cm.latency(cp, bw) for _, cp in cands])
        assert sol.latency_s <= floor + 1e-12


def test_plan_table_quality_intradp_never_above_any_baseline(tiny):
    """The quality test: at every bucket Intra-DP's predicted latency <= every baseline's and every layer
    partition's."""
    g, cm = tiny
    grid = [0.05, 0.2, 0.5, 1.0, 3.0, 10.0]
    table = build_table(g, cm.robot, cm.server, grid, config=SolverConfig(groups=4, maxiter=3, popsize=8))
    lp = LayerPartitions(g, cm)
    lat = lp.latencies([b * 1e6 for b in grid])
    assert [r.bandwidth_MBps for r in table.rows] == grid
    for b, row in enumerate(table.rows):
        p = row.predictions
        assert set(p) == {"intradp", "device_only", "server_only", "dsccs", "spso_ga"}
        assert p["intradp"].latency_s <= min(p[k].latency_s for k in p if k != "intradp") + 1e-12
        assert p["intradp"].latency_s <= lat[:, b].min() + 1e-12
        assert p["intradp"].latency_s == pytest.approx(cm.latency(row.plan, row.bandwidth_MBps * 1e6))


def test_solver_finds_a_split_when_one_pays():
    """Robot and link about as slow as each other (device-only 192 ms, server-only 164 ms): the robot computing
    the top rows while the server does the rest beats both extremes and every layer partition."""
    g, _ = conv_chain(3, h=32, c=4)
    server = uniform_profile(g, 1e-5, overhead_s=0.0)
    robot = server.scaled(100.0, "robot")
    cm = CostModel(g, robot, server)
    enc = Encoding(g, cm, groups=3)
    bw = 2e5
    N = len(g.nodes)
    sol = solve(enc, bw, [enc.layer_cut(c) for c in range(N + 1)], (), SolverConfig(maxiter=20, popsize=16))
    best_seed = min(cm.latency(enc.compiled(enc.layer_cut(c)), bw) for c in range(N + 1))
    assert sol.latency_s < 0.95 * best_seed
    assert any(0 < r[1] - r[0] < n.extent for r, n in zip(sol.plan.robot, g.nodes))


def test_equally_fast_plans_prefer_the_one_without_wasted_transfers(tiny):
    """A plan that also runs everything on the server (nothing it sends back is needed) ties with device-only
    in latency; the solver must return device-only, not upload the input for nothing."""
    g, cm = tiny
    enc = Encoding(g, cm)
    full = [(0, n.extent) for n in g.nodes]
    server_too = [(0, 0) if n.is_input else (0, n.extent) for n in g.nodes]
    wasteful = cm.compile_ranges(full, server_too, "wasteful")
    device = cm.compile(Plan.device_only(g))
    bw = 5e6
    assert wasteful.bytes_up > 0 and cm.latency(wasteful, bw) == pytest.approx(cm.latency(device, bw))
    sol = solve(enc, bw, candidates=[("wasteful", wasteful), ("device_only", device)], config=SolverConfig(maxiter=0))
    assert sol.plan.transfers() == []


# ---------------------------------------------------------------- bands (streaming)
def test_choose_bands_streams_only_where_it_pays():
    from intradp_ros.core.solver import choose_bands

    g, _ = conv_chain(3, h=64)
    up_bytes = Plan.server_only(g).bytes(UP)
    cheap = uniform_profile(g, 1e-4)
    server_s = sum(cheap.time(n.index, n.extent) for n in g.nodes if not n.is_input)
    bw = up_bytes / server_s
    pick = choose_bands(CostModel(g, cheap, cheap), Plan.server_only(g), bw)
    assert pick.bands > 1 and pick.plan.is_banded and pick.latency_s < pick.one_band_s
    costly = uniform_profile(g, 1e-4, fixed_s=server_s)  # every band call costs a whole server pass
    pick = choose_bands(CostModel(g, costly, costly), Plan.server_only(g), bw)
    assert pick.bands == 1 and not pick.plan.is_banded and pick.latency_s == pick.one_band_s


def test_solver_plans_carry_the_codecs_that_pay() -> None:
    """Where a codec halves the bytes cheaply the solved plan carries it (and is predicted faster than the best
    uncompressed plan); on a fast link none pays and the plan is uncompressed."""
    from intradp_ros.core.codecs.profile import CodecProfile
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.solver import Encoding, SolverConfig, solve
    from intradp_ros.core.tile import CODEC_RAW, CODEC_ZSTD_SHUFFLE

    g, _x = conv_chain(3, h=16)

    def codecs(side: str) -> list[CodecProfile]:
        return [
            CodecProfile(CODEC_RAW, "raw", side, "float32", 1.0, 0.0, 0.0, 1, "float32"),
            CodecProfile(CODEC_ZSTD_SHUFFLE, "zstd_shuffle", side, "float32", 0.25, 1e-3, 1e-3, 1, "float32"),
        ]

    robot = uniform_profile(g, 1e-3).with_codecs(codecs("robot"))
    server = uniform_profile(g, 1e-5).with_codecs(codecs("server"))
    cfg = SolverConfig(maxiter=3, popsize=8)
    slow = 2e4
    sol = solve(Encoding(g, CostModel(g, robot, server), 4), slow, config=cfg)
    raw_cm = CostModel(g, robot, server, codecs=False)
    raw = solve(Encoding(g, raw_cm, 4), slow, config=cfg)
    assert sol.plan.codecs and all(c == CODEC_ZSTD_SHUFFLE for c in sol.plan.codecs.values())
    assert sol.latency_s < raw.latency_s and raw.plan.codecs == {}
    assert sol.latency_s == pytest.approx(CostModel(g, robot, server).latency(sol.plan, slow))
    fast = solve(Encoding(g, CostModel(g, robot, server), 4), 1e12, config=cfg)
    assert fast.plan.codecs == {}


# ---------------------------------------------------------------------------------------------- camera option
def camera_profiles(g, verified: bool = True, ratio: float = 0.05):
    """A slow robot and a fast server over TinyNet, with lossless WebP for uint8 rows and (when the robot has
    `verified` passthrough) the camera entries: the robot's observed file/pixel ratio, the server's decode."""
    from intradp_ros.core.codec_choice import KIND_IMAGE, camera_profile
    from intradp_ros.core.codecs.profile import CodecProfile
    from intradp_ros.core.tile import CODEC_RAW, CODEC_WEBP

    def codecs(side: str) -> list[CodecProfile]:
        return [
            CodecProfile(CODEC_RAW, "raw", side, "uint8", 1.0, 0.0, 0.0, 1, KIND_IMAGE),
            CodecProfile(CODEC_WEBP, "webp", side, "uint8", 0.5, 1e-3, 1e-3, 1, KIND_IMAGE),
        ]

    rcam = [camera_profile("robot", ratio)] if verified else []
    robot = uniform_profile(g, 1e-3).with_codecs(codecs("robot") + rcam)
    server = uniform_profile(g, 1e-6).with_codecs(codecs("server") + [camera_profile("server", 1.0, 0.0, 1e-3)])
    return robot, server


def test_solver_sends_the_camera_file_where_it_is_fastest(tiny) -> None:
    """On a slow link the solved plan sends the whole input as the camera file (faster than any plan without it);
    without verified passthrough (no robot entry) no plan carries it."""
    from intradp_ros.core.tile import CODEC_CAMERA

    g, _ = tiny
    robot, server = camera_profiles(g)
    cfg = SolverConfig(maxiter=3, popsize=8)
    x = g.input_indices[0]
    slow = g.nodes[x].nbytes / 0.5  # raw pixels take 0.5 s, the robot's whole inference ~ 10 ms x nodes
    sol = solve(Encoding(g, CostModel(g, robot, server), 4), slow, config=cfg)
    assert sol.plan.codec_for(x, UP) == CODEC_CAMERA
    assert sol.latency_s == pytest.approx(CostModel(g, robot, server).latency(sol.plan, slow))
    unverified = CostModel(g, *camera_profiles(g, verified=False))
    other = solve(Encoding(g, unverified, 4), slow, config=cfg)
    assert CODEC_CAMERA not in other.plan.codecs.values()
    assert sol.latency_s < other.latency_s
    assert CostModel(g, robot, server).latency(other.plan, slow) == pytest.approx(other.latency_s)


def test_camera_file_is_never_priced_for_a_banded_or_partial_input(tiny) -> None:
    from intradp_ros.core.tile import CODEC_CAMERA

    g, _ = tiny
    robot, server = camera_profiles(g)
    cm = CostModel(g, robot, server)
    x = g.input_indices[0]
    whole = g.nodes[x].nbytes
    srv = cm.with_codecs(Plan.server_only(g), whole / 0.5)
    assert srv.codec_for(x, UP) == CODEC_CAMERA
    banded = srv.with_bands(4)
    assert banded.is_banded and banded.codec_for(x, UP) == CODEC_CAMERA  # kept by with_bands, but not priced:
    sim = BandedSimulation(cm, banded)
    up = [p for p, is_up in zip(sim.pay, sim.is_up) if is_up]
    assert sum(up) == pytest.approx(whole), "every band of the input priced as pixels"
    assert cm.with_codecs(banded, whole / 0.5).codec_for(x, UP) != CODEC_CAMERA
    pick = choose_bands(cm, srv, whole / 0.5)
    assert not pick.plan.is_banded and pick.plan.codec_for(x, UP) == CODEC_CAMERA  # the JPEG beats streaming pixels
    # a plan that sends only part of the input never carries it
    cut = cm.compile(Plan.layer_partition(g, 1))
    pay, _enc, _dec = cm.wire_costs(cut, whole / 0.5)
    for t, p in zip(cut.transfers, pay):
        if t.node == x and (t.stop - t.start) * g.nodes[x].bytes_per_row < whole:
            assert p == pytest.approx(t.nbytes * 0.5)


def test_a_plan_with_the_camera_codec_round_trips_and_is_checked(tiny) -> None:
    from intradp_ros.core.plan import DOWN, PlanError
    from intradp_ros.core.tile import CODEC_CAMERA

    g, _ = tiny
    x = g.input_indices[0]
    plan = Plan.server_only(g).with_codecs({(x, UP): CODEC_CAMERA})
    back = Plan.from_json(plan.to_json(), g)
    assert back.codecs == plan.codecs and back.plan_id == plan.plan_id != Plan.server_only(g).plan_id
    assert "camera" in plan.codec_brief() and "camera" in plan.codec_summary()
    with pytest.raises(PlanError):
        Plan.server_only(g).with_codecs({(x, DOWN): CODEC_CAMERA})
    with pytest.raises(PlanError):
        Plan.server_only(g).with_codecs({(x + 1, UP): CODEC_CAMERA})  # not a graph input


def test_choose_bands_takes_the_fewest_bands_within_the_tie_of_the_fastest():
    """Thin bands are where the model errs most: of the counts predicted within BAND_TIE of the fastest, the fewest
    is chosen (with tie 0, the fastest); the returned plan and latency are that count's."""
    from intradp_ros.core.solver import BAND_TIE

    g, _ = conv_chain(3, h=64)
    cheap = uniform_profile(g, 1e-4)
    server_s = sum(cheap.time(n.index, n.extent) for n in g.nodes if not n.is_input)
    bw = Plan.server_only(g).bytes(UP) / server_s
    cm = CostModel(g, cheap, cheap)
    fastest = choose_bands(cm, Plan.server_only(g), bw, tie=0.0)
    banded = {k: lat for k, lat in fastest.tried.items() if k > 1}
    assert fastest.bands == min(banded, key=lambda k: (banded[k], k))
    wide = choose_bands(cm, Plan.server_only(g), bw, tie=1.0)  # every count that pays ties: the fewest
    assert wide.bands == min(banded) < fastest.bands or fastest.bands == min(banded)
    pick = choose_bands(cm, Plan.server_only(g), bw)
    want = min(k for k, lat in banded.items() if lat <= min(banded.values()) * (1 + BAND_TIE))
    assert pick.bands == want and pick.latency_s == banded[want]
    assert pick.plan.plan_id == Plan.server_only(g).with_bands(want).plan_id
    assert wide.plan.plan_id == Plan.server_only(g).with_bands(wide.bands).plan_id
