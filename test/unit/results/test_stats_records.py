"""stats records: message or dict -> typed record, consistency checks, CSV round trip."""

import csv
import math

import pytest
from records_testlib import rec

from intradp_ros.results import stats_records as sr


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
    old = tmp_path / "old.csv"  # written before the drop counters existed: they read as 0
    with open(path, newline="") as f_in, open(old, "w", newline="") as f_out:
        kept = [k for k in sr.CSV_FIELDS if k not in sr.OPTIONAL_FIELDS]
        writer = csv.DictWriter(f_out, kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv.DictReader(f_in))
    assert [r["frames_dropped_bad"] for r in sr.read_csv(old)] == [0, 0, 0, 0]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(sr.StatsRecordError, match="not an evaluation CSV"):
        sr.read_csv(tmp_path / "bad.csv")
