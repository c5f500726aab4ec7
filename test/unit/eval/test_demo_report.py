"""demo_report: the demo's side-by-side rows, table, headline ratio and plan counts from frame records."""

from __future__ import annotations

import math

import pytest
from records_testlib import rec

from intradp_ros.eval.demo_report import comparison_rows, format_comparison, headline, plans_run
from intradp_ros.eval.tables import summarize

K = 50.0


def _records() -> list[dict]:
    rows = []
    for i in range(3):  # dilated seconds: Intra-DP 2 s, server-only 5 s, device-only 8 s per frame
        r = rec("intradp", 2.0, 1.0, 4.0, trace="outdoor", frame=i, t=float(i))
        r.update(bytes_up=250_000, bytes_down=2_000, plan_name="server_only", predicted_s=4.0, floor_s=4.0)
        rows.append(r)
        s = rec("server_only", 5.0, 4.0, 10.0, trace="outdoor", frame=i, t=float(i))
        s.update(bytes_up=983_040, bytes_down=2_000, predicted_s=5.0, floor_s=4.0)
        rows.append(s)
        rows.append(rec("device_only", 8.0, 0.0, 16.0, trace="outdoor", frame=i, t=float(i)))
    rows.append(rec("intradp", 1.0, 0.0, 1.0, trace="outdoor", frame=3, t=3.0, error="lost"))
    return rows


def test_rows_are_undilated_in_the_given_order_with_ratios_to_server_only() -> None:
    rows = comparison_rows(summarize(_records()), "outdoor", K, ["intradp", "server_only", "device_only", "dsccs"])
    assert [r.system for r in rows] == ["intradp", "server_only", "device_only"]  # dsccs did not run: left out
    a, b, c = rows
    assert a.latency_ms == pytest.approx(2.0 / K * 1e3) and a.measured_s == pytest.approx(2.0)
    assert a.vs_reference == pytest.approx(0.4) and b.vs_reference == pytest.approx(1.0)
    assert c.vs_reference == pytest.approx(1.6)
    assert a.frames == 3 and a.errors == 1
    assert a.bytes_up == 250_000 and b.bytes_up == 983_040
    assert a.energy_j == pytest.approx(4.0 / K)
    assert a.predicted_ms == pytest.approx(4.0 / K * 1e3) and a.floor_ms == pytest.approx(4.0 / K * 1e3)
    assert a.x_floor == pytest.approx(0.5)
    assert math.isnan(c.predicted_ms) and math.isnan(c.floor_ms)


def test_without_the_reference_the_ratio_is_nan() -> None:
    recs = [r for r in _records() if r["system"] != "server_only"]
    rows = comparison_rows(summarize(recs), "outdoor", K, ["intradp", "device_only"])
    assert all(math.isnan(r.vs_reference) for r in rows)
    assert headline(rows) == ""


def test_table_and_headline_show_the_figures() -> None:
    rows = comparison_rows(summarize(_records()), "outdoor", K, ["intradp", "server_only", "device_only"])
    table = format_comparison(rows, K)
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert "Intra-DP (camera JPEG passthrough allowed) | 40.0 ± 0.0 | 2.00 | 250.0 | 2.0 |" in lines[2]
    assert "| 0.40x | 3 (1 err) |" in lines[2]
    assert lines[4] == "| Device-only | 160.0 ± 0.0 | 8.00 | 1.0 | 0.0 | 0.3200 | - | - | - | 1.60x | 3 |"
    line = headline(rows)
    assert line.startswith("Intra-DP / Server-only, raw pixels (the seeds' way): latency 0.40x (40.0 ms vs 100.0 ms")
    assert "bytes up 0.25x (250.0 kB vs 983.0 kB per frame)" in line and "energy 0.40x" in line


def test_plans_run_counts_the_plans_of_frames_with_a_result() -> None:
    recs = _records()
    recs[0]["plan_name"] = "intradp_0.4MBps"
    assert plans_run(recs, "intradp") == "server_only x2, intradp_0.4MBps x1"
    assert plans_run(recs, "dsccs") == ""
