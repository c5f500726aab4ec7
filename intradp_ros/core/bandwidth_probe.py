"""Active probe planning for the bandwidth monitor, ROS-free: probe sizes, the probe call sequence, the goodput
of a timed call, the probe duty-cycle budget, link-activity tracking and passive samples from tile transfers.

A probe is iperf-like: a timed transfer big enough that per-call overhead is small against the transfer time.
Two things would make a naive timed call lie:

- Token buckets and TCP warm-up. A shaper (the testbed's tbf has a 256 KiB bucket, Wi-Fi aggregates) lets the
  first bytes after an idle period through at line rate, and TCP restarts slow start after an idle period. So
  every probe first sends `omit_bytes` untimed in the probed direction (iperf's --omit), then the timed part.
- The other direction refills while one is measured. Up- and downlink are measured by separate probes (the
  reply of an uplink probe is empty and vice versa); with `direction="both"` probes alternate.

The timed size follows the current estimate (`target_s` of transfer at the estimated rate, clamped to
[min_bytes, max_bytes]), so a probe costs about the same link time at any bandwidth.

Duty cycle: probes only start when no tile traffic was seen for `idle_gap_s` and the next frame is not due
before the probe would end, and the link time spent probing over the last `duty_window_s` stays under
`busy_duty` (5 %) while inference runs, `idle_duty` when it does not (the link is free then).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Tuple

from intradp_ros.core.bandwidth import SOURCE_PASSIVE, SOURCE_PROBE, BandwidthSample, InvalidSample

__all__ = [
    "DIRECTIONS",
    "ProbeConfig",
    "ProbeCall",
    "plan_probe",
    "probe_bytes",
    "probe_sample",
    "DutyBudget",
    "LinkActivity",
    "passive_sample",
]

DIRECTIONS = ("up", "down", "both")
KIB = 1024


@dataclass(frozen=True)
class ProbeConfig:
    """Probe sizes and duty-cycle limits (see the module docstring)."""

    omit_bytes: int = 256 * KIB  # untimed lead-in per probe: >= the link's burst allowance
    initial_bytes: int = 256 * KIB  # timed size while there is no estimate yet
    min_bytes: int = 64 * KIB
    max_bytes: int = 1024 * KIB
    target_s: float = 0.05  # timed part lasts about this long at the estimated rate
    direction: str = "both"  # up (robot->server), down, or both (alternating)
    busy_duty: float = 0.05  # share of link time probes may take while inference runs
    idle_duty: float = 0.4  # ... while no inference ran for active_window_s
    duty_window_s: float = 10.0  # the duty cycle is measured over this sliding window
    idle_gap_s: float = 0.1  # no tile traffic for this long before a probe
    active_window_s: float = 2.0  # inference counts as running this long after its last stats message
    guard_s: float = 0.02  # a probe must end this long before the next frame is expected
    call_timeout_s: float = 3.0  # a probe call taking longer is abandoned (connection closed)

    def __post_init__(self) -> None:
        for name in ("omit_bytes", "initial_bytes", "min_bytes", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.min_bytes < 1 or self.max_bytes < self.min_bytes:
            raise ValueError(f"need 1 <= min_bytes <= max_bytes, got {self.min_bytes}, {self.max_bytes}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        for name in ("busy_duty", "idle_duty"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("target_s", "duty_window_s", "call_timeout_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
        for name in ("idle_gap_s", "active_window_s", "guard_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")


@dataclass(frozen=True)
class ProbeCall:
    """One service call of a probe: upload `payload_bytes`, ask for `reply_bytes`; `timed` marks the measured one."""

    payload_bytes: int
    reply_bytes: int
    timed: bool
    direction: str  # "up" or "down": which way the bytes of this call go

    @property
    def measured_bytes(self) -> int:
        return self.payload_bytes if self.direction == "up" else self.reply_bytes


def probe_bytes(estimate_bytes_per_s: Optional[float], config: ProbeConfig) -> int:
    """Timed size for the next probe: `target_s` of transfer at the estimate, clamped to [min, max]."""
    if estimate_bytes_per_s is None or not math.isfinite(estimate_bytes_per_s) or estimate_bytes_per_s <= 0:
        size = config.initial_bytes
    else:
        size = int(estimate_bytes_per_s * config.target_s)
    return int(min(max(size, config.min_bytes), config.max_bytes))


def plan_probe(direction: str, timed_bytes: int, config: ProbeConfig) -> List[ProbeCall]:
    """The calls of one probe in `direction` ("up" or "down"): the untimed lead-in (if any), then the timed one."""
    if direction not in ("up", "down"):
        raise ValueError(f"a probe goes 'up' or 'down', got {direction!r}")
    if timed_bytes < 1:
        raise ValueError(f"timed_bytes must be >= 1, got {timed_bytes!r}")

    def call(n: int, timed: bool) -> ProbeCall:
        return ProbeCall(n, 0, timed, direction) if direction == "up" else ProbeCall(0, n, timed, direction)

    calls = [call(config.omit_bytes, False)] if config.omit_bytes > 0 else []
    calls.append(call(timed_bytes, True))
    return calls


def probe_sample(call: ProbeCall, seconds: float, stamp: float, received_bytes: int) -> BandwidthSample:
    """The goodput sample of a timed call that took `seconds` (the whole call, so overhead counts against it).

    `received_bytes` is what came back (reply length for "down", the server's count for "up"); a short
    transfer (server cap, truncation) is refused rather than turned into a wrong figure.
    """
    if not call.timed:
        raise ValueError("only the timed call of a probe gives a sample")
    if received_bytes != call.measured_bytes:
        raise InvalidSample(f"probe moved {received_bytes} B, expected {call.measured_bytes} B")
    return BandwidthSample(float(call.measured_bytes), float(seconds), SOURCE_PROBE, float(stamp)).validate()


class DutyBudget:
    """Link time spent on probes over a sliding window, so probes stay under a duty cycle."""

    def __init__(self, window_s: float) -> None:
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"window_s must be > 0 and finite, got {window_s!r}")
        self.window_s = window_s
        self._spans: Deque[Tuple[float, float]] = deque()  # (start, end)

    def record(self, start: float, end: float) -> None:
        """Count a probe that occupied the link from `start` to `end`."""
        if end < start:
            raise ValueError(f"probe ends ({end}) before it starts ({start})")
        self._spans.append((start, end))

    def used(self, now: float) -> float:
        """Probe seconds inside [now - window_s, now]."""
        horizon = now - self.window_s
        while self._spans and self._spans[0][1] <= horizon:
            self._spans.popleft()
        return sum(end - max(start, horizon) for start, end in self._spans)

    def allows(self, now: float, duration_s: float, duty: float) -> bool:
        """Whether a probe of `duration_s` may start now: the window's probe share stays <= duty, and probes are
        paced (the last one, of length d, is followed by d * (1/duty - 1) of quiet) so they do not come in bursts."""
        if duty <= 0:
            return False
        if self._spans:
            start, end = self._spans[-1]
            if now < end + (end - start) * (1.0 / duty - 1.0):
                return False
        return self.used(now) + duration_s <= duty * self.window_s


class LinkActivity:
    """When tile traffic was last seen and when the next frame is expected, from per-frame stats messages."""

    def __init__(self, history: int = 8) -> None:
        self._arrivals: Deque[float] = deque(maxlen=history)
        self._latencies: Deque[float] = deque(maxlen=history)
        self.last_traffic: Optional[float] = None

    def on_frame(self, now: float, latency_s: float) -> None:
        """A frame's stats arrived at `now` (its tiles moved during the `latency_s` before)."""
        self._arrivals.append(now)
        if math.isfinite(latency_s) and latency_s >= 0:
            self._latencies.append(latency_s)
        self.last_traffic = now

    def on_traffic(self, now: float) -> None:
        """Any other sign of tile traffic (e.g. a passive-sample message)."""
        self.last_traffic = now if self.last_traffic is None else max(self.last_traffic, now)

    def inference_running(self, now: float, window_s: float) -> bool:
        return bool(self._arrivals) and now - self._arrivals[-1] <= window_s

    def quiet_for(self, now: float) -> float:
        """Seconds since the last traffic (inf when none was ever seen)."""
        return math.inf if self.last_traffic is None else now - self.last_traffic

    def next_frame_start(self) -> Optional[float]:
        """When the next frame's traffic is expected: last frame end + median period - median latency."""
        if len(self._arrivals) < 2:
            return None
        arrivals = list(self._arrivals)
        period = statistics.median(b - a for a, b in zip(arrivals, arrivals[1:]))
        latency = statistics.median(self._latencies) if self._latencies else 0.0
        return arrivals[-1] + max(period - latency, 0.0)

    def probe_fits(self, now: float, duration_s: float, config: ProbeConfig) -> bool:
        """True when the link has been quiet for idle_gap_s and, while inference runs, the probe ends before the
        next frame is due (minus guard_s)."""
        if self.quiet_for(now) < config.idle_gap_s:
            return False
        if not self.inference_running(now, config.active_window_s):
            return True
        nxt = self.next_frame_start()
        if nxt is None:
            return True  # one frame seen, no period yet: the duty budget alone limits probes
        return now + duration_s <= nxt - config.guard_s


def passive_sample(
    bytes_up: int, bytes_down: int, transmit_s: float, stamp: float, min_bytes: int
) -> Optional[BandwidthSample]:
    """A goodput sample from one frame's tile transfers, or None when they were too small to tell.

    InferenceStats gives bytes each way and `transmit_s`, the wall time during which at least one tile was in
    flight. The larger direction over that time is used: when both directions overlapped it is a lower bound
    of the per-direction rate, never an overestimate from adding two directions that ran in parallel. Frames
    with fewer than `min_bytes` in that direction are skipped (their time is latency, burst allowance and
    per-message overhead, not bandwidth). Raises InvalidSample for negative/NaN figures.
    """
    for name, value in (("bytes_up", bytes_up), ("bytes_down", bytes_down), ("transmit_s", transmit_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidSample(f"{name} must be a finite number >= 0, got {value!r}")
    nbytes = max(bytes_up, bytes_down)
    if nbytes < max(min_bytes, 1):
        return None
    if transmit_s <= 0:
        raise InvalidSample(f"{nbytes} B moved in transmit_s={transmit_s!r}")
    return BandwidthSample(float(nbytes), float(transmit_s), SOURCE_PASSIVE, float(stamp)).validate()
