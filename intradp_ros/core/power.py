"""Robot power model: energy per inference from the robot's timeline.

At every instant the robot is in one state, by priority: computing (its executor runs an operator),
transmitting (a tile is on the link in either direction: the radio is busy sending or receiving),
or standby. Energy = sum of state power x time in state. Defaults are the seeds' measured figures
(13.35 W computing, 4.25 W transmitting, 4.04 W standby); pass your robot's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PowerModel:
    """Watts per robot state."""

    compute_w: float = 13.35
    transmit_w: float = 4.25
    standby_w: float = 4.04

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerModel:
        return cls(
            float(d.get("compute_w", cls.compute_w)),
            float(d.get("transmit_w", cls.transmit_w)),
            float(d.get("standby_w", cls.standby_w)),
        )

    def energy(self, latency: float, compute_s: float, transmit_only_s: float) -> float:
        """Joules for one inference given time computing and time transmitting while not computing."""
        standby = max(latency - compute_s - transmit_only_s, 0.0)
        return self.compute_w * compute_s + self.transmit_w * transmit_only_s + self.standby_w * standby


def union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    """Total length covered by intervals [starts[i], ends[i])."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    # a new run starts where an interval begins after every earlier one ended
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1]
    idx = np.flatnonzero(new)
    run_starts = s[idx]
    run_ends = np.append(run_end[idx[1:] - 1], run_end[-1])
    return float(np.sum(run_ends - run_starts))


def outside_length(starts: np.ndarray, ends: np.ndarray, busy_starts: np.ndarray, busy_ends: np.ndarray) -> float:
    """Length of the union of [starts, ends) not covered by the union of [busy_starts, busy_ends)."""
    both = union_length(np.concatenate([starts, busy_starts]), np.concatenate([ends, busy_ends]))
    return max(both - union_length(busy_starts, busy_ends), 0.0)


def robot_energy(
    model: PowerModel, latency: float, compute: Sequence[tuple[float, float]], link: Sequence[tuple[float, float]]
) -> tuple[float, float]:
    """(joules, seconds transmitting while not computing) for a robot timeline of compute and link intervals."""
    cs = np.array([c[0] for c in compute], dtype=float)
    ce = np.array([c[1] for c in compute], dtype=float)
    ls = np.array([x[0] for x in link], dtype=float)
    le = np.array([x[1] for x in link], dtype=float)
    # only the part of the link activity inside the inference counts
    le = np.minimum(le, latency)
    keep = le > ls
    tx_only = outside_length(ls[keep], le[keep], cs, ce)
    comp = union_length(cs, ce)
    return model.energy(latency, comp, tx_only), tx_only
