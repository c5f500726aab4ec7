"""Prediction columns of the system benchmark (eval/predict.py): the plan that ran is found by id, the floor
and the non-model charge follow the documented formulas."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from intradp_ros.eval.predict import PredictionContext, annotate, codec_seconds_per_byte, nonmodel_charge_s


class FakeBook:
    def __init__(self) -> None:
        self.plans = {7: SimpleNamespace(name="split", latency=0.5), 1: SimpleNamespace(name="server", latency=0.9)}
        self.asked = []

    def by_id(self) -> dict:
        return dict(self.plans)

    def plan_for(self, mode: str, mbps: float):
        self.asked.append((mode, mbps))
        return self.plans[1]


class FakeCM:
    robot = SimpleNamespace(device_only_s=lambda: 2.0)
    server = SimpleNamespace(device_only_s=lambda: 0.1)

    def latency(self, plan, rate_Bps: float) -> float:
        return plan.latency + 1e6 / rate_Bps


def test_annotate_uses_the_plan_that_ran() -> None:
    book = FakeBook()
    ctx = PredictionContext(
        FakeCM(), book, upload_bytes=1_000_000, result_bytes=0, k=10.0, codec_per_byte_s=1e-9, notes=[]
    )
    recs = [
        {"system": "intradp", "plan_id": 7, "link_mbit": 8.0, "bytes_up": 1000, "bytes_down": 0, "error": ""},
        {"system": "dsccs", "plan_id": 99, "link_mbit": 8.0, "bytes_up": 0, "bytes_down": 0, "error": ""},
        {"system": "intradp", "plan_id": 7, "link_mbit": 8.0, "bytes_up": 0, "bytes_down": 0, "error": "lost"},
    ]
    assert annotate(recs, ctx) == 1  # plan 99 is not in the book
    a, b, c = recs
    assert a["predicted_s"] == pytest.approx(0.5 + 1.0)  # 1 MB/s link
    assert b["predicted_s"] == pytest.approx(0.9 + 1.0) and book.asked == [("dsccs", 1.0)]
    # floor: min(2.0 device-only, 1 MB / 1 MB/s + 0.1 s) = 1.1 s
    assert a["floor_s"] == pytest.approx(1.1) and a["k"] == 10.0
    assert a["nonmodel_cpu_s"] == pytest.approx(nonmodel_charge_s(1000, 0, 1e-9, 10.0)) and b["nonmodel_cpu_s"] == 0.0
    assert "predicted_s" not in c and c["k"] == 10.0


def test_nonmodel_charge_is_robot_x3_plus_server_x1_times_k() -> None:
    # 1e6 bytes at 2 ns/byte (1 ns encode + 1 ns decode): robot 3 x 1 ms + server 1 x 1 ms = 4 ms, x k = 5
    assert nonmodel_charge_s(600_000, 400_000, 2e-9, 5.0) == pytest.approx(0.020)
    assert nonmodel_charge_s(0, 0, 2e-9, 5.0) == 0.0


def test_codec_cost_is_measured() -> None:
    v = codec_seconds_per_byte(nbytes=64 * 1024, repeats=3)
    assert v > 0 and math.isfinite(v)


def test_the_prediction_uses_the_clients_one_thread_profile_calibrated_as_the_client_did(tmp_path, monkeypatch):
    """The client profiles with one torch thread and calibrates to the shared frames before its handshake; without
    its handshake pair the prediction must find that profile (whatever threads named it) and calibrate it the same
    way, or it predicts for a robot the plan book was not made for."""
    import torch

    from intradp_ros.core import capture
    from intradp_ros.core.calibration_file import write_frame_times
    from intradp_ros.core.profiler import cached_profile
    from intradp_ros.eval.predict import build_context
    from intradp_ros.models.registry import build

    monkeypatch.setenv("INTRADP_CACHE", str(tmp_path / "cache"))
    model, options = "torchvision:resnet18", {"input_size": (64, 64)}
    torch.manual_seed(0)
    net = build(model, **options)
    x = net.input_spec.example()
    g = capture(net, x)
    client_dir = tmp_path / "robot_cpu0.1"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cached_profile(g, [x], client_dir, "cpu", repeats=1)
    finally:
        torch.set_num_threads(before)
    write_frame_times(tmp_path / "calibration.json", g.fingerprint, [4.0, 5.0, 6.0])
    args = (model, options, client_dir, [0.5, 5.0], 1.0, 0.5, 1.0, 10.0, lambda s: None)
    ctx = build_context(*args, calibration_file=tmp_path / "calibration.json")
    assert ctx.cm.robot.device_only_s() == pytest.approx(5.0, rel=1e-6), "the median of the client's frames"
    assert any("client's own" in n for n in ctx.notes) and any("calibrated as the client did" in n for n in ctx.notes)
    other = build_context(*args)  # no calibration frames: the client's own profile as it was measured
    assert any("client's own" in n for n in other.notes) and not any("calibrated as" in n for n in other.notes)
    assert other.cm.robot.device_only_s() != pytest.approx(5.0, rel=1e-6)


def test_client_profiles_prefer_the_last_handshake_then_the_clients_own(tmp_path) -> None:
    """The prediction finds the client's profiles whatever threads and quota named its files (the evaluation's own
    process shares neither): the accepted handshake's pair first, else its newest per-operator profile."""
    import dataclasses

    from sched_toys import conv_chain, uniform_profile

    from intradp_ros.core.profiler import handshake_profiles_path, write_handshake_profiles
    from intradp_ros.eval.predict import client_profiles

    g, _x = conv_chain(2, h=8)
    prof = uniform_profile(g, 1e-3)
    notes: list[str] = []
    assert client_profiles(g, tmp_path, notes) == (None, None)
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / f"{g.fingerprint}_cpu_1t_q0p1.json").write_text(prof.to_json())
    (folder / f"{g.fingerprint}_cpu_1t_q0p1.calibration.json").write_text("{}")
    robot, server = client_profiles(g, tmp_path, notes)
    assert robot is not None and robot.to_json() == prof.to_json() and server is None
    signed = dataclasses.replace(prof, mac_s_per_byte=1e-9)
    write_handshake_profiles(handshake_profiles_path(tmp_path, g, "robot1"), signed.to_json(), prof.to_json())
    robot, server = client_profiles(g, tmp_path, notes)
    assert server is not None and robot.mac_s_per_byte == 0.0, "an unauthenticated server charged no MACs"
    assert "handshake" in notes[-1]


@pytest.mark.parametrize("variant", [None, "raw", "lossless"])
def test_the_prediction_looks_the_book_up_with_the_keys_the_server_solved_it_under(tmp_path, monkeypatch, variant):
    """The prediction must find the very book the server solved, not solve another: its lookup uses the keys the
    server computes from its own settings (grid, deadline, solver, codec policy, cache folder, tolerance)."""
    pytest.importorskip("rospy")
    from sched_toys import conv_chain, uniform_profile

    import intradp_ros.core.plan_book as plan_book
    import intradp_ros.ros.server_node as server_node
    from intradp_ros.eval.evaluate import EvalConfig, Evaluation
    from intradp_ros.eval.predict import server_plan_book

    monkeypatch.setenv("INTRADP_CACHE", str(tmp_path / "cache"))
    ev = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=40.0, solver_seconds=0.2))
    argv = ev.server_argv(variant)
    g, _x = conv_chain(2, h=8)
    robot, server = uniform_profile(g, 4e-3), uniform_profile(g, 1e-4)
    looked_up: list = []

    def record(graph, keys, tolerance=0.0):
        looked_up.append((keys, tolerance))
        return "the server's book"

    node = server_node.IntraDPServer(server_node.settings_from_argv(argv))
    monkeypatch.setattr(server_node, "lookup_plan_book", record)
    assert node._plan_book("robot1", SimpleNamespace(graph=g), robot, server) == ("the server's book", "from cache")
    monkeypatch.setattr(plan_book, "lookup_plan_book", record)
    book, how = server_plan_book(argv, g, robot, server)
    assert book == "the server's book" and "from the server's cache" in how
    (server_keys, server_tol), (predict_keys, predict_tol) = looked_up
    assert predict_keys == server_keys and predict_tol == server_tol > 0
    assert str(tmp_path / "cache") in str(predict_keys.path)


def test_the_prediction_reads_the_book_the_server_solved_from_its_cache(tmp_path, monkeypatch):
    pytest.importorskip("rospy")
    from sched_toys import conv_chain, uniform_profile

    from intradp_ros.core.plan_book import build_plan_book, parse_grid
    from intradp_ros.core.power import PowerModel
    from intradp_ros.eval.evaluate import EvalConfig, Evaluation
    from intradp_ros.eval.predict import server_plan_book
    from intradp_ros.ros.server_node import server_book_keys, settings_from_argv, solver_config

    monkeypatch.setenv("INTRADP_CACHE", str(tmp_path / "cache"))
    argv = Evaluation(
        EvalConfig(model="kapao_l6", input_size="512,640", dilation=40.0, solver_seconds=0.2)
    ).server_argv()
    s = settings_from_argv(argv)
    g, _x = conv_chain(2, h=8)
    robot, server = uniform_profile(g, 4e-3), uniform_profile(g, 1e-4)
    # as the server's solve worker does (models/plan_book_worker): its settings' grid, solver, deadline, policy
    solved, hit = build_plan_book(
        g, robot, server, parse_grid(s.grid), PowerModel(), solver_config(s), float(s.deadline),
        server_book_keys(s, g, robot, server).folder, codecs=str(s.codecs),
    )  # fmt: skip
    assert not hit
    book, how = server_plan_book(argv, g, robot, server)
    assert "exact profiles" in how and book.to_json() == solved.to_json()


def test_server_only_with_the_camera_file_is_priced_as_the_file_it_sends() -> None:
    """server_only_jpeg runs the book's raw server_only plan but uploads the camera JPEG: its prediction must price
    the JPEG bytes (CODEC_CAMERA on the input), the raw server-only system's the pixels."""
    import torch

    from intradp_ros.core import capture
    from intradp_ros.core.codec_choice import camera_profile
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.profiler import profile_graph
    from intradp_ros.core.tile import CODEC_CAMERA
    from intradp_ros.eval.predict import as_sent

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.float() / 255).mean((2, 3))

    torch.manual_seed(0)
    x = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    g = capture(Net().eval(), x)
    robot = profile_graph(g, [x], repeats=1, sizes=2, step_overhead=False)
    server = robot.scaled(0.25, "server")
    plan = Plan.server_only(g)
    rate = 1e5  # 100 kB/s: the upload dominates
    plain = CostModel(g, robot, server)
    assert as_sent(plan, "server_only_jpeg", plain) is plan, "no camera entry: nothing to price"
    cm = CostModel(
        g,
        robot.with_codecs([*robot.codecs, camera_profile("robot", 0.1)]),
        server.with_codecs([*server.codecs, camera_profile("server", 1.0, decode_s_per_mb=0.0)]),
    )
    assert as_sent(plan, "server_only", cm) is plan, "raw server-only sends the pixels"
    jpeg = as_sent(plan, "server_only_jpeg", cm)
    assert CODEC_CAMERA in jpeg.codecs.values()
    raw_s, jpeg_s = cm.latency(plan, rate), cm.latency(jpeg, rate)
    pixels = 3 * 64 * 64
    assert raw_s - jpeg_s == pytest.approx(0.9 * pixels / rate, rel=0.05), "the upload shrinks to the file's 0.1"
    recs = [{"system": s, "plan_id": plan.plan_id, "link_mbit": rate * 8 / 1e6, "error": ""} for s in CAMERA_SYSTEMS]

    class Book:
        def by_id(self) -> dict:
            return {plan.plan_id: plan}

    annotate(recs, PredictionContext(cm, Book(), pixels, 0, 1.0, 1e-9, []))
    assert recs[0]["predicted_s"] == pytest.approx(raw_s) and recs[1]["predicted_s"] == pytest.approx(jpeg_s)


CAMERA_SYSTEMS = ("server_only", "server_only_jpeg")


def test_a_runs_handshake_copy_is_the_file_its_own_client_wrote(tmp_path) -> None:
    """Only a handshake written during the run is copied (an older one belongs to another system's client), and a
    given copy is preferred to the newest file in the cache."""
    import os

    from sched_toys import conv_chain, uniform_profile

    from intradp_ros.core.profiler import handshake_profiles_path, write_handshake_profiles
    from intradp_ros.eval.predict import client_profiles, snapshot_handshake

    g, _x = conv_chain(2, h=8)
    slow, fast = uniform_profile(g, 2e-3), uniform_profile(g, 1e-3)
    assert snapshot_handshake(tmp_path, 0.0, tmp_path / "copy.json") is None, "no cache folder, no copy"
    path = Path(handshake_profiles_path(tmp_path, g, "robot1"))
    write_handshake_profiles(path, slow.to_json(), fast.to_json())
    os.utime(path, (1000.0, 1000.0))
    assert snapshot_handshake(tmp_path, 2000.0, tmp_path / "copy.json") is None, "written before the run started"
    copy = snapshot_handshake(tmp_path, 500.0, tmp_path / "runs" / "copy.json")
    assert copy is not None and copy.read_bytes() == path.read_bytes()
    write_handshake_profiles(path, fast.to_json(), fast.to_json())  # the next run's client overwrites the cache's
    notes: list[str] = []
    robot, _server = client_profiles(g, tmp_path, notes, copy)
    assert robot.device_only_s() == pytest.approx(slow.device_only_s()) and "run's own" in notes[-1]
    robot, _server = client_profiles(g, tmp_path, notes)
    assert robot.device_only_s() == pytest.approx(fast.device_only_s()) and "last accepted" in notes[-1]
    robot, _server = client_profiles(g, tmp_path, notes, tmp_path / "missing.json")
    assert robot.device_only_s() == pytest.approx(fast.device_only_s()), "an unreadable copy: the cache's newest"


def test_the_codecs_a_plan_names_are_charged_at_this_cpus_cost_x3_on_the_robot() -> None:
    """The testbed's robot codes inside a dilated quota (faster than this CPU undilated), so the non-model column
    must charge each coded transfer's encode and decode at this host's profiled cost, x3 on the robot's side."""
    import torch

    from intradp_ros.core import Plan, capture
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.profiler import profile_graph
    from intradp_ros.core.tile import CODEC_DELTA_ZSTD
    from intradp_ros.core.vocabulary import Direction
    from intradp_ros.eval.predict import codec_charge_s
    from intradp_ros.eval.workloads import ROBOT_CPU_OVER_HOST, SERVER_CPU_OVER_HOST

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1)).eval()

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return model(x.float() / 255)

    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    g = capture(Net(), x)
    host = profile_graph(g, [x], repeats=1, sizes=2, step_overhead=False, wire_cost=False)
    cm = CostModel(g, host, host)
    raw = Plan.server_only(g)
    assert codec_charge_s(cm, raw, 10.0) == 0.0, "raw tensors: no codec to charge"
    assert codec_charge_s(None, raw, 10.0) == 0.0
    node = g.input_indices[0]
    coded = raw.with_codecs({(node, Direction.UP): CODEC_DELTA_ZSTD})
    opt = cm.codec_costs.option(node, Direction.UP, CODEC_DELTA_ZSTD, g.nodes[node].wire_nbytes)
    assert opt is not None
    nbytes = g.nodes[node].wire_nbytes
    want = (opt.encode_s(nbytes) * ROBOT_CPU_OVER_HOST + opt.decode_s(nbytes) * SERVER_CPU_OVER_HOST) * 10.0
    assert codec_charge_s(cm, coded, 10.0) == pytest.approx(want) and want > 0
