"""Pure arithmetic of the scale and soak runs: process samples from /proc, growth slopes with a pass/fail bound,
and per-robot latency summaries. No ROS, no testbed: unit-tested on their own."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Bounds of the soak's pass/fail: a leak of a few MB per frame or a thread per request shows far above them, the
# allocator's settling after warm-up (a few MB over the first minutes, excluded by `warmup_s`) stays below.
MB_PER_H_BOUND = 30.0
THREADS_PER_H_BOUND = 4.0


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: wall time (s), resident memory (MB), thread count, and its anonymous part (MB:
    heap and stacks, what a leak grows; RSS also counts mapped library pages, which the kernel drops and reloads
    under memory pressure from other jobs, so RSS can fall by hundreds of MB with no change in the process)."""

    t: float
    rss_mb: float
    threads: int
    anon_mb: float = math.nan


def read_proc_status(pid: int) -> ProcSample | None:
    """VmRSS and Threads of process `pid` now (None when it is gone)."""
    import time

    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        rss_kb = int(fields["VmRSS"].split()[0])
        threads = int(fields["Threads"].split()[0])
        anon_kb = int(fields["RssAnon"].split()[0]) if "RssAnon" in fields else None
    except (KeyError, ValueError, IndexError):
        return None
    return ProcSample(time.time(), rss_kb / 1024.0, threads, math.nan if anon_kb is None else anon_kb / 1024.0)


# Memory one node of a fleet holds (MB, anonymous + its share of libraries), measured at KAPAO-S 256x320: a client
# peaks near 950 MB RSS while it profiles, the server near 1100 MB. The fleet refuses to start when the host has less
# available: an 8-robot run on a host shared with other jobs OOM-killed another job's process once.
SERVER_MB = 1100.0
CLIENT_MB = 800.0


def memory_needed_mb(robots: int) -> float:
    """Memory a fleet of `robots` clients and one server needs (MB)."""
    return SERVER_MB + CLIENT_MB * robots


def mem_available_mb(meminfo: str | None = None) -> float:
    """MemAvailable of /proc/meminfo (or of the given text) in MB; nan when absent."""
    text = Path("/proc/meminfo").read_text() if meminfo is None else meminfo
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


def python_pid(pid: int) -> int | None:
    """The python process among `pid` and its descendants (a spawn may wrap it in `ip netns exec`); None if gone."""
    todo = [pid]
    seen = 0
    while todo and seen < 64:  # bounded: a node's tree is a handful of processes
        p = todo.pop(0)
        seen += 1
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if b"python" in cmd:
            return p
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return None


def slope_per_hour(ts: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over ts, per hour (ts in seconds); 0.0 with fewer than 2 distinct times."""
    t = np.asarray(ts, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if t.size != y.size:
        raise ValueError(f"{t.size} times but {y.size} values")
    if t.size < 2 or float(np.ptp(t)) == 0.0:
        return 0.0
    slope = float(np.polyfit(t - t[0], y, 1)[0])
    return slope * 3600.0


@dataclass(frozen=True)
class Growth:
    """Growth of one process over a soak (after warm-up): slopes, first/last values, and the verdict. `memory` says
    which figure the MB values are: "anon" (RssAnon, when /proc gives it) or "RSS"."""

    name: str
    memory: str
    samples: int
    span_s: float
    rss_first_mb: float
    rss_last_mb: float
    rss_max_mb: float
    mb_per_h: float
    threads_first: int
    threads_last: int
    threads_per_h: float
    mb_bound: float
    threads_bound: float

    @property
    def passed(self) -> bool:
        return self.samples >= 2 and self.mb_per_h <= self.mb_bound and self.threads_per_h <= self.threads_bound

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{self.name:>16}: {self.memory} {self.rss_first_mb:7.1f} -> {self.rss_last_mb:7.1f} MB "
            f"(max {self.rss_max_mb:.1f}), "
            f"slope {self.mb_per_h:+7.1f} MB/h (bound {self.mb_bound:g}); threads {self.threads_first} -> "
            f"{self.threads_last}, slope {self.threads_per_h:+6.1f}/h (bound {self.threads_bound:g}); "
            f"{self.samples} samples over {self.span_s / 60:.1f} min: {verdict}"
        )


def growth(
    name: str,
    samples: Sequence[ProcSample],
    warmup_s: float,
    mb_bound: float = MB_PER_H_BOUND,
    threads_bound: float = THREADS_PER_H_BOUND,
) -> Growth:
    """Slopes of one process's samples, leaving out the first `warmup_s` seconds (model load, first plans)."""
    if not samples:
        return Growth(
            name, "RSS", 0, 0.0, math.nan, math.nan, math.nan, math.nan, 0, 0, math.nan, mb_bound, threads_bound
        )
    t0 = samples[0].t
    kept = [s for s in samples if s.t - t0 >= warmup_s] or list(samples[-1:])
    ts = [s.t for s in kept]
    anon = all(math.isfinite(s.anon_mb) for s in kept)
    mem = [s.anon_mb if anon else s.rss_mb for s in kept]
    return Growth(
        name=name,
        memory="anon" if anon else "RSS",
        samples=len(kept),
        span_s=ts[-1] - ts[0],
        rss_first_mb=mem[0],
        rss_last_mb=mem[-1],
        rss_max_mb=max(mem),
        mb_per_h=slope_per_hour(ts, mem),
        threads_first=kept[0].threads,
        threads_last=kept[-1].threads,
        threads_per_h=slope_per_hour(ts, [float(s.threads) for s in kept]),
        mb_bound=mb_bound,
        threads_bound=threads_bound,
    )


@dataclass(frozen=True)
class RobotFigures:
    """One robot's frames in the measured window: counts, latency percentiles (s), shares, errors."""

    robot: str
    sent: int
    answered: int
    distributed: int
    fell_back: int
    dropped: int  # replaced in the client's one-frame mailbox or too old when taken: by design, not lost
    wrong: int
    latency_p50: float
    latency_p90: float
    wait_p50: float
    server_compute_p50: float

    @property
    def lost(self) -> int:
        """Frames neither answered nor dropped by the client's input policy."""
        return max(0, self.sent - self.answered - self.dropped)


def input_drops(stats: Sequence[Mapping[str, Any]], t0: float, t1: float) -> int:
    """Frames the client dropped by design (stale or replaced; InferenceStats carries running totals) between the
    last stats before `t0` and the last one up to `t1` plus a second (a drop is reported with the next frame)."""

    def total(s: Mapping[str, Any]) -> int:
        return int(s.get("dropped_stale", 0)) + int(s.get("dropped_replaced", 0))

    before = [total(s) for s in stats if float(s["t"]) < t0]
    upto = [total(s) for s in stats if float(s["t"]) <= t1 + 1.0]
    return max(0, (max(upto) if upto else 0) - (max(before) if before else 0))


def _pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if xs else math.nan


def robot_figures(
    robot: str,
    sent: Iterable[Mapping[str, Any]],
    results: Iterable[Mapping[str, Any]],
    stats: Iterable[Mapping[str, Any]],
    wrong: int,
    window: tuple[float, float],
) -> RobotFigures:
    """Figures of the frames `robot` sent within `window` (wall-clock t0, t1): a frame is answered when a result
    carries its id; latency and shares come from its InferenceStats (robot_wait_s: the robot idle for the server)."""
    t0, t1 = window
    ids = {r["frame"] for r in sent if t0 <= float(r["t"]) <= t1}
    got = {r["frame"] for r in results} & ids
    stats = list(stats)
    st = [s for s in stats if s["frame"] in ids]
    dist = [s for s in st if s["tiles_up"] > 0 and s["tiles_down"] > 0 and not s["fell_back"]]
    return RobotFigures(
        robot=robot,
        sent=len(ids),
        answered=len(got),
        distributed=len(dist),
        fell_back=sum(1 for s in st if s["fell_back"]),
        dropped=input_drops(stats, t0, t1),
        wrong=wrong,
        latency_p50=_pct([s["latency_s"] for s in st], 50),
        latency_p90=_pct([s["latency_s"] for s in st], 90),
        wait_p50=_pct([s["wait_s"] for s in st], 50),
        server_compute_p50=_pct([s["server_compute_s"] for s in dist], 50),
    )


def figures_table(rows: Sequence[RobotFigures], reference_p50: float | None = None) -> str:
    """A text table of robot figures; with `reference_p50` (the one-robot median) a ratio column."""
    head = (
        f"{'robot':>8} {'sent':>5} {'answered':>8} {'dropped':>7} {'lost':>4} {'wrong':>5} {'distrib':>7} {'local':>5} "
        f"{'lat p50 s':>9} {'lat p90 s':>9} {'wait p50 s':>10} {'srv p50 s':>9}"
    )
    if reference_p50:
        head += f" {'x 1-robot':>9}"
    out = [head]
    for r in rows:
        line = (
            f"{r.robot:>8} {r.sent:>5} {r.answered:>8} {r.dropped:>7} {r.lost:>4} {r.wrong:>5} "
            f"{r.distributed:>7} {r.fell_back:>5} "
            f"{r.latency_p50:>9.3f} {r.latency_p90:>9.3f} {r.wait_p50:>10.3f} {r.server_compute_p50:>9.3f}"
        )
        if reference_p50:
            line += f" {r.latency_p50 / reference_p50:>9.2f}"
        out.append(line)
    return "\n".join(out)
