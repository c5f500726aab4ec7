"""Per-system aggregates of frame records: mean and std of inference and transmission time, transmission share,
power and energy per inference, per system and trace; and the undilation of a summary by a time-dilation factor.

Inputs are records from intradp_ros.results.stats_records (one per frame). Frames with an `error` are counted,
not averaged. Time dilation: with a factor k (docs/testbed.md), measured times are k times the times of the
system the testbed stands for; `undilate(summary, k)` gives those (energy too: the same power over 1/k of the
time). Rendering the tables is tooling: intradp_ros.eval.tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from intradp_ros.core.vocabulary import DISTRIBUTED_MODES, MODE_LABELS, TABLE_ORDER

SYSTEMS: Sequence[str] = TABLE_ORDER
SYSTEM_LABELS: Mapping[str, str] = MODE_LABELS
DISTRIBUTED: Sequence[str] = DISTRIBUTED_MODES


@dataclass(frozen=True)
class Summary:
    """One system on one trace."""

    system: str
    trace: str
    frames: int  # frames with a result (no error)
    errors: int  # frames that ended with an error
    fallbacks: int  # frames (partly) finished locally
    latency_mean_s: float
    latency_std_s: float
    transmit_mean_s: float
    transmit_std_s: float
    transmit_share: float  # mean transmission time / mean inference time
    power_mean_w: float  # mean energy / mean inference time
    energy_mean_j: float
    energy_std_j: float
    bytes_up_mean: float
    bytes_down_mean: float

    @property
    def label(self) -> str:
        return SYSTEM_LABELS.get(self.system, self.system)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(records: Iterable[Mapping[str, Any]]) -> Dict[Tuple[str, str], Summary]:
    """{(trace, system): Summary} over the records (keys `trace`, `system` or `mode`, and the stats fields)."""
    groups: Dict[Tuple[str, str], List[Mapping[str, Any]]] = {}
    for rec in records:
        system = str(rec.get("system") or rec.get("mode") or "")
        groups.setdefault((str(rec.get("trace", "")), system), []).append(rec)
    out = {}
    for (trace, system), recs in groups.items():
        ok = [r for r in recs if not r.get("error")]
        lat_m, lat_s = _mean_std([float(r["latency_s"]) for r in ok])
        tx_m, tx_s = _mean_std([float(r["transmit_s"]) for r in ok])
        en_m, en_s = _mean_std([float(r["energy_j"]) for r in ok])
        share = tx_m / lat_m if ok and lat_m > 0 else float("nan")
        power = en_m / lat_m if ok and lat_m > 0 else float("nan")
        up = float(np.mean([float(r["bytes_up"]) for r in ok])) if ok else float("nan")
        down = float(np.mean([float(r["bytes_down"]) for r in ok])) if ok else float("nan")
        out[(trace, system)] = Summary(
            system,
            trace,
            len(ok),
            len(recs) - len(ok),
            sum(1 for r in ok if r.get("fell_back_local")),
            lat_m,
            lat_s,
            tx_m,
            tx_s,
            share,
            power,
            en_m,
            en_s,
            up,
            down,
        )
    return out


def undilate(s: Summary, k: float) -> Summary:
    """The summary in the undilated world: times and energies divided by k (power, share and bytes unchanged)."""
    if not (k > 0 and math.isfinite(k)):
        raise ValueError(f"dilation factor must be > 0 and finite, got {k!r}")
    return replace(
        s,
        latency_mean_s=s.latency_mean_s / k,
        latency_std_s=s.latency_std_s / k,
        transmit_mean_s=s.transmit_mean_s / k,
        transmit_std_s=s.transmit_std_s / k,
        energy_mean_j=s.energy_mean_j / k,
        energy_std_j=s.energy_std_j / k,
    )


def ordered_systems(present: Iterable[str]) -> List[str]:
    """SYSTEMS order first, then anything else alphabetically."""
    present = set(present)
    return [s for s in SYSTEMS if s in present] + sorted(present - set(SYSTEMS))


def ordered_traces(present: Iterable[str]) -> List[str]:
    present = set(present)
    return [t for t in ("indoor", "outdoor") if t in present] + sorted(present - {"indoor", "outdoor"})
