"""The evaluation driver: its settings (defaults < private parameters < command line, refusals by name) and the
/diagnostics statuses it keeps, newest per name, for the demo's health line (no master)."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

pytest.importorskip("rospy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from intradp_ros.eval.eval_driver import EvalDriver, EvalDriverSettings, Printer, build_parser, load_settings
from intradp_ros.eval.health_table import HealthBook


def _driver() -> EvalDriver:
    """An EvalDriver with only what the diagnostics callback uses (no publishers, no master)."""
    d = object.__new__(EvalDriver)
    d.robot, d.ready_status, d._log_ready, d._held = "robot1", "", False, set()
    d._cond = threading.Condition()
    d.health = HealthBook()
    return d


def _array(*statuses: tuple[str, str, int, str, dict[str, str]]) -> DiagnosticArray:
    msg = DiagnosticArray()
    for name, hw, level, message, values in statuses:
        kvs = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg.status.append(DiagnosticStatus(level=level, name=name, message=message, hardware_id=hw, values=kvs))
    return msg


def test_health_line_holds_the_newest_status_of_each_node_and_names_the_missing() -> None:
    d = _driver()
    d._on_diagnostics(_array(("kapao_client_robot1: session", "robot1", 1, "no plan book yet", {"plan_book": "none"})))
    d._on_diagnostics(
        _array(
            ("kapao_client_robot1: session", "robot1", 0, "session up", {"plan_book": "received"}),
            ("intradp_server: server", "server", 0, "ok", {"device": "cpu"}),
        )
    )
    out = io.StringIO()
    Printer("json", out).emit(d.health_record())
    rec = json.loads(out.getvalue())
    assert rec["kind"] == "health"
    by_name = {s["name"]: s for s in rec["statuses"]}
    assert by_name["kapao_client_robot1: session"]["values"] == {"plan_book": "received"}
    assert by_name["kapao_client_robot1: session"]["reports"] == 2
    assert by_name["intradp_server: server"]["hardware_id"] == "server"
    assert rec["missing"] == ["monitor", "bridge"]


def test_a_list_of_ready_statuses_is_ready_once_each_held() -> None:
    """plan_book=received, then plan_book_camera=yes (the renewed book): ready only after both; the first alone
    ends a quiet wait (frames must flow for the camera probe that leads to the second)."""
    d = _driver()
    seen: list[str] = []
    d.printer = type("P", (), {"emit": lambda self, rec: seen.append(rec["kind"])})()
    d.now_s = lambda: 0.0
    d.ready_status = "plan_book=received,plan_book_camera=yes"
    session = "kapao_client_robot1: session"
    d._on_diagnostics(_array((session, "robot1", 0, "up", {"plan_book": "received", "plan_book_camera": "no"})))
    assert not d._log_ready and d._held == {0} and seen == ["client_status"]
    d._on_diagnostics(_array((session, "robot2", 0, "up", {"plan_book": "received", "plan_book_camera": "yes"})))
    assert not d._log_ready, "another robot's status does not count"
    d._on_diagnostics(_array((session, "robot1", 0, "up", {"plan_book": "received", "plan_book_camera": "yes"})))
    assert d._log_ready and seen == ["client_status", "client_ready"]


def _params(values: dict[str, Any]) -> Any:
    return lambda name: (name in values, values.get(name))


def test_defaults() -> None:
    s = load_settings(None, _params({}))
    assert s == EvalDriverSettings()
    assert (s.robot, s.pacing, s.rate, s.frame_timeout, s.warmup, s.startup_timeout, s.output) == (
        "robot1",
        "lockstep",
        1.0,
        60.0,
        1,
        300.0,
        "text",
    )


def test_evaluate_flags_beat_demo_launch_parameters() -> None:
    demo_launch = {"robot": "robot1", "bag": "", "frames": 20, "pacing": "lockstep", "rate": 2.0, "output": "text"}
    argv = ["--robot", "r7", "--frames", "5", "--pacing", "rate", "--frame-timeout", "9", "--output", "json"]
    argv += ["--ready-status", "plan_book=received", "--startup-timeout", "30", "--out-topic", "/cam"]
    s = load_settings(build_parser().parse_args(argv), _params(demo_launch))
    assert (s.robot, s.frames, s.pacing, s.rate, s.frame_timeout, s.output) == ("r7", 5, "rate", 2.0, 9.0, "json")
    assert (s.ready_status, s.startup_timeout, s.out_topic, s.bag) == ("plan_book=received", 30.0, "/cam", "")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pacing", "fast"),
        ("output", "xml"),
        ("reader", "tar"),
        ("rate", 0),
        ("rate", "often"),
        ("frames", -1),
        ("frames", "ten"),
        ("gap", -1.0),
        ("dilation", 0),
        ("robot", "a/b"),
    ],
)
def test_a_bad_setting_is_refused_by_name(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"setting {name}="):
        load_settings(None, _params({name: value}))


def test_the_command_lines_evaluate_builds_are_accepted() -> None:
    from pathlib import Path

    from intradp_ros.eval.evaluate import EvalConfig, Evaluation

    for rate_hz in (None, 10.0):
        cfg = EvalConfig(model="kapao_l6", input_size="512,640", dilation=20.0, rate_hz=rate_hz)
        argv = Evaluation(cfg).driver_argv("x.bag", Path("r.bag"), "intradp")
        flags = argv[next(i for i, a in enumerate(argv) if a.startswith("--")) :]
        s = load_settings(build_parser().parse_args(flags), _params({}))
        assert s.bag == "x.bag" and s.record == "r.bag" and s.ready_status == "plan_book=received"
        assert s.quiet_until_ready, "no warm-up frame may share the quota with the client's profiling"
        assert s.pacing == ("lockstep" if rate_hz is None else "rate") and s.output in ("json", "text")


@pytest.mark.parametrize("quiet", [True, False])
def test_a_quiet_warm_up_publishes_nothing_before_the_client_is_ready(quiet: bool) -> None:
    d = _driver()
    events: list[str] = []

    class Frames:
        def frames(self, n):
            def gen():
                while True:
                    yield object()

            return gen()

    def publish(frame: Any, index: int) -> None:
        events.append("frame")
        with d._cond:
            d._warmup_got = "device_only"
            d._cond.notify_all()
            if len(events) >= 3 and not d._log_ready:  # the client gets ready while (or without) frames go out
                d._log_ready = True
                events.append("ready")

    def get_ready_later() -> None:
        with d._cond:
            d._cond.wait_for(lambda: d._log_ready, timeout=0.3)
            if not d._log_ready:
                d._log_ready = True
                events.append("ready")
            d._cond.notify_all()

    d.source, d._publish, d._warmup_got = Frames(), publish, None
    d.printer = type("P", (), {"emit": lambda self, rec: None})()
    t = threading.Thread(target=get_ready_later)
    t.start()
    assert d.warmup(1, timeout=10.0, settle_s=0.0, ready_status="plan_book=received", quiet_until_ready=quiet)
    t.join(5.0)
    if quiet:
        assert events == ["ready", "frame"], "only the counted warm-up frame, after the client was ready"
    else:
        assert events[:3] == ["frame", "frame", "frame"], "without quiet, frames go out while the client starts"
