"""monitor_check's reading of `rostopic echo -p` CSV (the run itself needs root and a testbed)."""

from __future__ import annotations

from intradp_ros.eval import monitor_check

CSV = """%time,field.header.seq,field.mbit_per_s,field.samples
1000,1,4.4,3
2000,2,4.2,4
3000,3,bad,4
"""


def test_values_of_one_field_skip_unparsable_rows():
    assert monitor_check._values(CSV, "field.mbit_per_s") == [4.4, 4.2]
    assert monitor_check._values(CSV, "field.samples") == [3.0, 4.0, 4.0]
    assert monitor_check._values("", "field.mbit_per_s") == []


def test_percentile_is_nearest_rank():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert monitor_check.percentile(values, 0.0) == 1.0
    assert monitor_check.percentile(values, 0.5) == 3.0
    assert monitor_check.percentile(values, 1.0) == 5.0
