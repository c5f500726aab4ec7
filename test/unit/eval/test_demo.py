"""The demo's end-of-run health check: it passes only when all four nodes reported on /diagnostics."""

from __future__ import annotations

import io

from intradp_ros.eval.demo import report_health


def _status(name: str) -> dict:
    return {"name": name, "hardware_id": "x", "level": 0, "message": "ok", "values": {}, "reports": 1}


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
