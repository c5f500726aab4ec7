"""Evaluation tables in the seeds' format: per system and trace, mean and std of inference time and transmission
time, transmission share, power and energy per inference; plus the goal check (Intra-DP mean latency at most
0.8x the best other system, lowest energy among the distributed systems).

Inputs are records from intradp_ros.eval.stats_recorder (one per frame). Frames with an `error` are counted,
not averaged. Time dilation: with a factor k (DESIGN.md), measured times are k times the times of the system
the testbed stands for; `undilate(summary, k)` gives those (energy too: the same power over 1/k of the time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

SYSTEMS: Sequence[str] = ("device_only", "server_only", "dsccs", "spso_ga", "intradp")
SYSTEM_LABELS: Mapping[str, str] = {
    "device_only": "Device-only",
    "server_only": "Server-only",
    "dsccs": "DSCCS",
    "spso_ga": "SPSO-GA",
    "intradp": "Intra-DP",
}
DISTRIBUTED: Sequence[str] = ("server_only", "dsccs", "spso_ga", "intradp")
LATENCY_GOAL_RATIO = 0.8


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


def _finite(rec: Mapping[str, Any], key: str) -> Optional[float]:
    try:
        v = float(rec.get(key, float("nan")))
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bench_columns(ok: Sequence[Mapping[str, Any]], lat_mean: float) -> Dict[str, float]:
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


def ordered_systems(present: Iterable[str]) -> List[str]:
    """SYSTEMS order first, then anything else alphabetically."""
    present = set(present)
    return [s for s in SYSTEMS if s in present] + sorted(present - set(SYSTEMS))


def ordered_traces(present: Iterable[str]) -> List[str]:
    present = set(present)
    return [t for t in ("indoor", "outdoor") if t in present] + sorted(present - {"indoor", "outdoor"})


def _pm(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(v: float, fmt: str) -> str:
    return "-" if math.isnan(v) else format(v, fmt)


def format_table(
    summaries: Mapping[Tuple[str, str], Summary], title: str = "", time_unit: str = "s", k: float = 1.0
) -> str:
    """Markdown table in the seeds' layout: one row per system; per trace the inference time, transmission time
    (mean ± std), transmission share, power and energy per inference. `k` != 1 divides times and energy by k."""
    scale = 1e3 if time_unit == "ms" else 1.0
    digits = 0 if time_unit == "ms" and k == 1.0 else (1 if time_unit == "ms" else 3)
    traces = ordered_traces(t for t, _ in summaries)
    systems = ordered_systems(s for _, s in summaries)
    head = ["system"]
    for t in traces:
        head += [
            f"{t} inference ({time_unit})",
            f"{t} transmission ({time_unit})",
            f"{t} trans. share",
            f"{t} power (W)",
            f"{t} energy (J)",
            f"{t} frames",
        ]
    lines = []
    if title:
        lines.append(title)
        lines.append("")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for sysname in systems:
        row = [SYSTEM_LABELS.get(sysname, sysname)]
        for t in traces:
            s = summaries.get((t, sysname))
            if s is None:
                row += ["-"] * 6
                continue
            if k != 1.0:
                s = undilate(s, k)
            frames = (
                f"{s.frames}"
                + (f" ({s.errors} err)" if s.errors else "")
                + (f" ({s.fallbacks} local)" if s.fallbacks else "")
            )
            row += [
                _pm(s.latency_mean_s * scale, s.latency_std_s * scale, digits),
                _pm(s.transmit_mean_s * scale, s.transmit_std_s * scale, digits),
                _num(100 * s.transmit_share, ".1f") + ("" if math.isnan(s.transmit_share) else " %"),
                _num(s.power_mean_w, ".2f"),
                _pm(s.energy_mean_j, s.energy_std_j, 3 if k == 1.0 else 4),
                frames,
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


PREDICTION_GOAL = 0.15  # measured within 15 % of the cost model's prediction


def has_bench_columns(summaries: Mapping[Tuple[str, str], Summary]) -> bool:
    """True if any summary carries a prediction, a floor or a non-model CPU figure."""
    return any(
        not (math.isnan(s.predicted_mean_s) and math.isnan(s.floor_mean_s) and math.isnan(s.nonmodel_share))
        for s in summaries.values()
    )


def format_prediction_table(
    summaries: Mapping[Tuple[str, str], Summary], title: str = "", time_unit: str = "ms", k: float = 1.0
) -> str:
    """One row per trace and system: k, measured latency, the cost model's prediction for the plans that ran,
    measured/predicted (goal within 15 %), the physical floor, latency as a multiple of the floor and the share of
    latency spent in non-model CPU work. `k` != 1 divides times by k (ratios are unchanged)."""
    scale = 1e3 if time_unit == "ms" else 1.0
    digits = 1 if time_unit == "ms" else 3
    head = [
        "trace",
        "system",
        "k",
        f"measured ({time_unit})",
        f"predicted ({time_unit})",
        "meas/pred",
        f"floor ({time_unit})",
        "x floor",
        "non-model CPU",
        "frames",
    ]
    lines = [title, ""] if title else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|")
    for trace in ordered_traces(t for t, _ in summaries):
        for sysname in ordered_systems(n for t, n in summaries if t == trace):
            s = summaries[(trace, sysname)]
            if k != 1.0:
                s = undilate(s, k)
            rp = s.ratio_pred
            rp_text = _num(rp, ".2f") + ("" if math.isnan(rp) else (" ✓" if abs(rp - 1) <= PREDICTION_GOAL else " ✗"))
            lines.append(
                "| "
                + " | ".join(
                    [
                        trace,
                        SYSTEM_LABELS.get(sysname, sysname),
                        _num(s.k, ".3g"),
                        _pm(s.latency_mean_s * scale, s.latency_std_s * scale, digits),
                        _num(s.predicted_mean_s * scale, f".{digits}f"),
                        rp_text,
                        _num(s.floor_mean_s * scale, f".{digits}f"),
                        _num(s.ratio_floor, ".2f"),
                        _num(100 * s.nonmodel_share, ".1f") + ("" if math.isnan(s.nonmodel_share) else " %"),
                        str(s.frames) + (f" ({s.errors} err)" if s.errors else ""),
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class GoalResult:
    """The two benchmark goals on one trace."""

    trace: str
    latency_ratio: float  # Intra-DP mean latency / best other system's
    best_other: str
    latency_met: bool
    energy_rank: int  # 1 = lowest energy among the distributed systems
    lowest_energy_other: str
    energy_ratio: float  # Intra-DP energy / lowest other distributed system's
    energy_met: bool

    def describe(self) -> str:
        lat = (
            f"{self.trace}: Intra-DP mean latency = {self.latency_ratio:.2f}x the best other system "
            f"({SYSTEM_LABELS.get(self.best_other, self.best_other)}); goal <= {LATENCY_GOAL_RATIO:g}x: "
            f"{'met' if self.latency_met else 'NOT met'}"
        )
        en = (
            f"{self.trace}: Intra-DP energy per inference = {self.energy_ratio:.2f}x the lowest other distributed "
            f"system ({SYSTEM_LABELS.get(self.lowest_energy_other, self.lowest_energy_other)}), rank "
            f"{self.energy_rank}; goal lowest: {'met' if self.energy_met else 'NOT met'}"
        )
        return lat + "\n" + en


def check_goals(summaries: Mapping[Tuple[str, str], Summary]) -> List[GoalResult]:
    """Goal figures for every trace that has Intra-DP and at least one other system with results."""
    out = []
    for trace in ordered_traces(t for t, _ in summaries):
        mine = summaries.get((trace, "intradp"))
        if mine is None or mine.frames == 0:
            continue
        others = [s for (t, name), s in summaries.items() if t == trace and name != "intradp" and s.frames > 0]
        if not others:
            continue
        best = min(others, key=lambda s: s.latency_mean_s)
        ratio = mine.latency_mean_s / best.latency_mean_s if best.latency_mean_s > 0 else float("inf")
        dist = [s for s in others if s.system in DISTRIBUTED]
        if dist:
            low = min(dist, key=lambda s: s.energy_mean_j)
            e_ratio = mine.energy_mean_j / low.energy_mean_j if low.energy_mean_j > 0 else float("inf")
            rank = 1 + sum(1 for s in dist if s.energy_mean_j < mine.energy_mean_j)
            low_name = low.system
        else:
            e_ratio, rank, low_name = float("nan"), 1, "-"
        out.append(
            GoalResult(trace, ratio, best.system, ratio <= LATENCY_GOAL_RATIO, rank, low_name, e_ratio, rank == 1)
        )
    return out


def frame_line(rec: Mapping[str, Any], k: float = 1.0, link_mbit: Optional[float] = None) -> str:
    """One live console line per frame: system, frame, latency and its breakdown, plan, bandwidth estimate."""
    system = rec.get("system") or rec.get("mode") or "?"
    if rec.get("error"):
        return f"[{system:>11}] frame {rec.get('frame', '?'):>3}  ERROR {rec['error']}"
    lat = float(rec["latency_s"])
    parts = (
        f"compute {float(rec['robot_compute_s']):6.3f}  tx-only {float(rec['robot_transmit_only_s']):6.3f}  "
        f"wait {float(rec['robot_wait_s']):6.3f}"
    )
    und = f" (= {lat / k * 1e3:7.1f} ms undilated)" if k != 1.0 else ""
    link = f"  link {link_mbit:6.2f}" if link_mbit is not None and not math.isnan(link_mbit) else ""
    local = "  LOCAL" if rec.get("fell_back_local") else ""
    return (
        f"[{system:>11}] frame {rec.get('frame', '?'):>3}  latency {lat:7.3f} s{und}  {parts}  "
        f"up {int(rec['bytes_up']) / 1e3:8.1f} kB down {int(rec['bytes_down']) / 1e3:8.1f} kB  "
        f"plan {rec.get('plan_name') or rec.get('plan_id')}  est {float(rec['bandwidth_estimate_mbit_per_s']):6.2f} "
        f"Mbit/s{link}  energy {float(rec['energy_j']):6.3f} J{local}"
    )
