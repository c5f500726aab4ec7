"""The demo: the end-of-run health check (passes only when all four nodes reported on /diagnostics), the
per-system client settings, the input size choice and the command lines it builds."""

from __future__ import annotations

import io

import pytest

from intradp_ros.eval.demo import (
    DEMO_MODES,
    DEMO_SIZES,
    DEMO_SYSTEMS,
    DemoConfig,
    DemoEvaluation,
    cacheable_k,
    choose_size,
    client_settings,
    estimate_demo_s,
    report_health,
    run_order,
)


def _status(name: str) -> dict:
    return {"name": name, "hardware_id": "x", "level": 0, "message": "ok", "values": {}, "reports": 1}


THREE = ("intradp", "server_only", "device_only")
ALL_FOUR = [_status("c: session"), _status("m: bandwidth"), _status("b: masters"), _status("s: server")]


def test_all_four_nodes_pass_and_the_table_is_printed() -> None:
    out = io.StringIO()
    assert report_health(ALL_FOUR, out)
    assert "FAILED" not in out.getvalue()
    assert "b: masters" in out.getvalue()


def test_a_node_that_never_reported_fails_loudly_and_is_named() -> None:
    out = io.StringIO()
    assert not report_health([s for s in ALL_FOUR if s["name"] != "s: server"], out)
    assert "FAILED: no /diagnostics status from the server node" in out.getvalue()


def test_a_run_without_a_health_report_fails() -> None:
    out = io.StringIO()
    assert not report_health(None, out)
    assert "FAILED" in out.getvalue()


def test_only_intradp_may_pass_the_camera_jpeg_through() -> None:
    assert client_settings("intradp", 0.1) == {
        "image_transport": "compressed",
        "camera_passthrough": "true",
        "calibrate_frames": "1",
        "threads": "1",
    }
    assert client_settings("server_only", 0.1)["camera_passthrough"] == "false"
    assert client_settings("device_only", 0.1)["image_transport"] == "compressed"
    assert "threads" not in client_settings("intradp", 1.0)


def test_demo_estimate_counts_frames_calibration_and_startup() -> None:
    # 3 systems x (5 + 1) frames + one calibration (3 + 1 frames, shared by the clients) + 2 distributed clients x 2
    # handshake frames = 26 frames
    assert estimate_demo_s(10.0, 5, 1, THREE, calibrate_frames=3, startup_s=60.0, solve_s=0.0) == pytest.approx(320.0)
    assert estimate_demo_s(10.0, 5, 1, ["device_only"], calibrate_frames=3, startup_s=0.0, solve_s=0.0) == 60.0
    assert estimate_demo_s(10.0, 5, 1, THREE, calibrate_frames=0, startup_s=0.0, solve_s=0.0) == pytest.approx(220.0)
    # two plan-book solves in all (without and with the camera file), however many clients start
    assert estimate_demo_s(10.0, 5, 1, THREE, calibrate_frames=0, startup_s=0.0, solve_s=40.0) == pytest.approx(300.0)
    four = estimate_demo_s(10.0, 5, 1, DEMO_SYSTEMS, calibrate_frames=0, startup_s=0.0, solve_s=40.0)
    assert four == pytest.approx(10.0 * (4 * 6 + 3 * 2) + 80.0)
    with pytest.raises(ValueError):
        estimate_demo_s(0.0, 5, 1, THREE)


def test_the_largest_size_that_fits_the_budget_is_chosen_with_its_reason() -> None:
    per_pixel = 11.0 / (512 * 640)  # 11 s per device-only frame at 512x640, scaled by pixels

    def dev(hw: tuple[int, int]) -> float:
        return per_pixel * hw[0] * hw[1]

    hw, why = choose_size(dev, 5, 1, THREE, budget_s=600.0)
    assert hw == (512, 640)
    assert "640x512, the largest size whose demo fits the 10 min budget" in why and "1280x960: 41.2 s/frame" in why
    hw, why = choose_size(dev, 5, 1, THREE, budget_s=60.0)
    assert hw == tuple(DEMO_SIZES[-1]) and "none fits" in why
    hw, _ = choose_size(dev, 5, 1, DEMO_SYSTEMS, budget_s=1e6)
    assert hw == (960, 1280)


def test_demo_command_lines_are_accepted_by_the_client_and_the_driver() -> None:
    pytest.importorskip("rospy")
    from pathlib import Path

    from intradp_ros.eval.eval_driver import build_parser as driver_parser
    from intradp_ros.eval.eval_driver import load_settings
    from intradp_ros.eval.sample_data import COMPRESSED_TOPIC
    from intradp_ros.ros.client_node import COMMON_SPEC
    from intradp_ros.ros.kapao_client import SPEC
    from intradp_ros.ros.node_params import build_parser, resolve

    cfg = DemoConfig(model="kapao_l6", input_size="512,640", dilation=50.0, traces=["outdoor"], systems=DEMO_SYSTEMS)
    demo = DemoEvaluation(cfg)
    spec = dict(COMMON_SPEC, **SPEC)
    for system in DEMO_SYSTEMS:
        argv = demo.client_argv(system)
        args = build_parser("kapao_client", "", spec).parse_args(argv[1:])
        s = resolve(spec, args, use_ros=False)
        assert s["mode"] == DEMO_MODES[system] and s["image_transport"] == "compressed" and s["threads"] == 1
        assert s["camera_passthrough"] is (system != "server_only")
        assert s["calibrate_frames"] == 1
        assert s["heartbeat_timeout"] == pytest.approx(50.0) and s["report_timeout"] == pytest.approx(25.0)
        assert s["tile_stall_s"] == pytest.approx(100.0), "the tile stall limit is dilated like every wait"
    from intradp_ros.ros.server_node import SPEC as SERVER_SPEC

    server_args = build_parser("intradp_server", "", SERVER_SPEC).parse_args(demo.server_argv()[1:])
    server = resolve(SERVER_SPEC, server_args, use_ros=False)
    assert server["tile_stall_s"] == pytest.approx(100.0)
    for system in DEMO_SYSTEMS:
        argv = demo.driver_argv("x.bag", Path("r.bag"), system)
        flags = argv[next(i for i, a in enumerate(argv) if a.startswith("--")) :]
        driver = load_settings(driver_parser().parse_args(flags), lambda name: (False, None))
        assert driver.topic == COMPRESSED_TOPIC
        # passthrough systems count frames only once the book that prices the camera file is held
        camera = system in ("intradp", "server_only_jpeg")
        want = "plan_book=received,plan_book_camera=yes" if camera else "plan_book=received"
        assert driver.ready_status == want and driver.quiet_until_ready, system
    assert DEMO_MODES["server_only_jpeg"] == "server_only"
    with pytest.raises(ValueError, match="unknown systems"):
        DemoConfig(systems=["intradp", "server_only_webp"]).validate()


def test_k_is_rounded_so_runs_share_the_cached_plan_book() -> None:
    assert cacheable_k(65.5) == cacheable_k(71.1) == 70.0
    assert cacheable_k(3.4) == 3.0 and cacheable_k(0.2) == 1.0 and cacheable_k(1250.6) == 1250.0
    with pytest.raises(ValueError):
        cacheable_k(float("nan"))


def test_a_passthrough_system_runs_last_whatever_the_order_given() -> None:
    """The prediction rebuilds the book from the last client's handshake: raw server-only's has no camera entry."""
    assert run_order(["intradp", "server_only"]) == ["server_only", "intradp"]
    assert run_order(["device_only", "intradp", "server_only_jpeg", "server_only"]) == [
        "server_only",
        "device_only",
        "server_only_jpeg",
        "intradp",
    ], "passthrough systems last: the prediction reads the last client's handshake"
    assert DEMO_SYSTEMS[0] == "server_only" and DEMO_SYSTEMS.index("server_only_jpeg") < DEMO_SYSTEMS.index("intradp")
