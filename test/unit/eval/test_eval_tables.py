"""Evaluation records, tables, goal check and plots: the figures come out of the records, not out of thin air."""

import math

import pytest

from intradp_ros.eval import stats_recorder as sr
from intradp_ros.eval.plots import plot_run, step_points
from intradp_ros.eval.tables import check_goals, format_table, frame_line, summarize, undilate


def rec(system, latency, transmit, energy, trace="indoor", frame=0, error="", local=False, t=0.0):
    """A consistent record: compute 60 %, transmit-only 10 %, wait 30 % of the latency."""
    return {
        "system": system,
        "trace": trace,
        "frame": frame,
        "t_s": t,
        "link_mbit": 5.0,
        "stamp_s": 1.0,
        "robot": "robot1",
        "request_id": frame,
        "model": "kapao_l6",
        "mode": system,
        "plan_id": 3,
        "plan_name": "p",
        "latency_s": latency,
        "robot_compute_s": 0.6 * latency,
        "robot_transmit_only_s": 0.1 * latency,
        "robot_wait_s": 0.3 * latency,
        "server_compute_s": 0.01,
        "transmit_s": transmit,
        "bytes_up": 1000,
        "bytes_down": 10,
        "tiles_up": 2,
        "tiles_down": 1,
        "bandwidth_estimate_mbit_per_s": 4.5,
        "energy_j": energy,
        "mean_power_w": energy / latency,
        "fell_back_local": local,
        "error": error,
    }


def test_record_from_message_like_object_and_dict():
    class Stamp:
        secs, nsecs = 12, 500_000_000

    class Header:
        stamp = Stamp()

    class Msg:
        header = Header()

    m = Msg()
    for k, v in rec("intradp", 1.0, 0.5, 2.0).items():
        if k in sr.STATS_FIELDS and k != "stamp_s":
            setattr(m, k, v)
    r = sr.stats_record(m)
    assert r["stamp_s"] == 12.5 and r["latency_s"] == 1.0 and r["fell_back_local"] is False
    assert sr.stats_record(dict(rec("dsccs", 2.0, 1.0, 3.0)))["mode"] == "dsccs"
    bad = rec("intradp", 1.0, 0.5, 2.0)
    del bad["bytes_up"]
    with pytest.raises(sr.StatsRecordError, match="bytes_up"):
        sr.stats_record(bad)
    with pytest.raises(sr.StatsRecordError, match="latency_s"):
        sr.stats_record(dict(rec("intradp", 1.0, 0.5, 2.0), latency_s="fast"))


def test_consistency_flags_a_breakdown_that_does_not_add_up():
    good = rec("intradp", 1.0, 0.5, 2.0)
    assert sr.consistency_problems(good) == []
    assert "!= latency" in sr.consistency_problems(dict(good, robot_wait_s=0.9))[0]
    assert sr.consistency_problems(dict(good, latency_s=float("nan")))
    assert sr.consistency_problems(dict(good, bytes_down=0)) == []  # an empty sparse tile carries no bytes
    assert "bytes_up" in sr.consistency_problems(dict(good, tiles_up=0))[0]


def test_csv_round_trip(tmp_path):
    rows = [rec("intradp", 1.0, 0.5, 2.0, frame=i, t=i * 1.5, local=(i == 1)) for i in range(3)]
    rows.append(dict(rec("dsccs", 2.0, 1.0, 3.0), error="deadline", t_s=float("nan")))
    path = tmp_path / "s.csv"
    assert sr.write_csv(path, rows) == 4
    back = sr.read_csv(path)
    assert [r["frame"] for r in back] == [0, 1, 2, 0]
    assert back[1]["fell_back_local"] is True and back[0]["fell_back_local"] is False
    assert back[2]["t_s"] == 3.0 and back[3]["error"] == "deadline" and math.isnan(back[3]["t_s"])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(sr.StatsRecordError, match="not an evaluation CSV"):
        sr.read_csv(tmp_path / "bad.csv")


def test_summary_means_stds_share_power_and_errors():
    rows = [
        rec("intradp", 1.0, 0.2, 4.0),
        rec("intradp", 3.0, 0.6, 8.0),
        rec("intradp", 9.0, 9.0, 99.0, error="server gone"),
    ]
    s = summarize(rows)[("indoor", "intradp")]
    assert s.frames == 2 and s.errors == 1
    assert s.latency_mean_s == 2.0 and s.latency_std_s == pytest.approx(math.sqrt(2))
    assert s.transmit_mean_s == pytest.approx(0.4) and s.transmit_share == pytest.approx(0.2)
    assert s.energy_mean_j == 6.0 and s.power_mean_w == 3.0
    u = undilate(s, 20.0)
    assert u.latency_mean_s == pytest.approx(0.1) and u.energy_mean_j == pytest.approx(0.3)
    assert u.power_mean_w == s.power_mean_w
    with pytest.raises(ValueError):
        undilate(s, 0.0)


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


def test_frame_line_shows_latency_plan_estimate_and_errors():
    line = frame_line(dict(rec("intradp", 2.0, 1.0, 3.0), frame=7), k=20.0, link_mbit=4.65)
    assert "frame   7" in line and "2.000 s" in line and "100.0 ms undilated" in line and "est   4.50" in line
    assert "link   4.65" in line and "plan p" in line
    assert "ERROR boom" in frame_line(dict(rec("intradp", 2.0, 1.0, 3.0), error="boom"))


def test_step_points_and_plot_files(tmp_path):
    xs, ys = step_points([(0.0, 5.0), (2.0, 1.0), (9.0, 3.0)], t_end=4.0)
    assert xs == [0.0, 2.0, 2.0, 4.0] and ys == [5.0, 5.0, 1.0, 1.0]
    rows = [
        rec(s, 1.0 + i, 0.5, 2.0, trace=tr, frame=i, t=float(i))
        for tr in ("indoor", "outdoor")
        for s in ("intradp", "dsccs")
        for i in range(3)
    ]
    rows.append(rec("dsccs", 1.0, 0.5, 2.0, frame=3, t=3.0, error="x"))
    files = plot_run(rows, tmp_path, "run", links={("indoor", "intradp"): [(0.0, 5.0), (1.5, 2.0)]}, k=20.0)
    assert [f.name for f in files] == ["run_indoor.png", "run_outdoor.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000 for f in files)
