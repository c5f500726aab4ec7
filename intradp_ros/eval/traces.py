"""Bandwidth traces: seeded generation of the shipped indoor/outdoor traces, writing and parsing.

A trace is a text file with one sample per line, ``t_seconds rate_mbit``; ``#`` starts a comment. The
testbed's replayer sets the shaping rate to each sample's rate at its time, so the same file reproduces
the same link conditions on every run. The shipped files come from :func:`generate_trace` with the
seed written in their header, so they can be regenerated bit for bit (``scripts/make_traces``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Sample = tuple[float, float]
PathLike = str | Path


class TraceError(ValueError):
    """A trace file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class TraceProfile:
    """Shape of a generated trace: an AR(1) process around `mean_mbit` plus optional deep fades.

    `fade_rate_hz` fades per second start at random; each dips to `fade_floor_mbit`..`fade_depth_max_mbit`
    for `fade_len_s` seconds with smooth (raised-cosine) edges, like walking behind a wall outdoors.
    """

    name: str
    mean_mbit: float
    std_mbit: float
    corr_time_s: float
    min_mbit: float
    max_mbit: float
    fade_rate_hz: float = 0.0
    fade_len_s: tuple[float, float] = (0.5, 3.0)
    fade_floor_mbit: float = 0.5
    fade_depth_max_mbit: float = 8.0
    description: str = ""


PROFILES = {
    "indoor": TraceProfile(
        name="indoor",
        mean_mbit=93.0,
        std_mbit=5.0,
        corr_time_s=2.0,
        min_mbit=70.0,
        max_mbit=110.0,
        description="indoor WiFi: mean ~93 Mbit/s, mild variation (AR(1), std 5 Mbit/s, 2 s correlation)",
    ),
    "outdoor": TraceProfile(
        name="outdoor",
        mean_mbit=73.0,
        std_mbit=14.0,
        corr_time_s=1.5,
        min_mbit=20.0,
        max_mbit=110.0,
        fade_rate_hz=1.0 / 15.0,
        fade_len_s=(0.5, 3.0),
        fade_floor_mbit=0.3,
        fade_depth_max_mbit=6.0,
        description="outdoor WiFi: mean ~73 Mbit/s, AR(1) std 14 Mbit/s plus deep fades to near 0 "
        "(about one every 15 s, 0.5-3 s long)",
    ),
}

DEFAULT_SEEDS = {"indoor": 20240601, "outdoor": 20240602}
DEFAULT_PERIOD_S = 0.1
DEFAULT_DURATION_S = 300.0


def generate_trace(
    profile: TraceProfile, seed: int, duration_s: float = DEFAULT_DURATION_S, period_s: float = DEFAULT_PERIOD_S
) -> list[Sample]:
    """Return a reproducible trace for `profile`: same seed, same samples.

    The series is rescaled so its mean equals `profile.mean_mbit` exactly, which keeps the shipped
    traces comparable with the seeds' reported average bandwidths.
    """
    if duration_s <= 0 or period_s <= 0:
        raise ValueError(f"duration_s and period_s must be > 0 (got {duration_s}, {period_s})")
    n = int(round(duration_s / period_s))
    rng = np.random.Generator(np.random.PCG64(seed))
    phi = math.exp(-period_s / profile.corr_time_s)
    noise = rng.standard_normal(n) * profile.std_mbit * math.sqrt(1.0 - phi * phi)
    dev = np.empty(n)
    dev[0] = rng.standard_normal() * profile.std_mbit
    for i in range(1, n):
        dev[i] = phi * dev[i - 1] + noise[i]
    rate = np.clip(profile.mean_mbit + dev, profile.min_mbit, profile.max_mbit)

    if profile.fade_rate_hz > 0:
        t = 0.0
        while True:
            t += rng.exponential(1.0 / profile.fade_rate_hz)
            if t >= duration_s:
                break
            length = rng.uniform(*profile.fade_len_s)
            floor = rng.uniform(profile.fade_floor_mbit, profile.fade_depth_max_mbit)
            rate = _apply_fade(rate, start=int(t / period_s), length=max(2, int(length / period_s)), floor=floor)

    # Rescale the non-faded part so the overall mean hits the target (fades keep their depth).
    target = profile.mean_mbit
    for _ in range(20):
        mean = float(rate.mean())
        if abs(mean - target) < 1e-3:
            break
        rate = np.clip(rate * (target / mean), 0.0, profile.max_mbit)
    times = np.arange(n) * period_s
    return [(round(float(a), 3), round(float(b), 2)) for a, b in zip(times, rate)]


def _apply_fade(rate: np.ndarray, start: int, length: int, floor: float) -> np.ndarray:
    """Pull `rate[start:start+length]` down to `floor` with raised-cosine edges (a quarter each side)."""
    out = rate.copy()
    stop = min(len(out), start + length)
    if start >= stop:
        return out
    idx = np.arange(start, stop)
    edge = max(1, length // 4)
    pos = idx - start
    weight = np.ones(len(idx))
    rise = pos < edge
    weight[rise] = 0.5 - 0.5 * np.cos(np.pi * (pos[rise] + 1) / (edge + 1))
    fall = pos >= length - edge
    weight[fall] = 0.5 - 0.5 * np.cos(np.pi * (length - pos[fall]) / (edge + 1))
    out[idx] = out[idx] * (1.0 - weight) + floor * weight
    return out


def format_trace(samples: Sequence[Sample], header: Iterable[str] = ()) -> str:
    """Text of a trace file: `# header` lines, then `t rate` per line."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines += [f"{t:.1f} {r:.2f}" for t, r in samples]
    return "\n".join(lines) + "\n"


def write_trace(path: PathLike, samples: Sequence[Sample], header: Iterable[str] = ()) -> None:
    """Write a trace file (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_trace(samples, header))


def parse_trace(text: str, source: str = "<trace>") -> list[Sample]:
    """Parse trace text; raise TraceError naming `source` and the line for anything malformed.

    Times must be finite, >= 0 and strictly increasing; rates finite and >= 0.
    """
    samples: list[Sample] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TraceError(f"{source}:{lineno}: expected 't_seconds rate_mbit', got {raw.strip()!r}")
        try:
            t, rate = float(parts[0]), float(parts[1])
        except ValueError:
            raise TraceError(f"{source}:{lineno}: not numbers: {raw.strip()!r}") from None
        if not (math.isfinite(t) and math.isfinite(rate)):
            raise TraceError(f"{source}:{lineno}: non-finite value in {raw.strip()!r}")
        if t < 0:
            raise TraceError(f"{source}:{lineno}: negative time {t}")
        if rate < 0:
            raise TraceError(f"{source}:{lineno}: negative rate {rate}")
        if samples and t <= samples[-1][0]:
            raise TraceError(f"{source}:{lineno}: time {t} does not increase (previous {samples[-1][0]})")
        samples.append((t, rate))
    if not samples:
        raise TraceError(f"{source}: no samples")
    return samples


def load_trace(path: PathLike) -> list[Sample]:
    """Read a trace file into [(t_seconds, rate_mbit), ...]; TraceError if missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    return parse_trace(text, source=str(path))


def trace_header(profile: TraceProfile, seed: int, samples: Sequence[Sample]) -> list[str]:
    """Header comment of a shipped trace: what it models, how to regenerate it, its statistics."""
    rates = np.array([r for _, r in samples])
    period = samples[1][0] - samples[0][0] if len(samples) > 1 else DEFAULT_PERIOD_S
    return [
        f"intradp_ros bandwidth trace '{profile.name}': {profile.description}",
        f"generated by intradp_ros.eval.traces.generate_trace(PROFILES['{profile.name}'], seed={seed}, "
        f"duration_s={len(samples) * period:g}, period_s={period:g})",
        f"regenerate: scripts/make_traces --out config/traces   (numpy {np.__version__})",
        f"samples {len(samples)}, mean {rates.mean():.2f} Mbit/s, min {rates.min():.2f}, max {rates.max():.2f}, "
        f"std {rates.std():.2f}",
        "format: t_seconds rate_mbit",
    ]


def make_shipped_traces(out_dir: PathLike, seeds: dict = None) -> list[Path]:
    """Generate indoor.txt and outdoor.txt into `out_dir`; returns the written paths."""
    seeds = dict(DEFAULT_SEEDS, **(seeds or {}))
    written = []
    for name, profile in PROFILES.items():
        samples = generate_trace(profile, seeds[name])
        path = Path(out_dir) / f"{name}.txt"
        write_trace(path, samples, trace_header(profile, seeds[name], samples))
        written.append(path)
    return written
