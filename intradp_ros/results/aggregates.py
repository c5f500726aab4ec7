"""Per-system aggregates of frame records: mean and std of inference and transmission time, transmission share,
power and energy per inference, per system and trace; and the undilation of a summary by a time-dilation factor.

Inputs are records from intradp_ros.results.stats_records (one per frame). Frames with an `error` are counted,
not averaged. Time dilation: with a factor k (docs/testbed.md), measured times are k times the times of the
system the testbed stands for; `undilate(summary, k)` gives those (energy too: the same power over 1/k of the
time). Rendering the tables is tooling: intradp_ros.eval.tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from intradp_ros.core.vocabulary import DISTRIBUTED_MODES, MODE_LABELS, TABLE_ORDER

SYSTEMS: Sequence[str] = TABLE_ORDER
SYSTEM_LABELS: Mapping[str, str] = MODE_LABELS
DISTRIBUTED: Sequence[str] = DISTRIBUTED_MODES
CODEC_SUFFIX = "+codecs"  # a system given the lossless codecs the cost model chooses ("intradp+codecs")


def system_label(system: str) -> str:
    """Display name of a record's system, codec variants included ("intradp+codecs" -> "Intra-DP+codecs")."""
    base, plus, variant = system.partition("+")
    return SYSTEM_LABELS.get(base, base) + plus + variant


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
    predicted_mean_s: float = float("nan")  # cost model's latency for the plans that ran (frames that have one)
    floor_mean_s: float = float("nan")  # mean physical floor of the frames
    ratio_pred: float = float("nan")  # mean over frames of measured / predicted
    ratio_floor: float = float("nan")  # mean over frames of measured / floor
    nonmodel_share: float = float("nan")  # non-model CPU seconds / latency (means)
    k: float = float("nan")  # the workload's time dilation, where recorded

    @property
    def label(self) -> str:
        return system_label(self.system)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Summary]:
    """{(trace, system): Summary} over the records (keys `trace`, `system` or `mode`, and the stats fields)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
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
        extra = _bench_columns(ok, lat_m)
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
            **extra,
        )
    return out


def _finite(rec: Mapping[str, Any], key: str) -> float | None:
    try:
        v = float(rec.get(key, float("nan")))
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bench_columns(ok: Sequence[Mapping[str, Any]], lat_mean: float) -> dict[str, float]:
    """Predicted, floor and non-model columns over the frames that carry them (NaN where none does)."""
    nan = float("nan")

    def mean_of(key: str) -> float:
        vals = [v for v in (_finite(r, key) for r in ok) if v is not None]
        return float(np.mean(vals)) if vals else nan

    def ratio_of(key: str) -> float:
        pairs = [(float(r["latency_s"]), _finite(r, key)) for r in ok]
        vals = [lat / ref for lat, ref in pairs if ref is not None and ref > 0]
        return float(np.mean(vals)) if vals else nan

    nonmodel = mean_of("nonmodel_cpu_s")
    return {
        "predicted_mean_s": mean_of("predicted_s"),
        "floor_mean_s": mean_of("floor_s"),
        "ratio_pred": ratio_of("predicted_s"),
        "ratio_floor": ratio_of("floor_s"),
        "nonmodel_share": nonmodel / lat_mean if lat_mean > 0 and not math.isnan(nonmodel) else nan,
        "k": mean_of("k"),
    }


def undilate(s: Summary, k: float) -> Summary:
    """The summary in the undilated world: times and energies divided by k (power, share and bytes unchanged)."""
    if not (k > 0 and math.isfinite(k)):
        raise ValueError(f"dilation factor must be > 0 and finite, got {k!r}")
    return replace(
        s,
        predicted_mean_s=s.predicted_mean_s / k,
        floor_mean_s=s.floor_mean_s / k,
        latency_mean_s=s.latency_mean_s / k,
        latency_std_s=s.latency_std_s / k,
        transmit_mean_s=s.transmit_mean_s / k,
        transmit_std_s=s.transmit_std_s / k,
        energy_mean_j=s.energy_mean_j / k,
        energy_std_j=s.energy_std_j / k,
    )


def ordered_systems(present: Iterable[str]) -> list[str]:
    """SYSTEMS order first, then anything else alphabetically."""
    present = set(present)
    return [s for s in SYSTEMS if s in present] + sorted(present - set(SYSTEMS))


def ordered_traces(present: Iterable[str]) -> list[str]:
    present = set(present)
    return [t for t in ("indoor", "outdoor") if t in present] + sorted(present - {"indoor", "outdoor"})
