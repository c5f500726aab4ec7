"""Newest frame wins: a one-slot mailbox between a sensor callback and the inference worker.

A new frame replaces the one waiting (the replaced one is counted as dropped), and a frame older than
`max_age_s` when the worker takes it is dropped as stale, so the queue never grows and the robot always
works on the most recent input. ROS-free (unit-tested); the node puts messages in from its subscriber.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class LatestFrameSlot:
    """Holds at most one pending frame; `take()` blocks (bounded) for the next one."""

    def __init__(self, max_age_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.max_age_s = max_age_s
        self.clock = clock
        self._cv = threading.Condition()
        self._item: tuple[float, Any] | None = None
        self._closed = False
        self.received = 0
        self.replaced = 0
        self.stale = 0

    def put(self, frame: Any) -> None:
        with self._cv:
            if self._item is not None:
                self.replaced += 1
            self._item = (self.clock(), frame)
            self.received += 1
            self._cv.notify_all()

    def take(self, timeout: float) -> tuple[float, Any] | None:
        """(arrival time, frame) of the newest fresh frame, or None after `timeout` s / once closed."""
        deadline = self.clock() + timeout
        with self._cv:
            while True:
                if self._item is not None:
                    t, frame = self._item
                    self._item = None
                    if self.clock() - t <= self.max_age_s:
                        return t, frame
                    self.stale += 1
                    continue
                left = deadline - self.clock()
                if self._closed or left <= 0:
                    return None
                self._cv.wait(min(left, 0.5))

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    @property
    def dropped(self) -> int:
        return self.replaced + self.stale
