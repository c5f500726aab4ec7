"""tables: layout in system order, the goal check, the per-frame line."""

import pytest
from records_testlib import rec

from intradp_ros.eval.tables import check_goals, format_table, frame_line, summarize


def test_table_layout_in_system_order():
    rows = [
        rec(sys_, lat, lat / 2, lat * 5, trace=tr)
        for tr in ("outdoor", "indoor")
        for sys_, lat in (("intradp", 1.0), ("device_only", 4.0), ("dsccs", 2.0))
    ]
    text = format_table(summarize(rows), title="T")
    lines = text.splitlines()
    assert lines[0] == "T"
    header = lines[2]
    assert header.index("indoor inference") < header.index("outdoor inference")
    body = [line.split("|")[1].strip() for line in lines[4:]]
    assert body == ["Device-only", "DSCCS", "Intra-DP"]
    intradp = lines[-1]
    assert "1.000 ± 0.000" in intradp and "50.0 %" in intradp and "5.000 ± 0.000" in intradp
    assert "100.0 ± 0.0" in format_table(summarize(rows), time_unit="ms", k=10.0)


def test_goals_met_and_not_met():
    rows = [
        rec("device_only", 4.0, 0.0, 50.0),
        rec("server_only", 2.0, 1.8, 9.0),
        rec("dsccs", 1.5, 1.0, 8.0),
        rec("spso_ga", 2.5, 1.0, 7.0),
        rec("intradp", 1.0, 0.5, 6.0),
    ]
    (g,) = check_goals(summarize(rows))
    assert g.latency_ratio == pytest.approx(1.0 / 1.5) and g.best_other == "dsccs" and g.latency_met
    assert g.energy_rank == 1 and g.energy_met and g.lowest_energy_other == "spso_ga"
    assert "met" in g.describe() and "NOT" not in g.describe()
    rows[-1] = rec("intradp", 1.4, 0.5, 7.5)
    (g,) = check_goals(summarize(rows))
    assert not g.latency_met and not g.energy_met and g.energy_rank == 2
    assert g.describe().count("NOT met") == 2
    # device-only's low energy does not count: it is not distributed
    rows = [rec("device_only", 4.0, 0.0, 1.0), rec("intradp", 1.0, 0.5, 6.0), rec("dsccs", 2.0, 1.0, 8.0)]
    assert check_goals(summarize(rows))[0].energy_met
    # no other distributed system with frames: the energy goal is not judged, never "met"
    (g,) = check_goals(summarize([rec("device_only", 4.0, 0.0, 50.0), rec("intradp", 1.0, 0.5, 6.0)]))
    assert not g.energy_met and g.lowest_energy_other == "-" and "not judged" in g.describe()


def test_frame_line_shows_latency_plan_estimate_and_errors():
    line = frame_line(dict(rec("intradp", 2.0, 1.0, 3.0), frame=7), k=20.0, link_mbit=4.65)
    assert "frame   7" in line and "2.000 s" in line and "100.0 ms undilated" in line and "est   4.50" in line
    assert "link   4.65" in line and "plan p" in line
    assert "ERROR boom" in frame_line(dict(rec("intradp", 2.0, 1.0, 3.0), error="boom"))


def test_plans_line_says_which_plans_ran_with_how_many_tiles_up_and_the_streaming_ratio():
    from intradp_ros.eval.tables import format_plans

    rows = []
    for i, (tiles, lat, pred) in enumerate(((8, 0.8, 0.7), (8, 0.9, 0.7), (16, 1.0, 0.7))):
        rows.append({**rec("intradp", lat, 0.2, 1.0, frame=i), "plan_name": "intradp_0.29MBps", "tiles_up": tiles})
        rows[-1]["predicted_s"] = pred
    rows.append({**rec("server_only", 1.2, 0.5, 1.0), "plan_name": "server_only", "tiles_up": 1, "predicted_s": 0.875})
    rows.append({**rec("intradp", 9.0, 0.2, 1.0, frame=9, local=True), "plan_name": "device_only", "tiles_up": 0})
    rows.append({**rec("server_only", 5.0, 0.2, 1.0, frame=5, error="lost"), "plan_name": "", "tiles_up": 0})
    text = format_plans(rows)
    assert "- indoor / Intra-DP: intradp_0.29MBps x3 (tiles up 8-16)" in text
    assert "- indoor / Server-only: server_only x1 (tiles up 1)" in text
    assert "device_only" not in text, "a frame that fell back is no Intra-DP plan run"
    assert "Intra-DP / server-only measured 0.75x (predicted 0.80x)" in text  # 0.9 / 1.2, 0.7 / 0.875
    assert format_plans([rows[-1]]) == "Plans run: (no frame with a result)"
