"""Unit tests of the robust bandwidth predictor, bucket selection and hysteresis (synthetic sample streams)."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intradp_ros.core.bandwidth import (
    BandwidthPredictor,
    BandwidthSample,
    BucketHysteresis,
    InvalidSample,
    PredictorConfig,
    bucket_grid,
    bytes_per_s_to_mbit,
    mbit_to_bytes_per_s,
    parse_bucket_grid,
    select_bucket,
)

PROBE = "probe"


def stream(
    predictor: BandwidthPredictor,
    rates_bps,
    start: float = 0.0,
    period: float = 0.3,
    seconds: float = 0.05,
    noise: float = 0.0,
    rng=None,
):
    """Feed samples at the given true rates (bytes/s), one every `period` s; returns (last time, predictions)."""
    rng = rng or random.Random(0)
    t = start
    preds = []
    for rate in rates_bps:
        t += period
        measured = rate * (1.0 + rng.uniform(-noise, noise))
        predictor.add(BandwidthSample(measured * seconds, seconds, PROBE, t))
        preds.append(predictor.predict(t))
    return t, preds


def test_steady_state_within_a_few_percent_of_truth() -> None:
    truth = mbit_to_bytes_per_s(40.0)
    p = BandwidthPredictor()
    _, preds = stream(p, [truth] * 30, noise=0.03, rng=random.Random(1))
    last = preds[-1]
    assert abs(last.raw_bytes_per_s - truth) / truth < 0.03
    assert abs(last.bytes_per_s - truth) / truth < 0.08  # discounted by the recent error (<= ~6 %)
    assert last.bytes_per_s <= last.raw_bytes_per_s
    assert 0.0 < last.margin < 0.07


def test_noise_free_stream_has_no_margin() -> None:
    p = BandwidthPredictor()
    _, preds = stream(p, [1e6] * 10)
    assert preds[-1].margin == pytest.approx(0.0, abs=1e-12)
    assert preds[-1].bytes_per_s == pytest.approx(1e6)


@pytest.mark.parametrize("high,low", [(40.0, 10.0), (10.0, 40.0)])
def test_step_is_followed_within_the_window(high: float, low: float) -> None:
    p = BandwidthPredictor(PredictorConfig(window=5))
    t, _ = stream(p, [mbit_to_bytes_per_s(high)] * 10, noise=0.02)
    _, preds = stream(p, [mbit_to_bytes_per_s(low)] * 5, start=t, noise=0.02)
    # two samples of the new level restart the window (level shift) ...
    assert p.level_shifts == 1
    after_two = bytes_per_s_to_mbit(preds[1].raw_bytes_per_s)
    assert abs(after_two - low) / low < 0.05
    # ... and the margin is the noise of the new level, not the step
    assert preds[-1].margin < 0.1
    assert abs(bytes_per_s_to_mbit(preds[-1].bytes_per_s) - low) / low < 0.1


def test_single_slow_sample_moves_neither_the_estimate_nor_the_margin() -> None:
    """One probe slowed by CPU contention (a third of the rate) is an outlier: no level shift, no margin."""
    truth = 5e6
    p = BandwidthPredictor()
    t, before = stream(p, [truth] * 6)
    _, preds = stream(p, [truth * 0.3, truth, truth], start=t)
    assert p.level_shifts == 0 and p.outliers == 1
    assert preds[0].raw_bytes_per_s == pytest.approx(truth)
    assert all(q.bytes_per_s == pytest.approx(before[-1].bytes_per_s) for q in preds)
    assert preds[0].margin == 0.0


def test_noisy_inliers_raise_the_margin() -> None:
    """RobustMPC: the recent error of inlier samples discounts the prediction."""
    p = BandwidthPredictor()
    _, preds = stream(p, [5e6, 5e6 * 1.25, 5e6, 5e6 * 0.8, 5e6])
    assert preds[-1].margin > 0.15
    assert preds[-1].bytes_per_s < preds[-1].raw_bytes_per_s


def test_two_far_apart_samples_both_count() -> None:
    p = BandwidthPredictor(PredictorConfig(window=5, shift_samples=2))
    stream(p, [1e6, 3e6])
    assert p.predict(1.0).raw_bytes_per_s == pytest.approx(1.5e6)  # harmonic mean of both


def test_margin_is_clamped() -> None:
    p = BandwidthPredictor(PredictorConfig(max_margin=0.2))
    stream(p, [1e6, 1.3e6, 0.8e6, 1.3e6, 0.75e6])
    assert p.predict(2.0).margin == pytest.approx(0.2)


def test_stale_samples_age_out() -> None:
    p = BandwidthPredictor(PredictorConfig(window=10, max_age_s=1.0))
    p.add(BandwidthSample(1e5, 0.1, PROBE, 0.0))
    p.add(BandwidthSample(2e5, 0.1, PROBE, 0.5))
    assert p.predict(0.9).samples == 2
    pred = p.predict(1.2)
    assert pred.samples == 1 and pred.raw_bytes_per_s == pytest.approx(2e6)
    assert p.predict(1.6) is None
    assert p.last_prediction is not None and p.last_prediction.raw_bytes_per_s == pytest.approx(2e6)
    with pytest.raises(InvalidSample):  # older than the window relative to the newest sample
        p.add(BandwidthSample(1e5, 0.1, PROBE, -5.0))


def test_window_is_bounded_in_count() -> None:
    p = BandwidthPredictor(PredictorConfig(window=3, max_age_s=100.0, shift_samples=2))
    stream(p, [1e6] * 10)
    assert len(p.window) == 3


@pytest.mark.parametrize(
    "nbytes,seconds",
    [
        (0, 1.0),
        (-5, 1.0),
        (100, 0.0),
        (100, -1.0),
        (math.nan, 1.0),
        (100, math.nan),
        (math.inf, 1.0),
        (100, math.inf),
        (1e308, 1e-308),
    ],
)
def test_bad_samples_are_rejected(nbytes: float, seconds: float) -> None:
    p = BandwidthPredictor()
    with pytest.raises(InvalidSample):
        p.add(BandwidthSample(nbytes, seconds, PROBE, 1.0))
    assert p.predict(1.0) is None and p.rejected == 1


def test_bad_source_and_stamp_are_rejected() -> None:
    p = BandwidthPredictor()
    with pytest.raises(InvalidSample):
        p.add(BandwidthSample(100, 1.0, "guess", 1.0))
    with pytest.raises(InvalidSample):
        p.add(BandwidthSample(100, 1.0, PROBE, math.nan))
    with pytest.raises(InvalidSample):
        p.add(BandwidthSample(True, 1.0, PROBE, 1.0))


def test_counts_by_source() -> None:
    p = BandwidthPredictor()
    p.add(BandwidthSample(1e5, 0.1, "probe", 0.1))
    p.add(BandwidthSample(1e5, 0.1, "passive", 0.2))
    p.add(BandwidthSample(1e5, 0.1, "passive", 0.3))
    pred = p.predict(0.3)
    assert (pred.samples, pred.probe_samples, pred.passive_samples) == (3, 1, 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e3, max_value=1e9), min_size=1, max_size=20))
def test_prediction_is_bounded_by_the_window(rates) -> None:
    p = BandwidthPredictor(PredictorConfig(window=5, max_age_s=100.0))
    for i, r in enumerate(rates):
        p.add(BandwidthSample(r, 1.0, PROBE, float(i)))
    pred = p.predict(float(len(rates)))
    values = [s.bytes_per_s for s in p.window]
    assert min(values) * (1 - 1e-9) <= pred.raw_bytes_per_s <= max(values) * (1 + 1e-9)
    assert pred.bytes_per_s <= pred.raw_bytes_per_s
    assert pred.bytes_per_s >= pred.raw_bytes_per_s / (1 + p.config.max_margin) * (1 - 1e-9)


def test_bad_config_is_refused() -> None:
    for kwargs in (
        {"window": 0},
        {"max_age_s": 0},
        {"max_margin": -1},
        {"shift_ratio": 1.0},
        {"window": 2, "shift_samples": 3},
        {"margin_window": 0},
    ):
        with pytest.raises(ValueError):
            PredictorConfig(**kwargs)


# ---- buckets ---------------------------------------------------------------------------------------------
def test_default_grid_matches_the_scheduler() -> None:
    grid = bucket_grid()
    assert grid[:3] == [0.5, 1.0, 2.0] and grid[-1] == 50.0 and len(grid) == 51
    assert parse_bucket_grid("0.5:50:1") == grid
    assert parse_bucket_grid("1, 2.5 7") == [1.0, 2.5, 7.0]
    for bad in ("3,2", "1:2", "a,b", "0,1", ""):
        with pytest.raises(ValueError):
            parse_bucket_grid(bad)


def test_select_bucket_uses_the_lower_edge() -> None:
    grid = bucket_grid()
    assert select_bucket(grid, 0.1) == 0  # below every edge: slowest bucket
    assert select_bucket(grid, 0.5) == 0
    assert select_bucket(grid, 0.99) == 0
    assert select_bucket(grid, 1.0) == 1
    assert grid[select_bucket(grid, 4.75)] == 4.0
    assert grid[select_bucket(grid, 1000.0)] == 50.0
    with pytest.raises(ValueError):
        select_bucket(grid, math.nan)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.0, max_value=100.0))
def test_selected_bucket_edge_is_never_above_the_estimate(estimate: float) -> None:
    grid = bucket_grid()
    i = select_bucket(grid, estimate)
    assert grid[i] <= estimate or i == 0
    assert i == len(grid) - 1 or grid[i + 1] > estimate


def test_hysteresis_suppresses_flapping_at_a_bucket_edge() -> None:
    h = BucketHysteresis(bucket_grid(), confirm_updates=3, jump_ratio=0.3)
    assert h.update(5.05) == 5  # the first estimate sets the bucket
    changes = [h.update(e) for e in [4.95, 5.04, 4.97, 5.02, 4.96, 5.01, 4.98] * 3]
    assert all(c is None for c in changes)
    assert h.current == 5


def test_hysteresis_switches_after_n_consecutive_updates() -> None:
    h = BucketHysteresis(bucket_grid(), confirm_updates=3, jump_ratio=0.3)
    h.update(5.5)
    assert h.update(4.4) is None
    assert h.update(4.3) is None
    assert h.update(4.4) == 4
    assert h.bucket_value == 4.0


def test_hysteresis_keeps_the_bucket_inside_the_dead_band() -> None:
    """An estimate a few percent under the edge (noise on a steady link) never leaves the bucket ..."""
    h = BucketHysteresis(bucket_grid(), confirm_updates=3, jump_ratio=0.3, dead_band=0.1)
    h.update(5.2)
    assert all(h.update(e) is None for e in [4.6, 4.7, 4.55, 6.5, 6.4, 6.55] * 10)
    # ... without the dead band the same stream flaps
    flappy = BucketHysteresis(bucket_grid(), confirm_updates=3, jump_ratio=0.3, dead_band=0.0)
    flappy.update(5.2)
    assert any(flappy.update(e) is not None for e in [4.6, 4.7, 4.55, 6.5, 6.4, 6.55] * 10)


def test_hysteresis_jumps_at_once_on_a_large_move_confirmed_by_two_samples() -> None:
    h = BucketHysteresis(bucket_grid(), confirm_updates=3, jump_ratio=0.3)
    h.update(5.0)
    assert h.update(1.2, [5.0, 1.2, 1.1]) == 1
    assert h.update(5.0, [1.2, 5.1, 4.9]) == 5


def test_hysteresis_jump_needs_a_second_sample() -> None:
    """One slow sample drags the estimate past the jump ratio (a window of two far-apart samples), but the
    sample before it does not confirm the move: no jump, the confirm_updates path instead."""
    h = BucketHysteresis(bucket_grid(), confirm_updates=3, jump_ratio=0.5)
    h.update(5.0)
    assert h.update(1.2, [5.0, 0.7]) is None  # one slow sample: not confirmed
    assert h.update(1.3, [0.7]) is None  # a lone sample (the window aged out) cannot confirm either
    assert h.update(4.9, [0.7, 5.0, 4.9]) is None and h.current == 5  # back: the candidate is forgotten
    unconfirmed = BucketHysteresis(bucket_grid(), confirm_updates=3, jump_ratio=0.5, jump_confirm=0)
    unconfirmed.update(5.0)
    assert unconfirmed.update(1.2, [5.0, 0.7]) == 1  # without confirmation (the former rule) it jumps


def test_hysteresis_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        BucketHysteresis([1, 2], confirm_updates=0)
    with pytest.raises(ValueError):
        BucketHysteresis([2, 1])
    with pytest.raises(ValueError):
        BucketHysteresis([1, 2], dead_band=1.0)
    with pytest.raises(ValueError):
        BucketHysteresis([1, 2], jump_confirm=-1)
