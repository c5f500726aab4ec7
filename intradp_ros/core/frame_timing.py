"""Where one frame's time went on the robot, from measured intervals (ROS-free, so it is unit-tested).

Inputs, all on one wall clock (robot and server clocks are assumed synchronised, as in the testbed where
both namespaces share the kernel clock; on real machines run chrony/NTP):
- the frame's [start, end) on the robot,
- the robot's idle intervals (its executor waiting for rows it does not have),
- tiles in flight: up tiles from the robot's send to the server's receipt, down tiles from the server's send
  stamp to the robot's receipt.
Outputs (InferenceStats): transmit_s = time with at least one tile in flight; robot_transmit_only_s = idle
time while one of the robot's own tiles was still in flight; robot_wait_s = the rest of the idle time;
robot_compute_s = everything else, so compute + transmit_only + wait == latency exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Interval = tuple[float, float]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint union of half-open intervals (empty and inverted ones dropped)."""
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in intervals if b > a):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def clip(intervals: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    """The parts of `intervals` inside [lo, hi)."""
    return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]


def length(intervals: Iterable[Interval]) -> float:
    """Total length of the union."""
    return sum(b - a for a, b in merge(intervals))


def intersect(x: Sequence[Interval], y: Sequence[Interval]) -> list[Interval]:
    """Intersection of two unions of intervals."""
    xs, ys = merge(x), merge(y)
    out: list[Interval] = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if b > a:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


@dataclass(frozen=True)
class FrameBreakdown:
    """Robot-side shares of one frame's latency (they add up to latency_s)."""

    latency_s: float
    compute_s: float
    transmit_only_s: float
    wait_s: float
    transmit_s: float

    def check(self, tol: float = 1e-9) -> None:
        total = self.compute_s + self.transmit_only_s + self.wait_s
        if abs(total - self.latency_s) > tol or min(self.compute_s, self.transmit_only_s, self.wait_s) < -tol:
            raise AssertionError(f"breakdown does not add up: {self}")


def breakdown(
    start: float, end: float, idle: Sequence[Interval], up_flight: Sequence[Interval], down_flight: Sequence[Interval]
) -> FrameBreakdown:
    """Split [start, end) into compute / transmit-only / wait and measure the time with tiles in flight."""
    if end < start:
        raise ValueError(f"frame ends ({end}) before it starts ({start})")
    latency = end - start
    idle_u = merge(clip(idle, start, end))
    up_u = merge(clip(up_flight, start, end))
    flight_u = merge(clip(list(up_flight) + list(down_flight), start, end))
    idle_s = length(idle_u)
    transmit_only = length(intersect(idle_u, up_u))
    wait = idle_s - transmit_only
    compute = latency - idle_s
    return FrameBreakdown(latency, max(compute, 0.0), transmit_only, max(wait, 0.0), length(flight_u))
