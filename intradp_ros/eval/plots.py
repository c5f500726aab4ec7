"""PNG plots of an evaluation run: per system, the link bandwidth (shaped rate and the monitor's estimate) and the
per-frame latency over time, one figure per trace. Uses matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from intradp_ros.eval.tables import ordered_systems, ordered_traces, system_label

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
                f"{system_label(system)} ({trace}): mean latency {mean:.3f} s"
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


def plot_comparison(rows: Sequence[Any], path: PathLike, title: str = "") -> Path:
    """One PNG of the demo's side-by-side comparison (rows: eval/demo_report.SystemRow): latency per frame
    (undilated mean ± std; the cost model's prediction as a diamond and the physical floor as a dash where known,
    the ratio to the reference above each bar), kB up and down per frame, and robot energy per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no systems to plot")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [r.label.split(" (")[0].replace(", ", ",\n") for r in rows]
    xs = list(range(len(rows)))
    colors = ["tab:green", "tab:red", "tab:blue", "tab:gray", "tab:purple"]
    fig, (ax_lat, ax_bytes, ax_en) = plt.subplots(1, 3, figsize=(13, 4.2))
    lat = [0.0 if math.isnan(r.latency_ms) else r.latency_ms for r in rows]
    std = [0.0 if math.isnan(r.latency_std_ms) else r.latency_std_ms for r in rows]
    ax_lat.bar(xs, lat, yerr=std, capsize=4, color=[colors[i % len(colors)] for i in xs])
    for x, r in zip(xs, rows):
        if not math.isnan(r.predicted_ms):
            ax_lat.plot([x], [r.predicted_ms], "D", color="black", ms=5, label="predicted" if x == 0 else None)
        if not math.isnan(r.floor_ms):
            ax_lat.plot(
                [x - 0.4, x + 0.4], [r.floor_ms] * 2, "--", color="black", lw=1, label="floor" if x == 0 else None
            )
        if not math.isnan(r.vs_reference):
            ax_lat.annotate(f"{r.vs_reference:.2f}x", (x, lat[x] + std[x]), ha="center", va="bottom", fontsize=8)
    marks = [v for r in rows for v in (r.predicted_ms, r.floor_ms) if not math.isnan(v)]
    ax_lat.set_ylim(0, max([a + b for a, b in zip(lat, std)] + marks + [1.0]) * 1.3)  # room for the legend
    ax_lat.set_ylabel("latency per frame (ms, undilated)")
    ax_lat.set_title("latency (ratio to server-only raw)", fontsize=9)
    if any(not math.isnan(r.predicted_ms) or not math.isnan(r.floor_ms) for r in rows):
        ax_lat.legend(fontsize=7, loc="upper left", ncol=2)
    width = 0.38
    up = [0.0 if math.isnan(r.bytes_up) else r.bytes_up / 1e3 for r in rows]
    down = [0.0 if math.isnan(r.bytes_down) else r.bytes_down / 1e3 for r in rows]
    ax_bytes.bar([x - width / 2 for x in xs], up, width, color="tab:orange", label="up")
    ax_bytes.bar([x + width / 2 for x in xs], down, width, color="tab:cyan", label="down")
    for x in xs:
        ax_bytes.annotate(f"{up[x]:.0f}", (x - width / 2, up[x]), ha="center", va="bottom", fontsize=7)
    ax_bytes.set_ylabel("kB per frame")
    ax_bytes.set_title("bytes on the link", fontsize=9)
    ax_bytes.legend(fontsize=7)
    energy = [0.0 if math.isnan(r.energy_j) else r.energy_j for r in rows]
    ax_en.bar(xs, energy, color=[colors[i % len(colors)] for i in xs])
    ax_en.set_ylabel("robot energy per frame (J, undilated)")
    ax_en.set_title("energy", fontsize=9)
    for ax in (ax_lat, ax_bytes, ax_en):
        ax.set_xticks(xs)
        ax.set_xticklabels(names, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_soak(
    samples: Mapping[str, Sequence[Any]], path: PathLike, title: str = "", latency: Mapping[str, Series] | None = None
) -> Path:
    """The soak's PNG: resident memory (MB) and thread count of each process over time (minutes since the first
    sample), and, when given, each robot's per-frame latency. `samples[name]` holds ProcSample-like (t, rss_mb,
    threads) readings; `latency[robot]` is [(t, latency_s)] on the same wall clock."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    starts = [s[0].t for s in samples.values() if s]
    t0 = min(starts) if starts else 0.0
    rows = 3 if latency else 2
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.6 * rows + 0.6), sharex=True)
    for name, series in samples.items():
        xs = [(s.t - t0) / 60.0 for s in series]
        (line,) = axes[0].plot(xs, [s.rss_mb for s in series], lw=1.0, label=f"{name} RSS")
        if all(math.isfinite(getattr(s, "anon_mb", math.nan)) for s in series):
            axes[0].plot(xs, [s.anon_mb for s in series], "--", lw=1.0, color=line.get_color(), label=f"{name} anon")
        axes[1].plot(xs, [s.threads for s in series], lw=1.0, label=name)
    axes[0].set_ylabel("memory (MB)")
    axes[1].set_ylabel("threads")
    axes[0].legend(loc="upper left", fontsize=7, ncol=3)
    if latency:
        for robot, pts in latency.items():
            axes[2].plot([(t - t0) / 60.0 for t, _ in pts], [v for _, v in pts], ".", ms=2, label=robot)
        axes[2].set_ylabel("latency (s)")
        axes[2].legend(loc="upper left", fontsize=7)
    axes[-1].set_xlabel("minutes since the first sample")
    if title:
        axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
