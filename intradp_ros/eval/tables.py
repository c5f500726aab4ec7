"""Evaluation tables in the seeds' format: per system and trace, mean and std of inference time and transmission
time, transmission share, power and energy per inference; plus the goal check (Intra-DP mean latency at most
0.8x the best other system, lowest energy among the distributed systems).

Inputs are records from intradp_ros.results.stats_records (one per frame). The aggregates (Summary, summarize,
undilate: frames with an `error` counted, not averaged; times undilated by the testbed's factor k) live in
intradp_ros.results.aggregates and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intradp_ros.results.aggregates import (  # noqa: F401 - re-exported for the evaluation tools
    CODEC_SUFFIX,
    DISTRIBUTED,
    SYSTEM_LABELS,
    SYSTEMS,
    Summary,
    _mean_std,
    ordered_systems,
    ordered_traces,
    summarize,
    system_label,
    undilate,
)

LATENCY_GOAL_RATIO = 0.8


def _pm(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(v: float, fmt: str) -> str:
    return "-" if math.isnan(v) else format(v, fmt)


def format_table(
    summaries: Mapping[tuple[str, str], Summary], title: str = "", time_unit: str = "s", k: float = 1.0
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
        row = [system_label(sysname)]
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


def has_bench_columns(summaries: Mapping[tuple[str, str], Summary]) -> bool:
    """True if any summary carries a prediction, a floor or a non-model CPU figure."""
    return any(
        not (math.isnan(s.predicted_mean_s) and math.isnan(s.floor_mean_s) and math.isnan(s.nonmodel_share))
        for s in summaries.values()
    )


def format_prediction_table(
    summaries: Mapping[tuple[str, str], Summary], title: str = "", time_unit: str = "ms", k: float = 1.0
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
                        system_label(sysname),
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


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def fell_back_local(row: Mapping[str, Any]) -> bool:
    """True when a record's frame fell back to local inference (its flag, as a bool or as CSV text)."""
    return str(row.get("fell_back_local", "")).strip().lower() in ("1", "true", "yes")


def format_plans(records: Any) -> str:
    """Per trace and system, the plans its frames ran with their tiles up per frame (a streamed plan sends its
    input, or the rows it cuts there, in one tile per row band, so tiles up > 1 on a server-only-like plan means
    bands ran), and per trace Intra-DP / server-only, measured and predicted (means of the frames with a result;
    frames that fell back to local inference left out, as in the goal lines)."""
    clean = [r for r in records if not r.get("error") and not fell_back_local(r)]
    runs: dict[tuple[str, str], dict[str, list[int]]] = {}
    for r in clean:
        system = str(r.get("system") or r.get("mode") or "")
        plan = str(r.get("plan_name") or r.get("plan_id") or "?")
        runs.setdefault((str(r.get("trace", "")), system), {}).setdefault(plan, []).append(int(r["tiles_up"]))
    if not runs:
        return "Plans run: (no frame with a result)"
    lines = ["Plans run (tiles up per frame: a streamed plan sends one tile per row band):"]
    sums = summarize(clean)
    for trace in ordered_traces(t for t, _ in runs):
        for system in ordered_systems(n for t, n in runs if t == trace):
            plans = runs[(trace, system)]
            text = ", ".join(f"{name} x{len(t)} (tiles up {_span(t)})" for name, t in sorted(plans.items()))
            lines.append(f"- {trace} / {system_label(system)}: {text}")
        mine, base = sums.get((trace, "intradp")), sums.get((trace, "server_only"))
        if mine is not None and base is not None and base.latency_mean_s > 0:
            pred = mine.predicted_mean_s / base.predicted_mean_s if base.predicted_mean_s > 0 else float("nan")
            lines.append(
                f"- {trace}: Intra-DP / server-only measured {mine.latency_mean_s / base.latency_mean_s:.2f}x "
                f"(predicted {_num(pred, '.2f')}x)"
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
            f"({system_label(self.best_other)}); goal <= {LATENCY_GOAL_RATIO:g}x: "
            f"{'met' if self.latency_met else 'NOT met'}"
        )
        if self.lowest_energy_other == "-":
            en = f"{self.trace}: Intra-DP energy: no other distributed system has frames to compare with: not judged"
        else:
            en = (
                f"{self.trace}: Intra-DP energy per inference = {self.energy_ratio:.2f}x the lowest other "
                f"distributed system ({system_label(self.lowest_energy_other)}), "
                f"rank {self.energy_rank}; goal lowest: {'met' if self.energy_met else 'NOT met'}"
            )
        return lat + "\n" + en


def check_goals(summaries: Mapping[tuple[str, str], Summary]) -> list[GoalResult]:
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
        energy_met = rank == 1 and low_name != "-"  # nothing to rank against is not a win
        out.append(
            GoalResult(trace, ratio, best.system, ratio <= LATENCY_GOAL_RATIO, rank, low_name, e_ratio, energy_met)
        )
    return out


def codec_goal_lines(
    records: Sequence[Mapping[str, Any]], target: float | None, add_nonmodel: bool = False
) -> list[str]:
    """Per trace, issue 12's codec goal: Intra-DP + lossless codecs (+ streaming) mean latency / raw server-only
    mean latency, measured, predicted (where the records carry predictions) and the floor, beside `target`.
    Frames with an error count for neither side. `add_nonmodel` (the system benchmark, whose robot codes inside a
    dilated CPU quota, faster than a robot would): also the ratio with each side's `nonmodel_cpu_s` (the faithful
    codec and wire CPU) added to its latency (serially: an upper bound, since a streamed plan overlaps coding)."""

    def mean(rows: Sequence[Mapping[str, Any]], key: str) -> float:
        vals = [float(r[key]) for r in rows if str(r.get(key, "")) != ""]
        return sum(vals) / len(vals) if vals else float("nan")

    ok = [r for r in records if not r.get("error")]
    lines = []
    for t in ordered_traces({str(r["trace"]) for r in ok}):
        mine = [r for r in ok if r["trace"] == t and r["system"] == "intradp" + CODEC_SUFFIX]
        base = [r for r in ok if r["trace"] == t and r["system"] == "server_only"]
        if not mine or not base:
            lines.append(f"  {t}: (needs intradp{CODEC_SUFFIX} and server_only results)")
            continue
        meas = mean(mine, "latency_s") / mean(base, "latency_s")
        pred = mean(mine, "predicted_s") / mean(base, "predicted_s")
        floor = mean(mine, "floor_s") / mean(base, "predicted_s")
        verdict = "" if target is None else (" MET" if meas <= target else f" MISSED by {meas - target:+.3f}")
        goal = f" (goal <= {target:g}{verdict})" if target is not None else ""
        lines.append(f"  {t}: measured {meas:.3f}x, predicted {pred:.3f}x, floor {floor:.3f}x of raw server-only{goal}")
        if add_nonmodel:
            charged = (mean(mine, "latency_s") + mean(mine, "nonmodel_cpu_s")) / (
                mean(base, "latency_s") + mean(base, "nonmodel_cpu_s")
            )
            if math.isfinite(charged):
                lines.append(
                    f"  {t}: with the non-model CPU (codecs, wire) at a robot's cost added: {charged:.3f}x"
                    + (f" ({'MET' if charged <= target else 'MISSED'})" if target is not None else "")
                )
    return lines


def frame_line(rec: Mapping[str, Any], k: float = 1.0, link_mbit: float | None = None) -> str:
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
