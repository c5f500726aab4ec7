"""The tbf bucket follows the rate (no qdisc is created here; test/integration/testbed.test measures the link)."""

from __future__ import annotations

import pytest

from intradp_ros.eval import shaping


def test_bucket_is_a_few_ms_of_traffic_at_fast_rates():
    assert shaping.burst_bytes(100.0) == 37_500  # 3 ms at 12.5 MB/s
    assert shaping.burst_bytes(110.0, burst_s=0.002) == 27_500


@pytest.mark.parametrize("rate", [0.0, 0.62, 3.65, 4.65, 10.0])
def test_bucket_never_goes_under_the_floor_and_stays_small_at_dilated_rates(rate):
    b = shaping.burst_bytes(rate)
    assert b >= shaping.MIN_BURST_BYTES
    assert b <= 16 * 1024  # issue 10: at 4.65 Mbit/s (indoor / 20) at most 16 KiB


def test_bucket_grows_with_the_rate():
    sizes = [shaping.burst_bytes(r) for r in (1, 10, 20, 50, 100, 200)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]


@pytest.mark.parametrize("burst_s,floor", [(-0.001, 4096), (float("nan"), 4096), (0.003, 100), (0.003, 4096.0)])
def test_bad_bucket_settings_are_refused(burst_s, floor):
    with pytest.raises(ValueError):
        shaping.burst_bytes(10.0, burst_s, floor)


def test_tbf_arguments_carry_rate_bucket_and_queue():
    assert shaping.tbf_args(4.65, 4096) == ["tbf", "rate", "4650kbit", "burst", "4096", "limit", "262144"]


def test_queue_keeps_its_bytes_at_dilated_rates_and_grows_with_fast_ones():
    assert shaping.queue_bytes(4.65, 4096) == shaping.MIN_QUEUE_BYTES  # 50 ms would be 29 kB: one TCP window
    assert shaping.queue_bytes(100.0, 37_500) == 625_000 + 37_500
