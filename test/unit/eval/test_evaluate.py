"""Evaluation set-up logic: time dilation of traces and buckets, the link schedule, run order, node flags."""

import math
from pathlib import Path
from typing import Any

import pytest

from intradp_ros.eval.evaluate import (
    EvalConfig,
    dilate_trace,
    dilated_grid,
    flags,
    link_series,
    model_setup,
    rate_at,
    run_order,
    trace_path,
)


def test_dilation_stretches_time_and_divides_rates():
    assert dilate_trace([(0.0, 90.0), (0.1, 45.0)], 20.0) == [(0.0, 4.5), (2.0, 2.25)]
    edges = [float(v) for v in dilated_grid(20.0, 16).split(",")]
    assert len(edges) == 16 and edges == sorted(edges)
    assert edges[0] == pytest.approx(0.5 / 20) and edges[-1] == pytest.approx(50.0 / 20)


def test_link_series_loops_the_trace_and_rate_at_steps():
    samples = [(0.0, 5.0), (1.0, 2.0)]  # one pass lasts 2 s (last t + one period)
    series = link_series(samples, 5.0)
    assert series == [(0.0, 5.0), (1.0, 2.0), (2.0, 5.0), (3.0, 2.0), (4.0, 5.0), (5.0, 2.0)]
    assert rate_at(series, 0.5) == 5.0 and rate_at(series, 3.2) == 2.0
    assert math.isnan(rate_at(series, -1.0))


def test_device_only_runs_last_and_flags_are_dashed():
    assert run_order(["device_only", "server_only", "intradp"]) == ["server_only", "device_only", "intradp"]
    assert run_order(["intradp", "dsccs", "device_only"]) == ["dsccs", "device_only", "intradp"]
    assert flags({"input_size": "256,320", "mode": "dsccs"}) == ["--input-size", "256,320", "--mode", "dsccs"]


def test_model_setup_and_config_validation():
    assert model_setup("kapao_l6", input_size="256,320").settings == {"input_size": "256,320"}
    assert model_setup("sconet", grid_xzy="128,32,128").client == "agrnav_client"
    with pytest.raises(ValueError, match="kapao"):
        model_setup("resnet18")
    assert trace_path("indoor").name == "indoor.txt"
    for bad in (
        dict(systems=["magic"]),
        dict(frames=0),
        dict(dilation=0.0),
        dict(robot_cpu=2.0),
        dict(traces=["nowhere"]),
    ):
        with pytest.raises(ValueError):
            EvalConfig(**bad).validate()
    EvalConfig().validate()


def test_workloads_clients_dilation_and_camera_rate():
    from intradp_ros.eval.evaluate import Evaluation, auto_dilation, build_options, workload_family

    tv = model_setup("torchvision:vgg19", input_size="224,224")
    assert tv.client == "torchvision_client" and tv.bag_key == "camera"
    assert build_options(tv) == {"input_size": (224, 224)}
    assert build_options(model_setup("sconet", grid_xzy="256,32,256")) == {
        "grid_xzy": (256, 32, 256),
        "head": "completion",
    }
    assert build_options(model_setup("kapao_l6", input_size="512,640"))["head"] == "candidates"
    assert "head" not in build_options(model_setup("kapao_l6", input_size="512,640"), "detections")
    assert [workload_family(m) for m in ("kapao_l6", "torchvision:vgg19", "sconet_ds")] == ["kapao", "vgg19", "sconet"]
    with pytest.raises(ValueError, match="--dilation"):
        workload_family("torchvision:resnet18")
    # KAPAO-L 1280x960 at 1.35 s on the CPU server against 30 ms on the GPU: k = 45 (the figure)
    k, why = auto_dilation("kapao_l6", {"input_size": (960, 1280)}, 1.35)
    assert k == pytest.approx(45.0) and "30.00 ms" in why
    k, _ = auto_dilation("torchvision:vgg19", {"input_size": (224, 224)}, 0.3)
    assert k == pytest.approx(150.0)
    with pytest.raises(ValueError):
        EvalConfig(rate_hz=0.0).validate()
    # the camera rate is dilated like everything else: 10 Hz at k = 20 -> the driver publishes at 0.5 Hz
    ev = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=20.0, rate_hz=10.0))
    argv = ev.driver_argv("x.bag", Path("r.bag"), "intradp")
    assert argv[argv.index("--pacing") + 1] == "rate" and argv[argv.index("--rate") + 1] == "0.5"
    lock = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=20.0)).driver_argv(
        "x", Path("r"), "i"
    )
    assert lock[lock.index("--pacing") + 1] == "lockstep" and "--rate" not in lock


def test_unavailable_cpu_throttle_runs_unthrottled_and_says_so():
    import io

    from intradp_ros.eval.evaluate import Evaluation
    from intradp_ros.eval.testbed import TestbedError

    class NoCgroup:  # Testbed.try_slow_robot where neither cgroup layout has a cpu controller
        def try_slow_robot(self, fraction):
            return None, "robot NOT slowed down, running unthrottled: no cgroup cpu controller"

    class Broken:  # a throttle that fails some other way
        def try_slow_robot(self, fraction):
            raise TestbedError("cgroup.procs not writable")

    class Throttled:
        def try_slow_robot(self, fraction):
            return 19.5, "robot limited to 0.1 CPU (cgroup v2): measured slow-down x19.50"

    out = io.StringIO()
    ev = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=20.0), out=out)
    assert ev._slow_robot(NoCgroup()) is None
    assert "UNTHROTTLED" in out.getvalue() and any("unthrottled" in p for p in ev.problems)
    assert ev._slow_robot(Broken()) is None and "cgroup.procs not writable" in out.getvalue()
    assert ev._slow_robot(Throttled()) == 19.5 and "x19.5" in out.getvalue()


def test_codec_variants_set_the_server_policy():
    from intradp_ros.eval.evaluate import CODEC_VARIANTS, Evaluation, build_parser

    with pytest.raises(ValueError, match="codec variants"):
        EvalConfig(codecs=["lossy"]).validate()
    ev = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=20.0, codecs=["raw", "lossless"]))
    default = ev.server_argv()
    assert "--codecs" not in default, "no variant: the server's own policy"
    for variant, (policy, _suffix) in CODEC_VARIANTS.items():
        argv = ev.server_argv(variant)
        assert argv[argv.index("--codecs") + 1] == policy
    assert CODEC_VARIANTS["lossless"][1] == "+codecs" and CODEC_VARIANTS["raw"][1] == ""
    assert build_parser().parse_args(["--codecs", "raw,lossless"]).codecs == "raw,lossless"


def test_empty_class_offset_leaves_the_wanted_share_of_empty_voxels_completed() -> None:
    """The benchmark's SCONet weights: random weights complete about half of the empty voxels; raising the empty
    class's logit by this offset leaves `density` of them completed, as a trained model's output is."""
    import torch

    from intradp_ros.eval.evaluate import empty_class_offset

    torch.manual_seed(0)
    logits = torch.randn(20, 16, 4, 16)
    occupancy = (torch.rand(16, 4, 16) < 0.1).to(torch.uint8)
    empty = occupancy == 0
    before = ((logits.argmax(0) != 0) & empty).sum().item() / empty.sum().item()
    assert before > 0.5  # random logits: most empty voxels complete
    offset = empty_class_offset(logits, occupancy, 0.05)
    shifted = logits.clone()
    shifted[0] += offset
    after = ((shifted.argmax(0) != 0) & empty).sum().item() / empty.sum().item()
    assert after == pytest.approx(0.05, abs=0.01)
    with pytest.raises(ValueError):
        empty_class_offset(logits, occupancy, 0.0)


def test_a_server_only_frame_run_on_the_robot_is_a_problem() -> None:
    from intradp_ros.eval.evaluate import system_problems

    assert system_problems({"system": "server_only", "plan_name": "device_only"})
    assert not system_problems({"system": "server_only", "plan_name": "server_only"})
    assert not system_problems({"system": "dsccs", "plan_name": "device_only"})  # its own choice


@pytest.mark.parametrize("system", ["server_only", "intradp", "dsccs", "spso_ga", "server_only+codecs"])
@pytest.mark.parametrize("flag", [True, "True", "1"])  # as the driver sends it and as the CSV reads it back
def test_an_offloading_frame_that_fell_back_to_local_inference_is_a_problem(system: str, flag: Any) -> None:
    from intradp_ros.eval.evaluate import system_problems

    row = {"system": system, "plan_name": system.split("+")[0], "fell_back_local": flag}
    assert any("fell back to local inference" in p and system in p for p in system_problems(row))
    assert not system_problems(dict(row, fell_back_local=False))
    assert not system_problems(dict(row, fell_back_local="False"))
    assert not system_problems({"system": "device_only", "plan_name": "device_only", "fell_back_local": True})


def test_client_waits_are_dilated_from_the_clients_own_defaults():
    from intradp_ros.eval.evaluate import (
        CLIENT_HEARTBEAT_TIMEOUT_S,
        CLIENT_REPORT_TIMEOUT_S,
        TILE_STALL_S,
        Evaluation,
    )
    from intradp_ros.ros.client_node import COMMON_SPEC, ClientSettings
    from intradp_ros.ros.kapao_client import SPEC
    from intradp_ros.ros.node_params import build_parser, resolve

    defaults = ClientSettings()
    assert (defaults.heartbeat_timeout, defaults.report_timeout, defaults.tile_stall_s) == (
        CLIENT_HEARTBEAT_TIMEOUT_S,
        CLIENT_REPORT_TIMEOUT_S,
        TILE_STALL_S,
    )
    ev = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=40.0))
    spec = dict(COMMON_SPEC, **SPEC)
    argv = ev.client_argv("server_only")
    s = resolve(spec, build_parser("kapao_client", "", spec).parse_args(argv[1:]), use_ros=False)
    assert s["heartbeat_timeout"] == pytest.approx(40.0 * CLIENT_HEARTBEAT_TIMEOUT_S)
    assert s["report_timeout"] == pytest.approx(40.0 * CLIENT_REPORT_TIMEOUT_S)
    assert s["tile_stall_s"] == pytest.approx(40.0 * TILE_STALL_S)
    assert s["deadline"] == pytest.approx(120.0)
    from intradp_ros.ros.server_node import SPEC as SERVER_SPEC
    from intradp_ros.ros.server_node import ServerSettings

    assert ServerSettings().tile_stall_s == TILE_STALL_S
    server_argv = ev.server_argv()
    server = resolve(
        SERVER_SPEC, build_parser("intradp_server", "", SERVER_SPEC).parse_args(server_argv[1:]), use_ros=False
    )
    assert server["tile_stall_s"] == pytest.approx(40.0 * TILE_STALL_S), "the server's tile stall limit too"


def test_frame_cpu_time_is_measured_once_and_cached(tmp_path):
    from intradp_ros.eval.evaluate import cached_frame_cpu_s, frame_cpu_cache_path

    calls = []

    def measure(model, options):
        calls.append((model, options))
        return 0.46

    opts = {"input_size": (224, 224)}
    assert cached_frame_cpu_s("torchvision:vgg19", opts, tmp_path, measure) == (0.46, False)
    assert cached_frame_cpu_s("torchvision:vgg19", opts, tmp_path, measure) == (0.46, True)
    assert len(calls) == 1, "the second run must read the cache, not measure again"
    other = cached_frame_cpu_s("torchvision:vgg19", {"input_size": (112, 112)}, tmp_path, measure)
    assert other == (0.46, False) and len(calls) == 2, "another size is another entry"
    assert frame_cpu_cache_path("m", {"a": 1}, tmp_path) != frame_cpu_cache_path("m", {"a": 2}, tmp_path)
    frame_cpu_cache_path("torchvision:vgg19", opts, tmp_path).write_text("{broken")
    assert cached_frame_cpu_s("torchvision:vgg19", opts, tmp_path, measure) == (0.46, False)
    with pytest.raises(ValueError):
        cached_frame_cpu_s("x", {}, tmp_path, lambda m, o: 0.0)


def test_k_from_cpu_time_is_rounded_for_the_plan_book_cache():
    from intradp_ros.eval.evaluate import cacheable_k, cpu_dilation

    assert [cacheable_k(v) for v in (0.4, 3.4, 114.9, 115.6, 1171.0)] == [1.0, 3.0, 110.0, 120.0, 1170.0]
    # VGG19 224: 0.46 CPU s on one thread / 2 server threads = 230 ms against 2 ms on the GPU -> 115 -> 120
    k, why = cpu_dilation("torchvision:vgg19", {"input_size": (224, 224)}, 0.46, 2)
    assert k == 120.0 and "0.46 s / 2 threads" in why
    with pytest.raises(ValueError):
        cpu_dilation("torchvision:vgg19", {"input_size": (224, 224)}, 0.46, 0)
    with pytest.raises(ValueError):
        cacheable_k(float("nan"))


def test_kapao_auto_size_uses_the_cpu_frame_over_the_quota():
    from intradp_ros.eval.evaluate import auto_kapao_size

    seen = []

    def cpu(model, options):
        seen.append(options["input_size"])
        return 2.5  # one thread's CPU seconds at 1280x960

    # 2.5 s / 0.1 CPU = 25 s: 1280x960 fits a 60 s budget; at 0.02 CPU (125 s) 832x640 (54 s) is the largest
    assert auto_kapao_size("kapao_l6", 0.1, 60.0, cpu)[0] == "960,1280"
    assert auto_kapao_size("kapao_l6", 0.02, 60.0, cpu)[0] == "640,832"
    assert seen == [(960, 1280), (960, 1280)], "measured (or cached) once per call, at 1280x960 only"


def test_every_client_of_an_evaluation_shares_one_calibration_file(tmp_path):
    from intradp_ros.eval.evaluate import Evaluation
    from intradp_ros.ros.client_node import COMMON_SPEC
    from intradp_ros.ros.kapao_client import SPEC
    from intradp_ros.ros.node_params import build_parser, resolve

    spec = dict(COMMON_SPEC, **SPEC)
    ev = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=40.0, robot_cpu=0.1, out=str(tmp_path)))
    files = set()
    for system in ("intradp", "server_only", "device_only"):
        argv = ev.client_argv(system)
        s = resolve(spec, build_parser("kapao_client", "", spec).parse_args(argv[1:]), use_ros=False)
        files.add(s["calibration_file"])
        assert s["threads"] == 1, "one torch thread under a quota below one CPU"
    assert files == {str(tmp_path / "calibration_frames.json")}
    fast = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=40.0, robot_cpu=1.0))
    assert "--threads" not in fast.client_argv("intradp")


def test_run_phases_split_a_run_into_start_up_warm_up_and_frames():
    from intradp_ros.eval.evaluate import RunPhases

    now = [100.0]
    phases = RunPhases(clock=lambda: now[0])
    now[0] = 190.0
    phases.mark("ready")
    now[0] = 250.0
    phases.mark("ready")  # a second ready mark does not move the first
    phases.mark("start")
    now[0] = 300.0
    line = phases.line()
    assert "run took 200 s" in line and "start-up 90 s" in line
    assert "warm-up 60 s" in line and "counted frames 50 s" in line
    assert RunPhases(clock=lambda: 5.0).line() == "run took 0 s", "a run that never got ready says only its length"


def test_the_client_starts_outside_the_quota_and_joins_it_after_loading(tmp_path):
    import os
    import subprocess

    from intradp_ros.eval.evaluate import Evaluation

    class Group:
        fraction = 0.1
        path = tmp_path

    class FakeTestbed:
        cpu_group = Group()
        spawned: list = []

        def spawn(self, side, argv, **kwargs):
            fds = kwargs.get("pass_fds", ())
            open_now = [os.fstat(fd) is not None for fd in fds]  # the descriptor is open while the child starts
            self.spawned.append((side, list(argv), fds, self.cpu_group.fraction, open_now))
            return subprocess.Popen(["true"])

    (tmp_path / "cgroup.procs").write_text("")
    ev = Evaluation(EvalConfig(model="kapao_l6", input_size="512,640", dilation=40.0, robot_cpu=0.1, out=str(tmp_path)))
    tb = FakeTestbed()
    ev._spawn_client(tb, "intradp", subprocess.DEVNULL).wait()
    side, argv, fds, fraction_at_spawn, open_now = tb.spawned[0]
    assert side == "robot" and fraction_at_spawn is None, "started outside the quota"
    assert argv[argv.index("--join-cgroup-fd") + 1] == str(fds[0]) and open_now == [True]
    with pytest.raises(OSError):
        os.fstat(fds[0])  # the launcher closes its copy
    assert tb.cpu_group.fraction == 0.1, "the harness's later robot processes are throttled again"
    tb.cpu_group.fraction = None  # no quota: an ordinary spawn, nothing to join
    ev._spawn_client(tb, "intradp", subprocess.DEVNULL).wait()
    assert "--join-cgroup-fd" not in tb.spawned[1][1] and tb.spawned[1][2] == ()


def test_repredict_needs_the_runs_k(tmp_path, capsys):
    from intradp_ros.eval.evaluate import main

    assert main(["--from-csv", str(tmp_path / "stats.csv"), "--repredict"]) == 2
    assert "--dilation" in capsys.readouterr().err


def test_a_key_file_runs_server_and_client_authenticated_and_a_bad_one_fails_at_validation(tmp_path):
    from intradp_ros.core.auth import AuthError, write_secret
    from intradp_ros.eval.evaluate import Evaluation, build_parser
    from intradp_ros.ros.client_node import COMMON_SPEC
    from intradp_ros.ros.kapao_client import SPEC
    from intradp_ros.ros.node_params import build_parser as node_parser
    from intradp_ros.ros.node_params import resolve

    key = tmp_path / "key"
    write_secret(key)
    cfg = EvalConfig(model="kapao_l6", input_size="512,640", dilation=20.0, key_file=str(key))
    cfg.validate()
    ev = Evaluation(cfg)
    server = ev.server_argv()
    assert server[server.index("--key-file") + 1] == str(key)
    spec = dict(COMMON_SPEC, **SPEC)
    client = resolve(spec, node_parser("kapao_client", "", spec).parse_args(ev.client_argv("intradp")[1:]), False)
    assert client["key_file"] == str(key)
    assert "--key-file" not in Evaluation(EvalConfig(model="kapao_l6", input_size="512,640")).server_argv()
    assert build_parser().parse_args(["--key-file", str(key)]).key_file == str(key)
    key.chmod(0o644)
    with pytest.raises(AuthError, match="accessible by other users"):
        cfg.validate()


def test_goal_lines_leave_out_frames_that_fell_back_to_local_inference() -> None:
    """A baseline whose frames fell back to (slow) local inference must not make Intra-DP's ratio look good: the
    goals compare only frames that ran as their system, and say how many were left out."""
    from intradp_ros.eval.evaluate import CSV_FIELDS, render_report

    def row(system: str, latency: float, fell_back: bool = False) -> dict[str, Any]:
        r: dict[str, Any] = {f: 0 for f in CSV_FIELDS}
        r.update(system=system, trace="indoor", error="", latency_s=latency, energy_j=latency, plan_name=system)
        r["fell_back_local"] = fell_back
        return r

    records = [row("intradp", 1.0), row("server_only", 1.25), row("server_only", 9.0, fell_back=True)]
    text, goals = render_report(records, 1.0, "t")
    assert len(goals) == 1 and goals[0].best_other == "server_only"
    assert goals[0].latency_ratio == pytest.approx(0.8), "Intra-DP against the clean server-only frame only"
    assert "leaving out 1 frames that fell back" in text
    clean_text, clean_goals = render_report(records[:2], 1.0, "t")
    assert clean_goals[0].latency_ratio == pytest.approx(0.8) and "leaving out" not in clean_text


def test_each_run_is_predicted_with_its_own_clients_handshake_and_its_variants_book(tmp_path, monkeypatch):
    """The client keeps one handshake file per robot, overwritten by the next run's client; the prediction must
    price each run with the copy its own client wrote (device-only's carries no camera entry, Intra-DP's does) and
    with the book of the server its codec variant ran, and give every run one floor: the cheapest upload seen."""
    import intradp_ros.eval.predict as predict
    from intradp_ros.eval.evaluate import Evaluation

    ev = Evaluation(
        EvalConfig(model="kapao_l6", input_size="512,640", dilation=20.0, codecs=["raw", "lossless"], out=str(tmp_path))
    )
    for trace, system, text in [("indoor", "intradp", "A"), ("indoor", "intradp+codecs", "B")]:
        ev.handshake_copy(trace, system).parent.mkdir(parents=True, exist_ok=True)
        ev.handshake_copy(trace, system).write_text(text)
    ev.records = [
        {"trace": t, "system": s, "frame": 0}
        for t, s in [("indoor", "intradp"), ("indoor", "intradp+codecs"), ("outdoor", "intradp"), ("indoor", "x")]
    ]
    built: list[tuple[str | None, str]] = []

    def fake_context(*args: Any, handshake_file: Any = None, server_argv: Any = None, **kw: Any) -> Any:
        policy = server_argv[server_argv.index("--codecs") + 1]
        built.append((handshake_file.read_text() if handshake_file else None, policy))
        made = f"{built[-1][0]}/{policy}"
        return predict.PredictionContext(None, None, 100 if handshake_file else 400, 0, 20.0, 0.0, [made])

    priced: dict[str, tuple[Any, int]] = {}

    def fake_annotate(recs: Any, ctx: Any) -> int:
        for r in recs:
            priced[f"{r['trace']}/{r['system']}"] = (ctx, ctx.upload_bytes)
        return 0

    monkeypatch.setattr(predict, "build_context", fake_context)
    monkeypatch.setattr(predict, "annotate", fake_annotate)
    monkeypatch.setattr(predict, "capture_workload", lambda model, options: (None, None))
    monkeypatch.setattr(predict, "codec_seconds_per_byte", lambda: 1e-9)
    ev._annotate()
    assert not ev.problems, ev.problems
    assert sorted(built, key=str) == sorted([("A", "raw"), ("B", "all"), (None, "raw")], key=str), (
        "one context per distinct (handshake copy, codec variant); runs without a copy share the cache's newest"
    )
    assert {k: v[1] for k, v in priced.items()} == dict.fromkeys(priced, 100), "one floor: the cheapest upload"
    assert {k: v[0].notes[0] for k, v in priced.items()} == {
        "indoor/intradp": "A/raw",
        "indoor/intradp+codecs": "B/all",
        "outdoor/intradp": "None/raw",
        "indoor/x": "None/raw",
    }


def test_with_codec_variants_the_goals_compare_published_systems_and_the_codec_line_raw_server_only() -> None:
    """Intra-DP as published must be compared with the other systems as published, never with a '+codecs'
    system (a run printed "0.97x the best other system (intradp+codecs)"); the codec goal line puts Intra-DP given
    the codecs against raw server-only, with the workload's target, and again with the non-model CPU added."""
    from intradp_ros.eval.evaluate import CSV_FIELDS, render_report

    def row(system: str, latency: float, predicted: float, nonmodel: float = 0.0) -> dict[str, Any]:
        r: dict[str, Any] = {f: 0 for f in CSV_FIELDS}
        r.update(system=system, trace="indoor", error="", latency_s=latency, energy_j=latency, plan_name=system)
        r.update(predicted_s=predicted, floor_s=predicted / 2, fell_back_local=False, nonmodel_cpu_s=nonmodel)
        return r

    records = [
        row("intradp", 1.0, 1.0),
        row("server_only", 2.0, 2.0),
        row("intradp+codecs", 0.5, 0.8, nonmodel=0.5),
        row("server_only+codecs", 0.6, 0.6),
    ]
    text, goals = render_report(records, 1.0, "torchvision:vgg19")
    assert len(goals) == 1 and goals[0].best_other == "server_only" and goals[0].latency_ratio == pytest.approx(0.5)
    assert "Intra-DP+codecs" in text and "Server-only+codecs" in text, "variants keep their systems' names"
    assert "indoor: measured 0.250x, predicted 0.400x, floor 0.200x of raw server-only (goal <= 0.6 MET)" in text
    assert "at a robot's cost added: 0.500x (MET)" in text
    plain, _ = render_report(records[:2], 1.0, "torchvision:vgg19")
    assert "Codec goal" not in plain and "as published" not in plain
