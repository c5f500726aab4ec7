"""Robust link bandwidth prediction (RobustMPC style) and bandwidth-bucket selection with hysteresis.

The robot needs one number, "how many bytes per second will the next tiles get", that reacts to real changes
within about a second but does not make the plan flap on measurement noise. Three parts, all ROS-free:

- `BandwidthPredictor`: goodput samples (bytes, seconds, source, timestamp) go into a short window bounded in
  count and age; samples off the window's median by more than `outlier_ratio` (either way) are outliers: they
  stay in the window (two of them in a row are a level shift, below) but neither enter the mean nor the
  margin, so a single probe slowed by CPU contention cannot move the estimate. The raw prediction is the
  harmonic mean of the inliers; the published prediction is the raw one divided by (1 + error margin), the
  margin being the mean relative error |predicted - measured| / measured of the last few inlier samples
  (RobustMPC takes the largest; the mean keeps the estimate of a steady, noisy link steady, so its bucket does
  not follow the noise). A level
  shift (the last `shift_samples` samples all off the median of the older ones by more than `shift_ratio`, the
  same way)
  restarts the window from those samples and forgets the errors the shift itself caused, so a step is followed
  after two samples instead of after the window's length.
- `select_bucket`: the plan-table bucket for an estimate: the largest lower bucket edge <= estimate (the lowest
  bucket when the estimate is below all of them).
- `BucketHysteresis`: the current bucket is kept while the estimate stays within `dead_band` (relative) of its
  edges; a new bucket is taken only when the estimate stays out of that band for `confirm_updates` consecutive
  updates, or at once when the estimate moved by more than `jump_ratio` relative to the estimate that chose the
  current bucket AND the newest `jump_confirm` samples all lie beyond that ratio on the same side (a jump needs
  a second sample to confirm it: one probe slowed by CPU contention on either side, arriving while the window
  holds a single sample, drags the harmonic mean far enough to look like a step, but is not one). So a steady
  link whose estimate sits on a bucket edge does not flap, and a single slow sample cannot move the bucket.

Units: samples are bytes and seconds; predictions are bytes/s (helpers convert to Mbit/s and MB/s, 1 MB = 1e6 B).
Timestamps are any monotonic clock in seconds, passed in by the caller (the predictor never reads a clock itself,
so tests drive it with synthetic time).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "SOURCE_PROBE",
    "SOURCE_PASSIVE",
    "SOURCES",
    "InvalidSample",
    "BandwidthSample",
    "PredictorConfig",
    "Prediction",
    "BandwidthPredictor",
    "select_bucket",
    "bucket_grid",
    "parse_bucket_grid",
    "BucketHysteresis",
    "mbit_to_bytes_per_s",
    "bytes_per_s_to_mbit",
    "bytes_per_s_to_mbyte",
    "DEFAULT_BUCKETS_MBYTE",
]

SOURCE_PROBE = "probe"  # an active probe (timed burst to the probe server)
SOURCE_PASSIVE = "passive"  # derived from real tile transfers (InferenceStats)
SOURCES = (SOURCE_PROBE, SOURCE_PASSIVE)


def mbit_to_bytes_per_s(mbit_per_s: float) -> float:
    """Mbit/s (1e6 bit) -> bytes/s."""
    return mbit_per_s * 1e6 / 8.0


def bytes_per_s_to_mbit(bytes_per_s: float) -> float:
    """bytes/s -> Mbit/s (1e6 bit)."""
    return bytes_per_s * 8.0 / 1e6


def bytes_per_s_to_mbyte(bytes_per_s: float) -> float:
    """bytes/s -> MB/s (1e6 bytes), the plan tables' unit."""
    return bytes_per_s / 1e6


class InvalidSample(ValueError):
    """A sample that must not enter the predictor (zero/negative/NaN/inf bytes or seconds, unknown source)."""


@dataclass(frozen=True)
class BandwidthSample:
    """One goodput measurement: `nbytes` moved in `seconds`, ending at `stamp` (monotonic seconds)."""

    nbytes: float
    seconds: float
    source: str
    stamp: float

    @property
    def bytes_per_s(self) -> float:
        return self.nbytes / self.seconds

    def validate(self) -> BandwidthSample:
        """Return self, or raise InvalidSample naming what is wrong."""
        for name in ("nbytes", "seconds", "stamp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidSample(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidSample(f"{name} must be finite, got {value!r}")
        if self.nbytes <= 0:
            raise InvalidSample(f"nbytes must be > 0, got {self.nbytes!r}")
        if self.seconds <= 0:
            raise InvalidSample(f"seconds must be > 0, got {self.seconds!r}")
        if self.source not in SOURCES:
            raise InvalidSample(f"source must be one of {SOURCES}, got {self.source!r}")
        if not math.isfinite(self.bytes_per_s):
            raise InvalidSample(f"goodput {self.nbytes!r} B / {self.seconds!r} s is not finite")
        return self


@dataclass(frozen=True)
class PredictorConfig:
    """Window and margin settings of `BandwidthPredictor` (defaults suit probes every ~0.2-1 s)."""

    window: int = 5  # at most this many samples in the harmonic mean
    max_age_s: float = 10.0  # samples older than this leave the window (probes come every ~2 s under load)
    margin_window: int = 8  # relative errors of this many recent predictions give the margin (their mean)
    max_margin: float = 0.5  # the margin is clamped to [0, max_margin]
    shift_ratio: float = 1.5  # level shift: samples off the window mean by more than this factor ...
    shift_samples: int = 2  # ... this many times in a row, the same way
    outlier_ratio: float = 1.4  # a sample off the window median by more than this factor is left out of the mean

    def __post_init__(self) -> None:
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be an int >= 1, got {self.window!r}")
        if not (self.max_age_s > 0 and math.isfinite(self.max_age_s)):
            raise ValueError(f"max_age_s must be > 0 and finite, got {self.max_age_s!r}")
        if not isinstance(self.margin_window, int) or self.margin_window < 1:
            raise ValueError(f"margin_window must be an int >= 1, got {self.margin_window!r}")
        if not (self.max_margin >= 0.0 and math.isfinite(self.max_margin)):
            raise ValueError(f"max_margin must be >= 0 and finite, got {self.max_margin!r}")
        if not (self.shift_ratio > 1.0):
            raise ValueError(f"shift_ratio must be > 1, got {self.shift_ratio!r}")
        if not (self.outlier_ratio > 1.0 and math.isfinite(self.outlier_ratio)):
            raise ValueError(f"outlier_ratio must be > 1 and finite, got {self.outlier_ratio!r}")
        if not isinstance(self.shift_samples, int) or not (1 <= self.shift_samples <= self.window):
            raise ValueError(f"shift_samples must be an int in 1..window, got {self.shift_samples!r}")


@dataclass(frozen=True)
class Prediction:
    """What the predictor says at one moment (bytes/s); `samples` == 0 means the window aged out."""

    bytes_per_s: float  # raw / (1 + margin)
    raw_bytes_per_s: float  # harmonic mean of the window
    margin: float
    samples: int
    probe_samples: int
    passive_samples: int
    last_sample_bytes_per_s: float

    @property
    def mbit_per_s(self) -> float:
        return bytes_per_s_to_mbit(self.bytes_per_s)

    @property
    def mbyte_per_s(self) -> float:
        return bytes_per_s_to_mbyte(self.bytes_per_s)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean of positive values (ValueError when empty)."""
    if not values:
        raise ValueError("harmonic mean of no values")
    return len(values) / sum(1.0 / v for v in values)


def inliers(values: Sequence[float], ratio: float) -> list[float]:
    """The values within a factor `ratio` of their median (all of them when none is, e.g. two far apart)."""
    if not values:
        return []
    med = statistics.median(values)
    kept = [v for v in values if med / ratio <= v <= med * ratio]
    return kept or list(values)


class BandwidthPredictor:
    """Harmonic mean over a short window, discounted by the recent prediction error; see the module docstring.

    Not thread-safe: the ROS node holds a lock around it.
    """

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()
        self._samples: deque[BandwidthSample] = deque()
        self._errors: deque[float] = deque(maxlen=self.config.margin_window)
        self._last: BandwidthSample | None = None
        self._last_prediction: Prediction | None = None
        self.level_shifts = 0
        self.rejected = 0
        self.outliers = 0  # samples left out of the mean when they arrived

    # ---- input --------------------------------------------------------------------------------------
    def add(self, sample: BandwidthSample) -> None:
        """Add one sample (raises InvalidSample for a bad one, which is then ignored)."""
        try:
            sample.validate()
        except InvalidSample:
            self.rejected += 1
            raise
        if self._last is not None and sample.stamp < self._last.stamp - self.config.max_age_s:
            self.rejected += 1
            raise InvalidSample(
                f"sample stamp {sample.stamp:.3f} is older than the window "
                f"(newest {self._last.stamp:.3f}, max age {self.config.max_age_s:g} s)"
            )
        self._expire(sample.stamp)
        if self._samples:
            values = [s.bytes_per_s for s in self._samples]
            med = statistics.median(values)
            ratio = self.config.outlier_ratio
            if med / ratio <= sample.bytes_per_s <= med * ratio:
                # RobustMPC: how wrong was the prediction we would have made just before this sample?
                predicted = harmonic_mean(inliers(values, ratio))
                self._errors.append(abs(predicted - sample.bytes_per_s) / sample.bytes_per_s)
            else:
                self.outliers += 1
        self._samples.append(sample)
        while len(self._samples) > self.config.window:
            self._samples.popleft()
        self._last = sample
        self._detect_shift()

    def _detect_shift(self) -> None:
        """Restart the window from the newest samples when they all sit beyond shift_ratio on one side."""
        k = self.config.shift_samples
        older = list(self._samples)[:-k]
        if not older:
            return
        recent = list(self._samples)[-k:]
        reference = statistics.median(s.bytes_per_s for s in older)  # one outlier in there is no shift
        ratio = self.config.shift_ratio
        down = all(s.bytes_per_s * ratio < reference for s in recent)
        up = all(s.bytes_per_s > reference * ratio for s in recent)
        if not (down or up):
            return
        self.level_shifts += 1
        for _ in older:
            self._samples.popleft()
        # The errors in the margin window were caused by the shift (now handled), not by noise of the new
        # level; keep only the spread among the recent samples.
        self._errors.clear()
        values = [s.bytes_per_s for s in recent]
        for i in range(1, len(values)):
            predicted = harmonic_mean(values[:i])
            self._errors.append(abs(predicted - values[i]) / values[i])

    def _expire(self, now: float) -> None:
        horizon = now - self.config.max_age_s
        while self._samples and self._samples[0].stamp < horizon:
            self._samples.popleft()

    # ---- output -------------------------------------------------------------------------------------
    def predict(self, now: float) -> Prediction | None:
        """The prediction at time `now`, or None when no sample is young enough (see `last_prediction`)."""
        self._expire(now)
        if not self._samples:
            return None
        values = [s.bytes_per_s for s in self._samples]
        raw = harmonic_mean(inliers(values, self.config.outlier_ratio))
        errors = list(self._errors)
        margin = min(statistics.fmean(errors) if errors else 0.0, self.config.max_margin)
        probes = sum(1 for s in self._samples if s.source == SOURCE_PROBE)
        pred = Prediction(
            bytes_per_s=raw / (1.0 + margin),
            raw_bytes_per_s=raw,
            margin=margin,
            samples=len(values),
            probe_samples=probes,
            passive_samples=len(values) - probes,
            last_sample_bytes_per_s=self._last.bytes_per_s if self._last else values[-1],
        )
        self._last_prediction = pred
        return pred

    @property
    def last_prediction(self) -> Prediction | None:
        """The last non-empty prediction (kept after the window ages out, for publishing with samples=0)."""
        return self._last_prediction

    @property
    def window(self) -> list[BandwidthSample]:
        return list(self._samples)


# ---- buckets ------------------------------------------------------------------------------------------
def bucket_grid(start: float = 0.5, stop: float = 50.0, step: float = 1.0) -> list[float]:
    """The scheduler's default grid: `start`, then the multiples of `step` above it up to `stop` (MB/s).

    bucket_grid() == [0.5, 1, 2, ..., 50] (51 buckets).
    """
    if not (start > 0 and stop >= start and step > 0) or not all(map(math.isfinite, (start, stop, step))):
        raise ValueError(f"need 0 < start <= stop and step > 0, got {start!r}, {stop!r}, {step!r}")
    grid = [float(start)]
    k = math.floor(start / step + 1e-9) + 1
    while k * step <= stop + 1e-9:
        grid.append(round(k * step, 9))
        k += 1
    return grid


DEFAULT_BUCKETS_MBYTE: tuple[float, ...] = tuple(bucket_grid())


def parse_bucket_grid(text: str) -> list[float]:
    """'start:stop:step' (see `bucket_grid`) or a comma/space separated list of lower edges in MB/s."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"bucket grid range must be start:stop:step, got {text!r}")
        try:
            return bucket_grid(*(float(p) for p in parts))
        except ValueError as err:
            raise ValueError(f"bad bucket grid {text!r}: {err}") from None
    try:
        edges = [float(p) for p in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"bucket grid must be numbers in MB/s, got {text!r}") from None
    return validate_grid(edges)


def validate_grid(edges: Sequence[float]) -> list[float]:
    """Sorted, finite, positive, distinct lower edges (ValueError otherwise)."""
    out = [float(e) for e in edges]
    if not out:
        raise ValueError("a bucket grid needs at least one edge")
    if not all(math.isfinite(e) and e > 0 for e in out):
        raise ValueError(f"bucket edges must be finite and > 0, got {out}")
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"bucket edges must be strictly increasing, got {out}")
    return out


def select_bucket(grid: Sequence[float], estimate: float) -> int:
    """Index of the bucket for `estimate` (same unit as the grid): the largest lower edge <= estimate.

    Below the first edge the first bucket is chosen (the slowest plan is the safest one left).
    """
    if not grid:
        raise ValueError("empty bucket grid")
    if not math.isfinite(estimate):
        raise ValueError(f"estimate must be finite, got {estimate!r}")
    return max(bisect.bisect_right(grid, estimate) - 1, 0)


class BucketHysteresis:
    """Turns a stream of estimates into bucket changes without flapping (see the module docstring)."""

    def __init__(
        self,
        grid: Sequence[float],
        confirm_updates: int = 3,
        jump_ratio: float = 0.3,
        dead_band: float = 0.1,
        jump_confirm: int = 2,
    ) -> None:
        if not isinstance(jump_confirm, int) or isinstance(jump_confirm, bool) or jump_confirm < 0:
            raise ValueError(f"jump_confirm must be an int >= 0, got {jump_confirm!r}")
        if not (0.0 <= dead_band < 1.0):
            raise ValueError(f"dead_band must be in [0, 1), got {dead_band!r}")
        if not isinstance(confirm_updates, int) or confirm_updates < 1:
            raise ValueError(f"confirm_updates must be an int >= 1, got {confirm_updates!r}")
        if not (jump_ratio > 0 and math.isfinite(jump_ratio)):
            raise ValueError(f"jump_ratio must be > 0 and finite, got {jump_ratio!r}")
        self.grid = validate_grid(grid)
        self.confirm_updates = confirm_updates
        self.jump_ratio = jump_ratio
        self.dead_band = dead_band
        self.jump_confirm = jump_confirm
        self.current: int | None = None
        self._anchor: float | None = None  # estimate that chose the current bucket
        self._candidate: int | None = None
        self._count = 0

    def update(self, estimate: float, recent: Sequence[float] = ()) -> int | None:
        """Feed one estimate (grid unit) and the newest samples' rates behind it (same unit, oldest first);
        returns the new bucket index when the bucket changes, else None.

        The first estimate always sets the bucket. A jump (an immediate switch) needs the last `jump_confirm`
        of `recent` beyond `jump_ratio` from the anchor on the estimate's side; otherwise the estimate takes the
        `confirm_updates` path like any other move.
        """
        target = select_bucket(self.grid, estimate)
        if self.current is None:
            return self._switch(target, estimate)
        if target == self.current or self._in_dead_band(estimate):
            self._candidate, self._count = None, 0
            return None
        assert self._anchor is not None
        if self._is_jump(estimate, recent):
            return self._switch(target, estimate)
        if target == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = target, 1
        if self._count >= self.confirm_updates:
            return self._switch(target, estimate)
        return None

    def _is_jump(self, estimate: float, recent: Sequence[float]) -> bool:
        """The estimate moved beyond `jump_ratio` from the anchor and the newest samples confirm it."""
        assert self._anchor is not None
        anchor, ratio = self._anchor, self.jump_ratio
        if abs(estimate - anchor) <= ratio * anchor:
            return False
        if self.jump_confirm == 0:
            return True
        newest = list(recent)[-self.jump_confirm :]
        if len(newest) < self.jump_confirm:
            return False
        if estimate < anchor:
            return all(r < anchor * (1.0 - ratio) for r in newest)
        return all(r > anchor * (1.0 + ratio) for r in newest)

    def _in_dead_band(self, estimate: float) -> bool:
        """Whether `estimate` is within `dead_band` of the current bucket's edges (so it keeps the bucket)."""
        assert self.current is not None
        low = self.grid[self.current] * (1.0 - self.dead_band)
        high = self.grid[self.current + 1] * (1.0 + self.dead_band) if self.current + 1 < len(self.grid) else math.inf
        return low <= estimate < high

    def _switch(self, target: int, estimate: float) -> int:
        self.current, self._anchor = target, estimate
        self._candidate, self._count = None, 0
        return target

    @property
    def bucket_value(self) -> float | None:
        return None if self.current is None else self.grid[self.current]
