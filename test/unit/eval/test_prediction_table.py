"""Prediction, floor and non-model columns of the benchmark tables (eval/tables.py, eval/stats_recorder.py)."""

from __future__ import annotations

import math
from pathlib import Path

from intradp_ros.eval import stats_recorder as sr
from intradp_ros.eval.tables import format_prediction_table, has_bench_columns, summarize


def rec(system: str, latency: float, predicted: float, floor: float, nonmodel: float, k: float = 10.0) -> dict:
    r = {k_: 0 for k_ in sr.CSV_FIELDS}
    r.update(
        system=system,
        trace="indoor",
        mode=system,
        error="",
        plan_name="p",
        fell_back_local=False,
        latency_s=latency,
        energy_j=latency,
        predicted_s=predicted,
        floor_s=floor,
        nonmodel_cpu_s=nonmodel,
        k=k,
    )
    return r


def test_summary_carries_prediction_floor_and_nonmodel() -> None:
    recs = [rec("intradp", 1.0, 0.8, 0.5, 0.1), rec("intradp", 3.0, 2.4, 1.5, 0.3)]
    s = summarize(recs)[("indoor", "intradp")]
    assert math.isclose(s.predicted_mean_s, 1.6) and math.isclose(s.floor_mean_s, 1.0)
    assert math.isclose(s.ratio_pred, 1.25) and math.isclose(s.ratio_floor, 2.0)
    assert math.isclose(s.nonmodel_share, 0.2 / 2.0) and s.k == 10.0


def test_table_columns_undilated_and_goal_marks() -> None:
    recs = [rec("intradp", 1.0, 0.95, 0.5, 0.1), rec("server_only", 2.0, 1.0, 0.5, 0.0)]
    text = format_prediction_table(summarize(recs), title="t", k=10.0)
    lines = [line for line in text.splitlines() if line.startswith("| indoor")]
    assert len(lines) == 2
    srv, idp = lines  # ordered: Server-only before Intra-DP
    cells = [c.strip() for c in idp.strip("|").split("|")]
    # trace, system, k, measured, predicted, meas/pred, floor, x floor, non-model, frames (times / k in ms)
    assert cells[:3] == ["indoor", "Intra-DP", "10"]
    assert cells[3].startswith("100.0") and cells[4] == "95.0" and cells[5] == "1.05 ✓"
    assert cells[6] == "50.0" and cells[7] == "2.00" and cells[8] == "10.0 %" and cells[9] == "1"
    assert [c.strip() for c in srv.strip("|").split("|")][5] == "2.00 ✗"


def test_missing_bench_columns_read_as_nan(tmp_path: Path) -> None:
    """CSVs from before the benchmark columns still read; the columns show '-'."""
    r = rec("device_only", 1.0, float("nan"), float("nan"), float("nan"))
    path = tmp_path / "s.csv"
    sr.write_csv(path, [r])
    text = path.read_text().splitlines()
    old_fields = [f for f in sr.CSV_FIELDS if f not in sr.BENCH_FIELDS]
    head = text[0].split(",")
    keep = [head.index(f) for f in old_fields]
    path.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in text) + "\n")
    back = sr.read_csv(path)
    assert math.isnan(back[0]["predicted_s"]) and math.isnan(back[0]["floor_s"])
    sums = summarize(back)
    assert not has_bench_columns(sums)
    assert "| - |" in format_prediction_table(sums)
