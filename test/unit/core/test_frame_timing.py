"""frame_timing: the InferenceStats breakdown always adds up and splits idle time by what was in flight."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intradp_ros.core.frame_timing import breakdown, intersect, length, merge


def test_merge_and_length() -> None:
    assert merge([(3, 4), (0, 1), (0.5, 2), (5, 5)]) == [(0, 2), (3, 4)]
    assert length([(0, 1), (0.5, 2), (3, 4)]) == pytest.approx(3.0)
    assert intersect([(0, 2), (3, 5)], [(1, 4)]) == [(1, 2), (3, 4)]


def test_idle_split_into_transmit_only_and_wait() -> None:
    # frame 0..10; robot idle 2..4 (own tile in flight 1..3) and 6..9 (server tiles coming down 5..9)
    b = breakdown(0.0, 10.0, idle=[(2, 4), (6, 9)], up_flight=[(1, 3)], down_flight=[(5, 9)])
    assert b.transmit_only_s == pytest.approx(1.0)
    assert b.wait_s == pytest.approx(4.0)
    assert b.compute_s == pytest.approx(5.0)
    assert b.transmit_s == pytest.approx(2.0 + 4.0)
    b.check()


def test_intervals_outside_the_frame_are_clipped() -> None:
    b = breakdown(10.0, 11.0, idle=[(9, 10.5)], up_flight=[(8, 10.2)], down_flight=[(10.9, 12)])
    assert b.latency_s == pytest.approx(1.0)
    assert b.transmit_only_s == pytest.approx(0.2)
    assert b.wait_s == pytest.approx(0.3)
    assert b.transmit_s == pytest.approx(0.3)


def test_local_frame_is_all_compute() -> None:
    b = breakdown(1.0, 1.5, [], [], [])
    assert (b.compute_s, b.transmit_only_s, b.wait_s, b.transmit_s) == (pytest.approx(0.5), 0.0, 0.0, 0.0)


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError):
        breakdown(2.0, 1.0, [], [], [])


intervals = st.lists(st.tuples(st.floats(-1, 11), st.floats(0, 3)).map(lambda t: (t[0], t[0] + t[1])), max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 5), st.floats(0, 5), intervals, intervals, intervals)
def test_breakdown_always_adds_up(start: float, dur: float, idle: list, up: list, down: list) -> None:
    b = breakdown(start, start + dur, idle, up, down)
    assert b.compute_s + b.transmit_only_s + b.wait_s == pytest.approx(b.latency_s, abs=1e-9)
    assert min(b.compute_s, b.transmit_only_s, b.wait_s, b.transmit_s) >= 0
    assert b.transmit_s <= b.latency_s + 1e-9
