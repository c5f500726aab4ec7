"""Cost model: a hand-computed timeline, agreement with the engine's transfers, vectorised == scalar replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sched_toys import conv_chain, toy_graph, uniform_profile

from intradp_ros.core.cost_model import CostModel
from intradp_ros.core.graph import ConstRef, NodeRef
from intradp_ros.core.plan import DOWN, UP, Plan
from intradp_ros.core.power import PowerModel, outside_length, robot_energy, union_length


def three_node_graph():
    """x [1,2,16,16] -> conv3x3 (pad 1) -> relu: input, conv, relu."""
    x = torch.randn(1, 2, 16, 16)
    w = torch.randn(2, 2, 3, 3)
    ops = [
        ("conv", F.conv2d, (0,), (NodeRef(0), ConstRef("w")), {"padding": 1}),
        ("relu", F.relu, (1,), (NodeRef(0),), {}),
    ]
    return toy_graph(ops, x, {"w": w})


def test_hand_computed_timeline():
    g = three_node_graph()
    bpr = 2 * 16 * 4  # bytes of one row of every node (float32, 2 ch, 16 cols)
    assert [n.bytes_per_row for n in g.nodes] == [bpr] * 3
    robot = uniform_profile(g, [0.0, 1e-3, 0.5e-3], overhead_s=2e-4)  # 1 ms/row conv, 0.5 ms/row relu
    server = robot.scaled(0.1, "server")
    power = PowerModel(10.0, 4.0, 1.0)
    cm = CostModel(g, robot, server, power)
    plan = Plan(g, [(0, 16), (0, 8), (0, 8)], [(0, 0), (8, 16), (8, 16)])
    ts = plan.transfers()
    assert [(t.node, t.direction, t.start, t.stop) for t in ts] == [(0, UP, 7, 16), (2, DOWN, 8, 16)]
    bw = 1e5  # bytes/s
    up = 2e-4 + 9 * bpr / bw  # 11.72 ms: input rows 7..15 go up at t = 0
    srv_end = up + 0.1 * (8e-3 + 4e-3)  # server conv + relu on 8 rows
    down = 2e-4 + 8 * bpr / bw  # 10.44 ms
    robot_end = 8e-3 + 4e-3  # robot conv + relu on 8 rows
    latency = max(robot_end, srv_end + down)
    assert latency == pytest.approx(0.02336)  # 11.72 + 1.2 + 10.44 ms
    p = cm.predict(plan, bw)
    assert p.latency_s == pytest.approx(latency)
    assert cm.latency(plan, bw) == pytest.approx(latency)
    assert p.robot_compute_s == pytest.approx(robot_end)
    assert p.server_compute_s == pytest.approx(1.2e-3)
    assert p.transmit_s == pytest.approx(up + down)
    assert p.robot_idle_s == pytest.approx(latency - robot_end)
    assert (p.bytes_up, p.bytes_down, p.transfers) == (9 * bpr, 8 * bpr, 2)
    # robot: computing [0, 12 ms), link busy [0, up) and [srv_end, latency); transmitting-only outside compute
    tx_only = max(up - robot_end, 0.0) + down  # the upload hides under robot compute
    energy = 10.0 * robot_end + 4.0 * tx_only + 1.0 * (latency - robot_end - tx_only)
    assert p.energy_j == pytest.approx(energy)


def test_device_and_server_only_by_hand():
    g = three_node_graph()
    robot = uniform_profile(g, 1e-3, overhead_s=0.0)
    server = robot.scaled(0.05, "server")
    cm = CostModel(g, robot, server)
    assert cm.latency(Plan.device_only(g), 1e6) == pytest.approx(32e-3)
    n = g.nodes[0].nbytes
    assert cm.latency(Plan.server_only(g), 1e6) == pytest.approx(n / 1e6 + 32e-3 * 0.05 + n / 1e6)


def test_tile_macs_cost_each_byte_on_both_sides_of_an_authenticated_link():
    import dataclasses

    g = three_node_graph()
    robot = uniform_profile(g, 1e-3, overhead_s=0.0)
    server = robot.scaled(0.05, "server")
    mac_r, mac_s = 4e-9, 2e-9  # s per byte: the order measured here (~2-6 ms per MB)
    keyed = CostModel(
        g, dataclasses.replace(robot, mac_s_per_byte=mac_r), dataclasses.replace(server, mac_s_per_byte=mac_s)
    )
    n = g.nodes[0].nbytes
    per_byte = 1 / 1e6 + mac_r + mac_s
    want = n * per_byte + 32e-3 * 0.05 + n * per_byte
    assert keyed.latency(Plan.server_only(g), 1e6) == pytest.approx(want)
    assert keyed.latencies(Plan.server_only(g), [1e6])[0] == pytest.approx(want)
    assert keyed.latency(Plan.device_only(g), 1e6) == pytest.approx(32e-3)  # nothing crosses: nothing to MAC
    plain = CostModel(g, robot, server)
    assert plain.latency(Plan.server_only(g), 1e6) == pytest.approx(2 * n / 1e6 + 32e-3 * 0.05)


@pytest.mark.parametrize("seed", range(12))
def test_transfers_equal_the_engines(seed):
    g, _ = conv_chain(4, h=12)
    plan = Plan.random(g, seed)
    cm = CostModel(g, uniform_profile(g, 1e-3), uniform_profile(g, 1e-4))
    assert cm.transfers(plan.robot, plan.server) == plan.transfers()


@pytest.mark.parametrize("seed", range(8))
def test_vector_replay_equals_scalar(seed):
    g, _ = conv_chain(3, h=10)
    plan = Plan.random(g, seed)
    cm = CostModel(g, uniform_profile(g, 2e-3, fixed_s=1e-4, overhead_s=1e-4), uniform_profile(g, 1e-4))
    bws = [1e3, 3e4, 1e6]
    cp = cm.compile(plan)
    vec = cm.latencies(cp, bws)
    assert np.allclose(vec, [cm.latency(cp, b) for b in bws])
    preds = cm.simulate(cp, bws)
    for p in preds:
        assert p.latency_s >= p.robot_compute_s - 1e-12
        assert p.energy_j > 0
    # latency never grows with bandwidth
    assert all(a >= b - 1e-12 for a, b in zip(vec, vec[1:]))


def test_interval_arithmetic():
    s, e = np.array([0.0, 1.0, 5.0]), np.array([2.0, 3.0, 6.0])
    assert union_length(s, e) == pytest.approx(4.0)
    assert outside_length(np.array([2.5]), np.array([7.0]), s, e) == pytest.approx(3.0)  # [3, 5) and [6, 7)
    j, tx = robot_energy(PowerModel(10, 2, 1), 8.0, [(0, 2)], [(1, 4)])
    assert tx == pytest.approx(2.0)
    assert j == pytest.approx(10 * 2 + 2 * 2 + 1 * 4)


def test_executor_step_overhead_is_charged_per_step_and_side():
    g = three_node_graph()
    robot = uniform_profile(g, 1e-3, overhead_s=0.0)
    robot.step_overhead_s = 1e-4
    server = robot.scaled(0.1, "server")  # 1e-5 s per step on the server
    cm = CostModel(g, robot, server)
    assert server.step_overhead_s == pytest.approx(1e-5)
    assert robot.scaled(0.1, "x", scale_overhead=False).step_overhead_s == 1e-4
    # device-only: 3 robot steps (input, conv, relu)
    assert cm.latency(Plan.device_only(g), 1e6) == pytest.approx(32e-3 + 3e-4)
    n = g.nodes[0].nbytes
    # server-only: the robot's input step, the upload, two server steps, the download
    assert cm.latency(Plan.server_only(g), 1e6) == pytest.approx(1e-4 + n / 1e6 + 32e-4 + 2e-5 + n / 1e6)


# ---------------------------------------------------------------- bands (streaming)
def test_banded_replay_of_an_unbanded_plan_equals_the_node_replay():
    from intradp_ros.core.cost_model import BandedSimulation

    g, _ = conv_chain(3, h=32)
    prof = uniform_profile(g, 1e-3, fixed_s=1e-4, overhead_s=2e-4)
    cm = CostModel(g, prof, prof.scaled(0.5, "server"))
    for plan in (Plan.server_only(g), Plan.row_split(g, 0.5), Plan.halo_split(g, 0.5)):
        for bw in (1e5, 1e6):
            assert BandedSimulation(cm, plan).latency(bw) == pytest.approx(cm.latency(plan, bw)), plan.name


def test_server_only_in_bands_overlaps_upload_and_server_compute():
    """Upload = server compute = download: k bands approach max(upload, compute, download) from their sum (the
    output goes down band by band too), never below it."""
    g, _ = conv_chain(3, h=64)
    up_bytes = Plan.server_only(g).bytes(UP)
    prof = uniform_profile(g, 1e-4, overhead_s=0.0)
    cm = CostModel(g, prof, prof)
    server_s = sum(prof.time(n.index, n.extent) for n in g.nodes if not n.is_input)
    bw = up_bytes / server_s  # upload takes as long as the server's compute
    one = cm.latency(Plan.server_only(g), bw)
    down = Plan.server_only(g).bytes(DOWN) / bw
    assert one == pytest.approx(2 * server_s + down)
    lat = {k: cm.latency(Plan.server_only(g, bands=k), bw) for k in (2, 4, 8)}
    floor = max(server_s, down)
    assert all(floor <= v < one for v in lat.values()), lat
    assert lat[8] < lat[4] < lat[2], "more bands overlap more while they cost nothing"
    assert cm.predict(Plan.server_only(g, bands=4), bw).latency_s == pytest.approx(lat[4])


# ------------------------------------------------------------------------------------------------ codecs
def _with_codecs(prof, ratio=0.5, enc_ms=1.0, dec_ms=1.0, side="robot"):
    """`prof` with float32 raw + zstd_shuffle codec profiles (ratio, encode/decode ms per MB)."""
    from intradp_ros.core.codecs.profile import CodecProfile
    from intradp_ros.core.tile import CODEC_RAW, CODEC_ZSTD_SHUFFLE

    return prof.with_codecs(
        [
            CodecProfile(CODEC_RAW, "raw", side, "float32", 1.0, 0.0, 0.0, 1, "float32"),
            CodecProfile(
                CODEC_ZSTD_SHUFFLE, "zstd_shuffle", side, "float32", ratio, enc_ms / 1e3, dec_ms / 1e3, 1, "float32"
            ),
        ]
    )


def test_codecs_cut_link_time_and_charge_coding():
    from intradp_ros.core.tile import CODEC_ZSTD_SHUFFLE

    g = three_node_graph()
    bpr = 2 * 16 * 4
    robot = _with_codecs(uniform_profile(g, [0.0, 1e-3, 0.5e-3]), enc_ms=1000.0, dec_ms=500.0)
    server = _with_codecs(uniform_profile(g, [0.0, 1e-4, 0.5e-4]), enc_ms=100.0, dec_ms=200.0, side="server")
    plan = Plan.server_only(g)
    raw_cm = CostModel(g, robot, server, codecs=False)
    cm = CostModel(g, robot, server)
    assert cm.chooses_codecs and not raw_cm.chooses_codecs
    bw = 1e4  # slow: 1 KB of input takes 0.2 s raw
    chosen = cm.with_codecs(plan, bw)
    assert chosen.codecs == {(0, UP): CODEC_ZSTD_SHUFFLE, (2, DOWN): CODEC_ZSTD_SHUFFLE}
    nbytes = 16 * bpr
    up = nbytes * 0.5 / bw + nbytes * (1000.0 + 200.0) / 1e9  # payload + robot encode + server decode
    server_s = 16 * 1e-4 + 16 * 0.5e-4
    down = nbytes * 0.5 / bw + nbytes * (100.0 + 500.0) / 1e9
    assert cm.latency(chosen, bw) == pytest.approx(up + server_s + down)
    assert cm.latency(plan, bw) == pytest.approx(raw_cm.latency(plan, bw)), "a plan without codecs is predicted raw"
    assert raw_cm.latency(chosen, bw) == pytest.approx(raw_cm.latency(plan, bw)), "no profiles: codecs cost nothing"
    pred = cm.predict(chosen, bw)
    assert pred.bytes_up == nbytes // 2 and pred.bytes_down == nbytes // 2
    # the vectorised replay and the model's own choice at each bandwidth agree with the scalar one
    auto = cm.compile_ranges(plan.robot, plan.server)
    bws = [1e3, 1e4, 1e6, 1e9]
    for bw_i, lat in zip(bws, cm.latencies(auto, bws)):
        assert lat == pytest.approx(cm.latency(cm.with_codecs(plan, bw_i), bw_i))
        assert lat == pytest.approx(cm.latency(auto, bw_i))
    assert cm.codec_choice(plan, 1e9) == {}, "on a fast link no codec pays"
    banded = chosen.with_bands(2)
    assert cm.latency(banded, bw) < raw_cm.latency(plan.with_bands(2), bw)
    assert cm.simulate(banded, [bw])[0].bytes_up == nbytes // 2


# ------------------------------------------------------------------------------------- per-tile wire work
def _wired(prof, send_s=0.0, send_per_byte=0.0, recv_s=0.0, recv_per_byte=0.0):
    import dataclasses

    return dataclasses.replace(
        prof,
        tile_send_s=send_s,
        tile_send_s_per_byte=send_per_byte,
        tile_recv_s=recv_s,
        tile_recv_s_per_byte=recv_per_byte,
    )


def test_every_tile_pays_its_wire_work_on_the_sender_and_the_receiver():
    g = three_node_graph()
    robot = uniform_profile(g, 1e-3, overhead_s=0.0)
    server = robot.scaled(0.05, "server")
    n = g.nodes[0].nbytes
    plain = CostModel(g, robot, server).latency(Plan.server_only(g), 1e6)
    assert plain == pytest.approx(2 * n / 1e6 + 32e-3 * 0.05)
    # robot: 1 ms per tile sent + 1 us per byte; 0.5 ms per tile received; server: 2 ms sent, 0.25 ms received
    cm = CostModel(g, _wired(robot, 1e-3, 1e-6, 5e-4), _wired(server, 2e-3, 0.0, 2.5e-4))
    up = 1e-3 + n * 1e-6 + 2.5e-4  # robot serialises, the server decodes
    down = 2e-3 + 5e-4
    want = plain + up + down
    for plan in (Plan.server_only(g), cm.compile(Plan.server_only(g))):
        assert cm.latency(plan, 1e6) == pytest.approx(want)
        assert cm.latencies(plan, [1e6])[0] == pytest.approx(want)
        assert cm.predict(plan, 1e6).latency_s == pytest.approx(want)
    # a banded plan in one band per node replays the same
    from intradp_ros.core.cost_model import BandedSimulation

    assert BandedSimulation(cm, Plan.server_only(g)).latency(1e6) == pytest.approx(want)
    assert cm.latency(Plan.device_only(g), 1e6) == pytest.approx(32e-3), "nothing crosses, nothing to serialise"


def test_many_band_tiles_each_pay_the_fixed_wire_cost_so_bands_stop_paying():
    g, _ = conv_chain(3, h=64)
    prof = uniform_profile(g, 1e-4, overhead_s=0.0)
    server_s = sum(prof.time(n.index, n.extent) for n in g.nodes if not n.is_input)
    bw = Plan.server_only(g).bytes(UP) / server_s
    free = CostModel(g, prof, prof)
    per_tile = server_s / 4  # each tile costs a quarter of the server's compute to send, on either side
    costly = CostModel(g, _wired(prof, send_s=per_tile), _wired(prof, send_s=per_tile))
    k8 = Plan.server_only(g, bands=8)
    assert len(k8.transfers()) == 16
    # the 8 upload tiles queue in the robot's sender: 8 x per_tile before the last band can start
    assert costly.latency(k8, bw) >= free.latency(k8, bw) + 7 * per_tile
    assert costly.latency(k8, bw) > costly.latency(Plan.server_only(g), bw), "8 bands no longer pay"
    assert free.latency(k8, bw) < free.latency(Plan.server_only(g), bw)


def test_the_receiver_decodes_one_tile_at_a_time():
    """Tiles that reach the server faster than it can decode them queue at its receiving thread."""
    g, _ = conv_chain(1, h=64)
    prof = uniform_profile(g, 1e-6, overhead_s=0.0)
    dec = 0.01  # 10 ms per received tile on the server, the link is nearly free
    cm = CostModel(g, prof, _wired(prof, recv_s=dec))
    plan = Plan.server_only(g, bands=8)
    ups = [t for t in plan.transfers() if t.direction == UP]
    assert len(ups) == 8
    lat = cm.latency(plan, 1e12)
    assert lat >= 8 * dec, "eight decodes in a row, not eight at once"
    assert lat < 8 * dec + 0.005
    compute = sum(prof.time(n.index, n.extent) for n in g.nodes)
    assert cm.latency(Plan.server_only(g), 1e12) == pytest.approx(dec + compute, abs=1e-6)


def test_each_band_of_a_banded_node_pays_the_profiled_band_cost():
    import dataclasses

    g, _ = conv_chain(2, h=32)
    prof = uniform_profile(g, 1e-4, overhead_s=0.0)
    band_s = 1e-3
    costly = dataclasses.replace(prof, band_step_s=band_s)
    free_cm, cm = CostModel(g, prof, prof), CostModel(g, costly, costly)
    one = Plan.device_only(g)
    assert cm.latency(one, 1e6) == pytest.approx(free_cm.latency(one, 1e6)), "one band: no band cost"
    k4 = one.with_bands(4, aligned=False)
    banded = [(v, len(k4.bands("robot", v))) for v in range(1, len(g.nodes)) if len(k4.bands("robot", v)) > 1]
    steps = sum(n for _, n in banded)
    assert steps >= 8
    assert cm.latency(k4, 1e6) == pytest.approx(free_cm.latency(k4, 1e6) + steps * band_s)
    assert costly.scaled(2.0, "x", scale_overhead=False).band_step_s == pytest.approx(2 * band_s)


def test_a_banded_nodes_operator_time_is_scaled_by_the_measured_factor_of_its_band_count():
    """Band factors (measured per band count): a k-band step's operator time x f_k (the step overhead not), one
    band untouched, counts between measured ones interpolated in log2(k), and the factor made from a measured
    ratio (`band_factor_from_runs`) reproduces that ratio in the device-only replay."""
    import dataclasses

    from intradp_ros.core.profiler import band_factor_from_runs

    g, _ = conv_chain(2, h=32)
    prof = uniform_profile(g, 1e-4, overhead_s=0.0)
    prof = dataclasses.replace(prof, step_overhead_s=2e-5)
    one, k4 = Plan.device_only(g), Plan.device_only(g).with_bands(4)
    free = CostModel(g, prof, prof)
    costly_prof = dataclasses.replace(prof, band_factors={2: 1.0, 4: 1.5, 8: 3.0})
    cm = CostModel(g, costly_prof, costly_prof)
    assert cm.latency(one, 1e6) == pytest.approx(free.latency(one, 1e6)), "one band: no factor"
    banded_op = sum(
        prof.time(v, b - a)
        for v in range(len(g.nodes))
        if len(k4.bands("robot", v)) > 1
        for a, b in k4.bands("robot", v)
    )
    assert banded_op > 0
    assert cm.latency(k4, 1e6) == pytest.approx(free.latency(k4, 1e6) + 0.5 * banded_op)
    assert (
        costly_prof.band_factor(4) == 1.5 and costly_prof.band_factor(32) == 3.0 and costly_prof.band_factor(1) == 1.0
    )
    assert costly_prof.band_factor(2) == 1.0 and costly_prof.band_factor(6) == pytest.approx(
        1.5 + 1.5 * (2.585 - 2) / 1, rel=1e-3
    )
    assert costly_prof.scaled(3.0, "x").band_factors == costly_prof.band_factors, "ratios: unchanged by scaling"
    f = band_factor_from_runs(prof, k4, 1.7)
    fitted = dataclasses.replace(prof, band_factors={4: f})
    fcm = CostModel(g, fitted, fitted, codecs=False)
    assert fcm.latency(k4, 1e12) / fcm.latency(one, 1e12) == pytest.approx(1.7, rel=1e-6)
