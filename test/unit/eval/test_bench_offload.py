"""The ROS-free offload benchmark (eval/bench_offload.py) runs end to end on the CPU at a tiny size, and its two
time-keeping devices (robot slow-down, charged non-model work) charge what they document (fake clock)."""

from __future__ import annotations

import io
import math
import sys
from typing import Any

import pytest

from intradp_ros.eval import bench_offload as bo
from intradp_ros.eval import offload_emulation as emu
from intradp_ros.eval.workloads import Workload


class FakeClock:
    """perf_counter and thread_time advance 1 s per call; sleep is recorded (and advances the wall clock)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0
        self.slept: list[float] = []

    def thread_time(self) -> float:
        self.cpu += 1.0
        return self.cpu

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_slow_rowmap_sleeps_factor_minus_one_times_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(emu, "time", clock)

    class Map:
        other = 7

        def run(self, a: int) -> int:
            return a + 1

    slow = emu.SlowRowmap(Map(), factor=4.0)
    assert slow.run(1) == 2 and slow.other == 7
    assert clock.slept == [3.0]  # the call took 1 s on the fake clock: 3 s more
    assert emu.SlowRowmap(Map(), factor=1.0).run(1) == 2 and clock.slept == [3.0]
    switch = emu.SlowSwitch(4.0)
    switched = emu.SlowRowmap(Map(), factor=4.0, switch=switch)
    switch.on = False  # warm-up frames run at this CPU's speed
    assert switched.run(1) == 2 and clock.slept == [3.0]
    switch.on = True
    assert switched.run(1) == 2 and clock.slept == [3.0, 3.0]
    switch.factor = 2.5  # fitted to the robot's measured frame: every row map of the graph follows
    assert switched.run(1) == 2 and clock.slept == [3.0, 3.0, 1.5]


def test_charged_transport_charges_each_side_its_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(emu, "time", clock)
    import types

    import intradp_ros.core.codec as codec

    sent: list[Any] = []
    monkeypatch.setattr(codec, "encode_tile", lambda t: ("wire", t))
    monkeypatch.setattr(codec, "decode_tile", lambda w: w[1])

    class Inner:
        def send(self, tile: Any) -> None:
            sent.append(tile)

        def recv(self, timeout: float | None = None) -> Any:
            return sent.pop(0) if sent else None

    ct = emu.ChargedTransport(Inner(), sender_factor=3.0, receiver_factor=2.0)  # type: ignore[arg-type]
    tile = types.SimpleNamespace(meta={})
    ct.send(tile)
    # encode 1 CPU s x 3 = 3 s charged to the sender: 1 s of wall time was spent, 2 s waited
    assert sent == [tile] and clock.slept == [2.0] and ct.take() == 3.0 + 2.0 and ct.take() == 0.0
    # decode 1 CPU s x 2 = 2 s, waited by the receiving end when it takes the tile (its thread, not the sender's)
    assert ct.recv() is tile and clock.slept == [2.0, 2.0] and emu.RECV_CHARGE not in tile.meta
    assert ct.recv() is None and clock.slept == [2.0, 2.0]
    ct.charging = False  # warm-up frames: the tile still goes through the codec, nothing charged or waited
    ct.send(tile)
    assert ct.recv() is tile and clock.slept == [2.0, 2.0] and ct.take() == 0.0


@pytest.mark.skipif(sys.platform != "linux", reason="CPU run of the benchmark")
def test_engine_bench_runs_every_system_on_cpu(tmp_path: Any) -> None:
    w = Workload("VGG11 32 (tiny)", "torchvision:vgg11", "vgg19", {"input_size": (32, 32)})
    out = io.StringIO()
    bench = bo.OffloadBench(
        w,
        server_device="cpu",
        traces=["indoor"],
        frames=1,
        warmup=1,
        cache_dir=tmp_path,
        robot_over_gpu=2.0,
        profile_repeats=1,
        solver_seconds=1.0,
        out=out,
        reference_s=0.02,
    )
    setup, records = bench.run()
    # one fast warm-up frame per plan's first use, the emulation back on for the counted frames
    plans = {r["plan_id"] for r in records}
    # (the device-only plan's warm-up is the robot fit's first frame)
    assert "warm-up" in bench.part_s and f"{len(plans) - 1} frames, undilated" == bench.part_notes["warm-up"]
    assert "robot fit" in bench.part_s and bench.slow_switch.factor == setup.robot_factor
    assert bench.slow_switch.on and "profile" in bench.part_s and "time " in bench.parts_text()
    assert setup.k >= 1.0 and setup.robot_factor >= 1.0 and setup.upload_bytes == 3 * 32 * 32
    codec_systems = [bo.system_name(m, "lossless") for m in bo.MODES if m != "device_only"]
    assert sorted(r["system"] for r in records) == sorted(list(bo.MODES) + codec_systems)
    for r in records:
        assert not r["error"], r["error"]
        assert r["latency_s"] > 0 and r["predicted_s"] > 0 and r["floor_s"] > 0 and r["k"] == setup.k
        assert r["floor_s"] <= r["predicted_s"] * 1.0001 or r["plan_name"] not in ("device_only", "server_only")
    by = {r["system"]: r for r in records}
    assert by["device_only"]["bytes_up"] == 0 and by["device_only"]["nonmodel_cpu_s"] == 0.0
    assert by["server_only"]["bytes_up"] >= setup.upload_bytes and by["server_only"]["nonmodel_cpu_s"] > 0
    for m in ("server_only", "dsccs", "spso_ga"):  # the same plan with codecs never sends more bytes
        assert by[m + bo.CODEC_SUFFIX]["predicted_bytes_up"] <= by[m]["predicted_bytes_up"]
    text = bo.report(setup, records)
    assert "Codec goal" in text and "bytes per frame" in text
    assert "meas/pred" in text and "x floor" in text and "non-model CPU" in text and "Goals (as published" in text
    assert "Intra-DP mean latency" in text and not math.isnan(setup.server_frame_s)


def test_runs_without_ros() -> None:
    """The engine benchmark imports and reads its traces with rospy, rosbag and roslib unavailable."""
    import subprocess

    code = (
        "import sys\n"
        "for m in ('rospy', 'rosbag', 'roslib', 'genpy', 'rosgraph'): sys.modules[m] = None\n"
        "import intradp_ros.eval.bench_offload as b\n"
        "assert len(b.trace_rates('indoor', 3, 10.0)) == 3\n"
        "b.build_parser().parse_args(['--quick'])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_system_names_and_variants() -> None:
    assert bo.system_name("intradp", "raw") == "intradp"
    assert bo.system_name("intradp", "lossless") == "intradp" + bo.CODEC_SUFFIX
    w = Workload("VGG11 32 (tiny)", "torchvision:vgg11", "vgg19", {"input_size": (32, 32)})
    with pytest.raises(ValueError, match="variants"):
        bo.OffloadBench(w, server_device="cpu", variants=["lossy"])
    assert bo.build_parser().parse_args(["--codecs", "raw"]).codecs == ["raw"]
    assert bo.OffloadBench(w, server_device="cpu", systems=["intradp", "server_only"]).systems == [
        "server_only",
        "intradp",
    ]
    with pytest.raises(ValueError, match="systems"):
        bo.OffloadBench(w, server_device="cpu", systems=["magic"])


def test_sample_input_is_a_real_frame_of_the_example_shape() -> None:
    import torch

    example = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    x, what = bo.sample_input("kapao", example)
    assert x.shape == example.shape and x.dtype == torch.uint8 and "photograph" in what and int(x.max()) > 0
    odd = torch.zeros(1, 1, 8, 8, 8, dtype=torch.uint8)
    y, why = bo.sample_input("sconet", odd)
    assert y is odd and "random" in why


def test_codec_report_compares_with_raw_server_only() -> None:
    setup = bo.WorkloadSetup(Workload("x", "m", "kapao", {}), "cpu", 0.01, 0.01, 0.1, 1.0, 2.0, 1000, 10)

    def rec(system: str, latency: float) -> dict:
        return {
            "system": system, "trace": "indoor", "error": "", "latency_s": latency, "predicted_s": latency,
            "floor_s": latency / 2, "bytes_up": 1000, "bytes_down": 10, "predicted_bytes_up": 900, "codecs": "raw",
        }  # fmt: skip

    text = bo.codec_report(setup, [rec("server_only", 1.0), rec("intradp+codecs", 0.5)])
    assert "measured 0.500x" in text and "MET" in text
    text = bo.codec_report(setup, [rec("server_only", 1.0), rec("intradp+codecs", 0.8)])
    assert "MISSED by +0.150" in text


def test_predict_only_gives_predictions_per_system_and_variant(tmp_path: Any) -> None:
    w = Workload("VGG11 32 (tiny)", "torchvision:vgg11", "vgg19", {"input_size": (32, 32)})
    bench = bo.OffloadBench(
        w, server_device="cpu", traces=["indoor"], frames=2, profile_repeats=1, solver_seconds=1.0,
        out=io.StringIO(), reference_s=0.02, systems=["server_only", "intradp"], cache_dir=tmp_path,
    )  # fmt: skip
    setup, records = bench.predict()
    assert bench.part_notes["profile"].startswith("measured") and "solved" in bench.part_notes["plan books"]
    again = bo.OffloadBench(
        w, server_device="cpu", traces=["indoor"], frames=2, profile_repeats=1, solver_seconds=1.0,
        out=io.StringIO(), reference_s=0.02, systems=["server_only", "intradp"], cache_dir=tmp_path,
    )  # fmt: skip
    # k from one thread's CPU time of a frame / torch's threads (cached), the profile scaled to that frame
    import json

    import torch

    (cached,) = (tmp_path / "frame_cpu").glob("*.json")
    frame_s = json.loads(cached.read_text())["cpu_s"] / torch.get_num_threads()
    assert setup.cpu_frame_s == pytest.approx(frame_s) and setup.server_frame_s == pytest.approx(frame_s)
    assert setup.k == pytest.approx(max(1.0, frame_s / 0.02))
    again.predict()  # a second run reuses the profile and the plan books
    assert again.part_notes["profile"] == "cached" and again.part_notes["plan books"].endswith("cached")
    assert {r["system"] for r in records} == {"server_only", "intradp", "server_only+codecs", "intradp+codecs"}
    assert len(records) == 2 * 4 and all(r["predicted_only"] and r["latency_s"] == r["predicted_s"] for r in records)
    by = {r["system"]: r for r in records}
    assert by["intradp+codecs"]["predicted_s"] <= by["server_only"]["predicted_s"] * 1.0001
    assert "predictions only" in bo.codec_report(setup, records, predicted_only=True)


def test_the_robot_slow_down_is_fitted_to_its_measured_device_only_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow-down is set from the robot half's own device-only frame (timed at this CPU's speed), not from the
    CPU frame k comes from: the device-only frame then takes its target, 20 x the reference GPU frame x k."""
    from types import SimpleNamespace

    from sched_toys import conv_chain

    from intradp_ros.core.plan import Plan

    clock = FakeClock()
    monkeypatch.setattr(bo, "time", clock)
    g, _x = conv_chain(2, h=8)
    plan = Plan.device_only(g)
    w = Workload("toy", "torchvision:vgg11", "vgg19", {"input_size": (32, 32)})
    bench = bo.OffloadBench(w, server_device="cpu", robot_over_gpu=20.0, out=io.StringIO())
    bench.slow_switch = emu.SlowSwitch(20.0)
    monkeypatch.setattr(bench, "plan_for", lambda *a: plan)
    warm: list[Any] = []
    monkeypatch.setattr(bench, "_warm_frame", lambda *a: (warm.append(a[4]), clock.sleep(3.0)))
    server = SimpleNamespace(plans={}, add_plan=lambda p: server.plans.__setitem__(p.plan_id, p))
    setup = SimpleNamespace(reference_s=0.05, k=10.0, robot_factor=20.0, notes=[])
    fitted = bench._fit_robot(None, server, (None, None), None, {}, None, g, setup)  # type: ignore[arg-type]
    # each timed frame: 1 s of perf_counter ticks + 3 s slept = 4 s; target 20 x 0.05 s x 10 = 10 s
    assert len(warm) == 2 and plan.plan_id in server.plans and list(fitted) == [plan.plan_id]
    assert bench.slow_switch.factor == pytest.approx(2.5) and setup.robot_factor == pytest.approx(2.5)
    assert "x2.50" in setup.notes[-1] and "10.0 s" in setup.notes[-1]
    setup.k = 1.0  # a robot half already slower than its target is not sped up
    bench._fit_robot(None, server, (None, None), None, {}, None, g, setup)  # type: ignore[arg-type]
    assert bench.slow_switch.factor == 1.0
