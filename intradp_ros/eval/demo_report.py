"""The demo's side-by-side comparison: one row per system (Intra-DP, server-only sending raw pixels, device-only)
with undilated latency, bytes per frame, energy per frame, the cost model's prediction and the physical floor where
the evaluation computed them, and each latency as a ratio to the reference system (server-only, raw pixels).

Pure functions over the evaluation's summaries (intradp_ros.results.aggregates.Summary) and frame records, so the
table the demo prints and the plot it saves (eval/plots.plot_comparison) come from the same rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intradp_ros.results.aggregates import Summary, undilate

# What each system is in the demo (the client's mode plus how the camera frame travels; demo.DEMO_MODES).
DEMO_LABELS: Mapping[str, str] = {
    "intradp": "Intra-DP (camera JPEG passthrough allowed)",
    "server_only": "Server-only, raw pixels (the seeds' way)",
    "server_only_jpeg": "Server-only, camera JPEG (passthrough, whole input)",
    "device_only": "Device-only",
}
REFERENCE = "server_only"


@dataclass(frozen=True)
class SystemRow:
    """One system of the demo, undilated (times / k), per frame."""

    system: str
    label: str
    frames: int
    errors: int
    fallbacks: int
    latency_ms: float  # mean
    latency_std_ms: float
    measured_s: float  # mean latency on the testbed (dilated)
    bytes_up: float
    bytes_down: float
    energy_j: float  # robot energy per frame, undilated
    predicted_ms: float  # the cost model's latency for the plans that ran (NaN where not computed)
    floor_ms: float  # the frame's physical floor (NaN where not computed)
    x_floor: float  # mean over frames of latency / floor
    vs_reference: float  # latency_ms / the reference system's latency_ms (NaN without a reference)


def comparison_rows(
    summaries: Mapping[tuple[str, str], Summary],
    trace: str,
    k: float,
    systems: Sequence[str],
    labels: Mapping[str, str] = DEMO_LABELS,
    reference: str = REFERENCE,
) -> list[SystemRow]:
    """The rows of `systems` (in that order; systems without a summary on `trace` are left out), undilated by k."""
    ref = summaries.get((trace, reference))
    ref_ms = undilate(ref, k).latency_mean_s * 1e3 if ref is not None and ref.frames else float("nan")
    rows = []
    for system in systems:
        s = summaries.get((trace, system))
        if s is None:
            continue
        u = undilate(s, k)
        lat_ms = u.latency_mean_s * 1e3
        rows.append(
            SystemRow(
                system=system,
                label=labels.get(system, s.label),
                frames=s.frames,
                errors=s.errors,
                fallbacks=s.fallbacks,
                latency_ms=lat_ms,
                latency_std_ms=u.latency_std_s * 1e3,
                measured_s=s.latency_mean_s,
                bytes_up=s.bytes_up_mean,
                bytes_down=s.bytes_down_mean,
                energy_j=u.energy_mean_j,
                predicted_ms=u.predicted_mean_s * 1e3,
                floor_ms=u.floor_mean_s * 1e3,
                x_floor=s.ratio_floor,
                vs_reference=lat_ms / ref_ms if ref_ms > 0 else float("nan"),
            )
        )
    return rows


def _num(v: float, fmt: str, suffix: str = "") -> str:
    return "-" if math.isnan(v) else format(v, fmt) + suffix


def _kb(v: float) -> str:
    return "-" if math.isnan(v) else f"{v / 1e3:.1f}"


def format_comparison(rows: Sequence[SystemRow], k: float, title: str = "") -> str:
    """Markdown table, one row per system: latency (undilated mean ± std and the measured dilated mean), kB up and
    down per frame, energy per frame, predicted, floor, x floor, ratio to the reference and frames."""
    head = [
        "system",
        "latency (ms, undilated)",
        f"measured (s, k = {k:.3g})",
        "up (kB/frame)",
        "down (kB/frame)",
        "energy (J/frame)",
        "predicted (ms)",
        "floor (ms)",
        "x floor",
        f"/ {DEMO_LABELS[REFERENCE].split(' (')[0]}",
        "frames",
    ]
    lines = [title, ""] if title else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        frames = (
            str(r.frames)
            + (f" ({r.errors} err)" if r.errors else "")
            + (f" ({r.fallbacks} local)" if r.fallbacks else "")
        )
        lat = "-" if math.isnan(r.latency_ms) else f"{r.latency_ms:.1f} ± {r.latency_std_ms:.1f}"
        cells = [
            r.label,
            lat,
            _num(r.measured_s, ".2f"),
            _kb(r.bytes_up),
            _kb(r.bytes_down),
            _num(r.energy_j, ".4f"),
            _num(r.predicted_ms, ".1f"),
            _num(r.floor_ms, ".1f"),
            _num(r.x_floor, ".2f"),
            _num(r.vs_reference, ".2f", "x"),
            frames,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline(rows: Sequence[SystemRow], subject: str = "intradp", reference: str = REFERENCE) -> str:
    """One line: the subject's latency, bytes up and energy as ratios to the reference's ('' if either is missing)."""
    by = {r.system: r for r in rows}
    a, b = by.get(subject), by.get(reference)
    if a is None or b is None or not (a.frames and b.frames):
        return ""
    up = a.bytes_up / b.bytes_up if b.bytes_up > 0 else float("nan")
    en = a.energy_j / b.energy_j if b.energy_j > 0 else float("nan")
    return (
        f"{a.label.split(' (')[0]} / {b.label}: latency {a.vs_reference:.2f}x ({a.latency_ms:.1f} ms vs "
        f"{b.latency_ms:.1f} ms undilated), bytes up {_num(up, '.2f', 'x')} ({_kb(a.bytes_up)} kB vs "
        f"{_kb(b.bytes_up)} kB per frame), energy {_num(en, '.2f', 'x')}"
    )


def plans_run(records: Iterable[Mapping[str, Any]], system: str) -> str:
    """'plan x count, ...' of the frames of `system` that have a result, most frequent first."""
    counts = Counter(
        str(r.get("plan_name") or r.get("plan_id") or "?")
        for r in records
        if (r.get("system") or r.get("mode")) == system and not r.get("error")
    )
    return ", ".join(f"{name} x{n}" for name, n in counts.most_common())
