"""One throttle for every per-tile and per-frame log line: the first event of a key logs at once, then at most
one line per period, carrying how many events it stands for (a flood of bad tiles is a few lines with counts,
not thousands of lines). ROS-free; thread-safe; the number of keys is bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_KEYS = 256


class LogThrottle:
    """`hit(key)` counts one event and returns how many events the caller's log line should report (this one and
    those suppressed since the key's last line), or 0 when it must not log now."""

    def __init__(self, period_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = float(period_s)
        self.clock = clock
        self.total = 0
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        key = key[:120]  # keys come from the wire: bounded
        with self._lock:
            self.total += 1
            self._pending[key] = self._pending.get(key, 0) + 1
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                return 0
            if key not in self._last and len(self._last) >= MAX_KEYS:
                oldest = min(self._last, key=self._last.__getitem__)
                del self._last[oldest]
                self._pending.pop(oldest, None)
            self._last[key] = now
            return self._pending.pop(key)


def clip(text: object, limit: int = 200) -> str:
    """`text` as str, cut to `limit` characters with the length it had: never echo unbounded input."""
    s = str(text)
    if len(s) <= limit:
        return s
    return f"{s[:limit]}... ({len(s)} chars)"
