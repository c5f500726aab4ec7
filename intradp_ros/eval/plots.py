"""PNG plots of an evaluation run: per system, the link bandwidth (shaped rate and the monitor's estimate) and the
per-frame latency over time, one figure per trace. Uses matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from intradp_ros.eval.tables import SYSTEM_LABELS, ordered_systems, ordered_traces

PathLike = str | Path
Series = Sequence[tuple[float, float]]


def series_by_system(records: Iterable[Mapping[str, Any]], trace: str) -> dict[str, list[Mapping[str, Any]]]:
    """Records of one trace grouped by system, each group sorted by time (`t_s`)."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if str(r.get("trace", "")) == trace:
            out.setdefault(str(r.get("system") or r.get("mode")), []).append(r)
    for group in out.values():
        group.sort(key=lambda r: float(r.get("t_s", 0.0)))
    return out


def step_points(link: Series, t_end: float) -> tuple[list[float], list[float]]:
    """x, y of a step line for a rate schedule [(t, rate)] (each rate holds until the next), extended to t_end."""
    xs: list[float] = []
    ys: list[float] = []
    for i, (t, r) in enumerate(link):
        if t > t_end:
            break
        nxt = link[i + 1][0] if i + 1 < len(link) else t_end
        xs += [t, min(nxt, t_end)]
        ys += [r, r]
    return xs, ys


def plot_run(
    records: Sequence[Mapping[str, Any]],
    out_dir: PathLike,
    prefix: str = "eval",
    links: Mapping[tuple[str, str], Series] | None = None,
    k: float = 1.0,
) -> list[Path]:
    """One PNG per trace (`<prefix>_<trace>.png`): a row per system with bandwidth (left axis, Mbit/s: shaped link
    as a step line, estimate per frame as dots) and latency per frame (right axis, s; errors as red x at 0).
    `links[(trace, system)]` is the shaped-rate schedule of that run ([(t_s, mbit)]). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for trace in ordered_traces(str(r.get("trace", "")) for r in records):
        groups = series_by_system(records, trace)
        systems = ordered_systems(groups)
        fig, axes = plt.subplots(len(systems), 1, figsize=(10, 2.4 * len(systems) + 0.6), sharex=True, squeeze=False)
        for ax, system in zip(axes[:, 0], systems):
            recs = groups[system]
            t_end = max([float(r.get("t_s", 0.0)) for r in recs] + [1.0])
            link = (links or {}).get((trace, system))
            if link:
                xs, ys = step_points(link, t_end)
                ax.plot(xs, ys, color="tab:gray", lw=1.0, label="shaped link")
            ok = [r for r in recs if not r.get("error")]
            ax.plot(
                [float(r["t_s"]) for r in ok],
                [float(r["bandwidth_estimate_mbit_per_s"]) for r in ok],
                ".",
                color="tab:blue",
                ms=4,
                label="monitor estimate",
            )
            ax.set_ylabel("Mbit/s")
            rates = [r for _, r in link] if link else []
            rates += [float(r["bandwidth_estimate_mbit_per_s"]) for r in ok]
            ax.set_ylim(0, max(rates) * 1.15 if rates and max(rates) > 0 else 1.0)
            lat_ax = ax.twinx()
            lat_ax.plot(
                [float(r["t_s"]) for r in ok],
                [float(r["latency_s"]) for r in ok],
                "o-",
                color="tab:orange",
                ms=3,
                lw=0.8,
                label="latency",
            )
            bad = [r for r in recs if r.get("error")]
            if bad:
                lat_ax.plot([float(r["t_s"]) for r in bad], [0.0] * len(bad), "x", color="tab:red", label="error")
            lat_ax.set_ylabel("latency (s)")
            top = max([float(r["latency_s"]) for r in ok] + [0.0])
            lat_ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
            mean = sum(float(r["latency_s"]) for r in ok) / len(ok) if ok else math.nan
            ax.set_title(
                f"{SYSTEM_LABELS.get(system, system)} ({trace}): mean latency {mean:.3f} s"
                + (f" (undilated {mean / k * 1e3:.1f} ms, k={k:g})" if k != 1.0 and ok else ""),
                fontsize=9,
            )
            if ax is axes[0, 0]:
                h1, l1 = ax.get_legend_handles_labels()
                h2, l2 = lat_ax.get_legend_handles_labels()
                ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=7)
        axes[-1, 0].set_xlabel("time since the system's run started (s, testbed time)")
        fig.tight_layout()
        path = out_dir / f"{prefix}_{trace}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
