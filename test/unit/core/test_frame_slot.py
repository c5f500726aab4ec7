"""frame_slot: newest frame wins, stale frames are dropped, waits are bounded."""

from __future__ import annotations

import threading

import pytest

from intradp_ros.core.frame_slot import LatestFrameSlot


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_newest_frame_replaces_the_waiting_one() -> None:
    slot = LatestFrameSlot(max_age_s=1.0, clock=Clock())
    slot.put("a")
    slot.put("b")
    assert slot.take(0.0)[1] == "b"
    assert slot.replaced == 1 and slot.received == 2
    assert slot.take(0.0) is None


def test_stale_frame_is_dropped() -> None:
    clock = Clock()
    slot = LatestFrameSlot(max_age_s=0.5, clock=clock)
    slot.put("old")
    clock.t += 0.6
    assert slot.take(0.0) is None
    assert slot.stale == 1 and slot.dropped == 1


def test_take_wakes_up_for_a_frame_from_another_thread() -> None:
    slot = LatestFrameSlot(max_age_s=5.0)
    t = threading.Timer(0.05, slot.put, args=("x",))
    t.start()
    got = slot.take(5.0)
    t.join()
    assert got is not None and got[1] == "x"


def test_close_ends_waiting_and_bad_age_is_refused() -> None:
    slot = LatestFrameSlot(max_age_s=1.0)
    slot.close()
    assert slot.take(5.0) is None
    with pytest.raises(ValueError):
        LatestFrameSlot(max_age_s=0)
