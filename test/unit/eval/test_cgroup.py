"""cgroup CFS quota and period arithmetic (no cgroup is created)."""

from __future__ import annotations

import pytest

from intradp_ros.eval import cgroup


@pytest.mark.parametrize(
    "fraction,period,expected",
    [
        (0.1, 100_000, (10_000, 100_000)),
        (0.1, 10_000, (1_000, 10_000)),
        (0.1, 1_000, (1_000, 10_000)),  # 0.1 ms quota is below the kernel's 1 ms: the period grows
        (0.05, 10_000, (1_000, 20_000)),
        (1.5, 10_000, (15_000, 10_000)),  # more than one CPU: quota above the period
    ],
)
def test_quota_and_period_keep_the_fraction_and_the_kernel_minimum(fraction, period, expected):
    quota, p = cgroup.quota_and_period(fraction, period)
    assert (quota, p) == expected
    assert quota >= cgroup.MIN_QUOTA_US and quota / p == pytest.approx(fraction)


@pytest.mark.parametrize(
    "fraction,period", [(0.0, 100_000), (-1, 100_000), (0.1, 999), (0.1, 2_000_000), (0.0005, 100_000)]
)
def test_quota_and_period_refuse_what_the_kernel_cannot_do(fraction, period):
    with pytest.raises(ValueError):
        cgroup.quota_and_period(fraction, period)


def test_group_remembers_its_period():
    g = cgroup.CpuGroup("intradp-test-period", period_us=10_000)
    assert g.period_us == 10_000 and g.fraction is None and g.quota_us is None
    assert cgroup.CpuGroup("intradp-test-default").period_us == cgroup.PERIOD_US
