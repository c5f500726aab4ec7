"""aggregates: the figures come out of the records (means, stds, share, power, errors, undilation)."""

import math

import pytest
from records_testlib import rec

from intradp_ros.results.aggregates import summarize, undilate


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
