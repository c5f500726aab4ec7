"""The eval_driver keeps every /diagnostics status (newest per name) for the demo's health line (no master)."""

from __future__ import annotations

import io
import json
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from intradp_ros.eval.eval_driver import EvalDriver, Printer
from intradp_ros.eval.health_table import HealthBook


def _driver() -> EvalDriver:
    """An EvalDriver with only what the diagnostics callback uses (no publishers, no master)."""
    d = object.__new__(EvalDriver)
    d.robot, d.ready_status, d._log_ready = "robot1", "", False
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
