"""Operator profiles: how long each node takes on one device as a function of the rows it computes.

The scheduler needs, per node and side, t(rows): small tiles are not proportionally cheaper (fixed
per-call cost, cache effects), so several tile sizes are timed (warm-up, repeats, the least: load only adds
time) and a line
t(r) = a + b*r (a, b >= 0, non-negative least squares) is fitted. A profile also records the bytes of
one row of every node (what a transfer of its rows costs), the per-message transport overhead and a
description of the device. Profiles are JSON (never pickled: the client's profile crosses the network
in the handshake) and name the graph fingerprint they were measured on.

A profile also carries codec profiles (core/codecs/profile.CodecProfile, one per lossless codec and tile kind:
size ratio and encode/decode seconds per MB, measured on samples of the profiled run's own tensors), so the
robot's codec costs travel in the handshake with its operator profile. A profile without them (format /1)
loads with none: the cost model then sends every tile uncompressed.

A profile also carries what a streamed (banded) plan pays beyond its operators: the per-tile wire work of this
CPU (`measure_tile_wire_cost`: making, serialising, decoding and checking a tile, fixed + per byte, the per-call part
timed cold) and, when asked, the band factors (`measure_band_factors`: device-only in k = 2..32 bands against one
band, the factor on a band's operator time that reproduces each measured ratio; the older per-band constant
`band_step_s` of `measure_band_overhead` is still read). Older profiles load without them. A node's t(rows) between
two profiled row counts follows the measured curve (interpolation), the fitted line only outside them.

On machines without a GPU the server profile is derived from the robot's by a stated speed ratio
(`Profile.scaled`); the ratio is recorded in the profile's device description.

Per-operator timings are short bursts. Under a CPU throttle that works in periods (a cgroup CFS quota: the
robot may use q us of every p us), short bursts run at full speed until the period's quota is spent, so the
per-operator sum underestimates the real whole-frame time (4.5-7.6x measured at 0.1 CPU, docs/scheduler.md).
`calibrate_to_frames` scales a profile so its device-only prediction equals the median of a few measured
whole frames; the cache key names the process's CPU quota, so a throttled and an unthrottled robot on one
machine never share a cached profile.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import queue
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import nnls

from intradp_ros.core.auth import mac_cost_s_per_mb
from intradp_ros.core.cache import write_atomic
from intradp_ros.core.codecs.profile import CodecProfile
from intradp_ros.core.formats import PROFILE_FORMAT, PROFILE_FORMATS
from intradp_ros.core.graph import Graph


class ProfileError(ValueError):
    """A profile that is malformed or was measured on another graph."""


@dataclass
class NodeProfile:
    """Measured medians (seconds) for a few row counts of one node, and the fitted t(r) = a + b*r."""

    rows: list[int]
    seconds: list[float]
    a: float
    b: float

    def time(self, rows: int) -> float:
        """Predicted seconds to compute `rows` rows (0 rows cost nothing): between two measured row counts, the
        line through their measurements (the measured rows->time curve: a band of 1/32 of a convolution's rows is
        not 1/32 of its time, and the curve is not one line: small tiles often run faster per row, in cache);
        outside them, or with one measured count, the fitted line t = a + b*r. Never more than a larger measured
        count: computing fewer rows never takes longer, so a small tile timed during a load spike (a profile
        measured at load 10 held 20 ms for 56 rows of an element-wise op that took 6 ms for all 224) is capped by
        the larger tiles' times instead of being charged to every band."""
        if rows <= 0:
            return 0.0
        r, s = self.rows, self.curve
        if len(r) >= 2 and len(s) == len(r) and all(lo < hi for lo, hi in zip(r, r[1:])):
            if rows < r[0]:
                return min(self.a + self.b * rows, s[0])
            if rows <= r[-1]:
                i = bisect.bisect_left(r, rows)
                if r[i] == rows:
                    return s[i]
                lo, hi = r[i - 1], r[i]
                return s[i - 1] + (s[i] - s[i - 1]) * (rows - lo) / (hi - lo)
        return self.a + self.b * rows

    @functools.cached_property
    def curve(self) -> list[float]:
        """The measured seconds made non-decreasing in rows: each count's time is at most every larger count's
        (the least of its own and the larger ones', a suffix minimum)."""
        out = list(self.seconds)
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1])
        return out


@dataclass
class Profile:
    """Per-node timing fits for one graph on one device, plus transfer facts."""

    graph: str
    device: dict[str, Any]
    nodes: list[NodeProfile]
    bytes_per_row: list[int]
    message_overhead_s: float
    extents: list[int] = field(default_factory=list)
    step_overhead_s: float = 0.0  # executor bookkeeping per node a side runs (row stores, waits, sends)
    mac_s_per_byte: float = 0.0  # authenticated links: keyed MAC of a tile, per byte (sender and receiver each)
    codecs: list[CodecProfile] = field(default_factory=list)  # lossless codec costs on this side, per tile kind
    # Per-tile wire work on this side's CPU (beside any codec): building and serialising a tile it sends, decoding,
    # validating and copying one it receives; t = fixed + per_byte x payload bytes. Measured by
    # `measure_tile_wire_cost`; 0 in profiles made before it (they load, the tiles then cost the message overhead).
    tile_send_s: float = 0.0
    tile_send_s_per_byte: float = 0.0
    tile_recv_s: float = 0.0
    tile_recv_s_per_byte: float = 0.0
    # Seconds every band of a node cut into several bands costs beyond its rows' profiled time (smaller, less
    # cache-friendly operator calls, halo rows, the concatenation of pieces), in this profile's time units:
    # measured by `measure_band_overhead`; 0 in older profiles.
    band_step_s: float = 0.0
    # Measured time factor of a band's operator call per band count (k -> factor): device-only in k wavefront bands
    # against one band, so the model's k-band / one-band ratio of that run is the measured one at every k the
    # solver tries (`measure_band_factors`); a count between two measured ones is interpolated in log2(k). Empty in
    # older profiles (then `band_step_s`, or nothing).
    band_factors: dict[int, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries
    def time(self, node: int, rows: int) -> float:
        """Seconds for `rows` output rows of node `node` on this device."""
        return self.nodes[node].time(rows)

    def band_factor(self, bands: int) -> float:
        """Time factor of one band's operator call when its node is cut into `bands` bands (1.0: no factors
        measured, or one band): the measured factor, interpolated in log2(bands) between measured counts, the
        nearest measured one outside them."""
        f = self.band_factors
        if bands <= 1 or not f:
            return 1.0
        if bands in f:
            return f[bands]
        ks = sorted(f)
        if bands <= ks[0]:
            return f[ks[0]]
        if bands >= ks[-1]:
            return f[ks[-1]]
        i = bisect.bisect_left(ks, bands)
        lo, hi = ks[i - 1], ks[i]
        w = (math.log2(bands) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
        return f[lo] + (f[hi] - f[lo]) * w

    def tile_send_time(self, nbytes: float) -> float:
        """CPU seconds this side spends turning one tile of `nbytes` payload bytes into wire bytes."""
        return self.tile_send_s + self.tile_send_s_per_byte * nbytes

    def tile_recv_time(self, nbytes: float) -> float:
        """CPU seconds this side spends decoding and checking one received tile of `nbytes` payload bytes."""
        return self.tile_recv_s + self.tile_recv_s_per_byte * nbytes

    def wire_costs(self) -> tuple[float, float, float, float]:
        """(send fixed s, send s per byte, receive fixed s, receive s per byte) of one tile."""
        return self.tile_send_s, self.tile_send_s_per_byte, self.tile_recv_s, self.tile_recv_s_per_byte

    def total(self) -> float:
        """Seconds for the whole graph on this device (sum of whole-node times)."""
        return sum(p.time(e) for p, e in zip(self.nodes, self.extents))

    def scaled(
        self, factor: float, name: str, scale_overhead: bool = True, codec_factor: float | None = None
    ) -> Profile:
        """This profile with every compute time multiplied by `factor` (e.g. 1/20 for a server 20x faster).

        Used where the other side cannot be measured (no GPU here); the factor is recorded. The executor's
        per-step overhead scales too unless `scale_overhead` is False (a robot slowed only in its operators).
        Codec times and the per-tile wire work (CPU work) scale by `codec_factor`, default `factor`: a robot slowed
        in everything; pass 1.0 for a server derived by its GPU's speed-up, whose codecs still run on a CPU. The
        per-band cost (`band_step_s`, operator time) scales by `factor`."""
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"scale factor must be a finite number > 0, got {factor}")
        dev = dict(self.device)
        dev.update({"name": name, "derived_from": self.device.get("name", "?"), "time_factor": factor})
        if codec_factor is not None:
            dev["codec_factor"] = codec_factor
        return self._times_scaled(factor, dev, scale_overhead, codec_factor)

    def with_codecs(self, codecs: Sequence[CodecProfile]) -> Profile:
        """A copy whose codec profiles are `codecs` ([]: uncompressed only, the systems as published)."""
        return Profile(
            self.graph,
            dict(self.device),
            self.nodes,
            list(self.bytes_per_row),
            self.message_overhead_s,
            list(self.extents),
            self.step_overhead_s,
            self.mac_s_per_byte,
            list(codecs),
            *self.wire_costs(),
            self.band_step_s,
            dict(self.band_factors),
        )

    def _times_scaled(
        self, factor: float, device: dict[str, Any], scale_overhead: bool = True, codec_factor: float | None = None
    ) -> Profile:
        """A copy with compute times (and the step overhead, if asked) times `factor`, codec times times
        `codec_factor` (default `factor`) and `device` as description."""
        cf = factor if codec_factor is None else float(codec_factor)
        if not (cf >= 0 and math.isfinite(cf)):
            raise ValueError(f"codec scale factor must be a finite number >= 0, got {cf}")
        return Profile(
            self.graph,
            device,
            [
                NodeProfile(list(p.rows), [s * factor for s in p.seconds], p.a * factor, p.b * factor)
                for p in self.nodes
            ],
            list(self.bytes_per_row),
            self.message_overhead_s,
            list(self.extents),
            self.step_overhead_s * (factor if scale_overhead else 1.0),
            self.mac_s_per_byte,
            [c.slowed(cf) for c in self.codecs],
            # tile wire work is CPU work, like codecs; the band cost is operator time, like the operators
            **{k: w * cf for k, w in zip(WIRE_COST_FIELDS, self.wire_costs())},
            band_step_s=self.band_step_s * factor,
            band_factors=dict(self.band_factors),  # ratios: a profile scaled in time keeps them
        )

    def device_only_s(self) -> float:
        """Seconds the cost model predicts for the device-only plan on this device: every node's whole extent
        plus the executor's per-step overhead for every node (what `CostModel.latency(Plan.device_only(g))`
        replays)."""
        return self.total() + self.step_overhead_s * len(self.nodes)

    def check(self, g: Graph) -> None:
        """Raise ProfileError unless this profile was measured on graph `g`."""
        if self.graph != g.fingerprint:
            raise ProfileError(f"profile is for graph {self.graph!r}, the graph is {g.fingerprint!r}")
        if len(self.nodes) != len(g.nodes):
            raise ProfileError(f"profile has {len(self.nodes)} nodes, graph has {len(g.nodes)}")

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> str:
        return json.dumps(
            {
                "format": PROFILE_FORMAT,
                "graph": self.graph,
                "device": self.device,
                "message_overhead_s": self.message_overhead_s,
                "bytes_per_row": self.bytes_per_row,
                "extents": self.extents,
                "step_overhead_s": self.step_overhead_s,
                "mac_s_per_byte": self.mac_s_per_byte,
                "nodes": [{"rows": p.rows, "seconds": p.seconds, "a": p.a, "b": p.b} for p in self.nodes],
                "codecs": [c.to_dict() for c in self.codecs],
                "tile_send_s": self.tile_send_s,
                "tile_send_s_per_byte": self.tile_send_s_per_byte,
                "tile_recv_s": self.tile_recv_s,
                "tile_recv_s_per_byte": self.tile_recv_s_per_byte,
                "band_step_s": self.band_step_s,
                # only when measured: profiles without them keep their JSON (and the plan-book keys made from it)
                **(
                    {"band_factors": {str(k): f for k, f in sorted(self.band_factors.items())}}
                    if self.band_factors
                    else {}
                ),
            }
        )

    @classmethod
    def from_json(cls, text: str, g: Graph | None = None) -> Profile:
        """Parse and validate (numbers finite and >= 0); with `g`, refuse a profile of another graph."""
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("format") not in PROFILE_FORMATS:
                raise ProfileError(f"not an intradp profile (format one of {PROFILE_FORMATS} expected)")
            nodes = [
                NodeProfile(
                    [int(r) for r in n["rows"]], [_nonneg(s) for s in n["seconds"]], _nonneg(n["a"]), _nonneg(n["b"])
                )
                for n in d["nodes"]
            ]
            prof = cls(
                str(d["graph"]),
                dict(d.get("device", {})),
                nodes,
                [int(b) for b in d["bytes_per_row"]],
                _nonneg(d["message_overhead_s"]),
                [int(e) for e in d.get("extents", [])],
                _nonneg(d.get("step_overhead_s", 0.0)),
                _nonneg(d.get("mac_s_per_byte", 0.0)),
                [CodecProfile.from_dict(c) for c in d.get("codecs", [])],
                **{k: _nonneg(d.get(k, 0.0)) for k in WIRE_COST_FIELDS},
                band_step_s=_nonneg(d.get("band_step_s", 0.0)),
                band_factors=_band_factors(d.get("band_factors", {})),
            )
            from intradp_ros.core.codec_choice import camera_entry, check_camera_entry  # late: codec registry

            camera = camera_entry(prof.codecs)
            if camera is not None:
                check_camera_entry(camera)  # the ratio a robot observed on its camera: bounded like every field
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"profile malformed: {e}") from None
        if len(prof.bytes_per_row) != len(prof.nodes):
            raise ProfileError("profile malformed: bytes_per_row and nodes differ in length")
        if g is not None:
            prof.check(g)
        return prof


WIRE_COST_FIELDS = ("tile_send_s", "tile_send_s_per_byte", "tile_recv_s", "tile_recv_s_per_byte")


MAX_BAND_FACTOR = 1000.0  # a band call measured more than 1000x its profiled time is not a measurement
MAX_BAND_COUNT = 4096


def _band_factors(d: Any) -> dict[int, float]:
    """Band factors from JSON ({"k": factor}): k an integer in 2..MAX_BAND_COUNT, factor finite in (0,
    MAX_BAND_FACTOR] (a client's profile arrives in the handshake: bounded like every field)."""
    if not isinstance(d, dict) or len(d) > 64:
        raise ValueError(f"band_factors {d!r} is not a small mapping of band count to factor")
    out: dict[int, float] = {}
    for k, v in d.items():
        kk, f = int(k), float(v)
        if not 2 <= kk <= MAX_BAND_COUNT or not (math.isfinite(f) and 0 < f <= MAX_BAND_FACTOR):
            raise ValueError(f"band factor {k!r}: {v!r} out of range (2..{MAX_BAND_COUNT} bands, 0..{MAX_BAND_FACTOR})")
        out[kk] = f
    return out


def _nonneg(v: Any) -> float:
    x = float(v)
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"time {v!r} is not a finite non-negative number")
    return x


# ---------------------------------------------------------------------------------------------- fitting
def fit_line(rows: Sequence[int], seconds: Sequence[float]) -> tuple[float, float]:
    """Least-squares t = a + b*r with a, b >= 0 (a fixed cost per call plus a cost per row)."""
    r = np.asarray(rows, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if len(r) == 1 or np.ptp(r) == 0:
        return float(t.mean()), 0.0
    # weight by 1/t so small tiles (where the fixed cost shows) count as much as big ones
    w = 1.0 / np.maximum(t, 1e-7)
    A = np.stack([np.ones_like(r), r], axis=1) * w[:, None]
    coef, _ = nnls(A, t * w)
    return float(coef[0]), float(coef[1])


# row counts profiled per node: the whole extent and 5 halvings, down to the 1/32 bands the solver may choose
PROFILE_SIZES = 6


def row_counts(extent: int, sizes: int = 4) -> list[int]:
    """A handful of distinct tile sizes: the whole extent, then halving (at least one row)."""
    out = {max(1, extent)}
    r = extent
    while len(out) < sizes and r > 1:
        r = max(1, r // 2)
        out.add(r)
    return sorted(out)


# ---------------------------------------------------------------------------------------------- device
def describe_device(device: torch.device) -> dict[str, Any]:
    """What the profile was measured on (shown in tables, part of the cache key)."""
    d: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    d["cpu"] = cpu or platform.processor()
    d["cores"] = os.cpu_count() or 0
    d["cpu_quota"] = cpu_quota()  # None: not throttled by a cgroup quota
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    d["name"] = d.get("gpu") or f"cpu:{d['cpu']}"
    return d


def measure_message_overhead(repeats: int = 200) -> float:
    """Median seconds to hand a tiny tile to another thread and decode it (in-process transport cost).

    The ROS transport has its own (larger) overhead; override it in the profile when planning for it."""
    q: queue.Queue[bytes | None] = queue.Queue()
    back: queue.Queue[float] = queue.Queue()

    def receiver() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            np.frombuffer(item, dtype=np.float32)
            back.put(time.perf_counter())

    th = threading.Thread(target=receiver, daemon=True)
    th.start()
    arr = np.zeros(16, dtype=np.float32)
    samples = []
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            q.put(arr.tobytes())
            t1 = back.get(timeout=5.0)
            samples.append(t1 - t0)
    finally:
        q.put(None)
        th.join(timeout=5.0)
    return float(statistics.median(samples))


WIRE_SAMPLE_BYTES = (256, 64 << 10, 1 << 20)  # tile payloads the wire cost is measured at (fixed + per byte)


def measure_tile_wire_cost(repeats: int = 30) -> tuple[float, float, float, float]:
    """(send fixed s, send s per byte, receive fixed s, receive s per byte) of one raw float32 tile on this CPU.

    Send: the runtime's sender work for a computed band (tensor to a contiguous numpy array, a Tile, the wire
    encoding with its field checks); receive: the wire decoding and the copy the receiver makes of the read-only
    payload (core/runtime/wire.check_tile). Medians per size, a line fitted through them (a, b >= 0); the fixed part
    is then raised to the smallest size's cold time (`codecs.profile.evict_caches` before each call), as a band
    tile's call is in a run. Codec work comes on top, from the codec profiles."""
    from intradp_ros.core.codec import decode_tile, encode_tile  # late: the codec imports the codecs
    from intradp_ros.core.codecs.profile import cold_buffer, evict_caches
    from intradp_ros.core.tile import CODEC_RAW, Tile

    def one(nbytes: int, t: torch.Tensor, between: Callable[[], None] = lambda: None) -> tuple[float, float]:
        t0 = time.perf_counter()
        tile = Tile(1, 1, 1, 0, 0, t.shape[0], t.detach().contiguous().numpy(), CODEC_RAW, 0, "")
        wire = encode_tile(tile)
        sent = time.perf_counter() - t0
        between()
        t1 = time.perf_counter()
        back = decode_tile(wire)
        data = back.data if back.data.flags.writeable else back.data.copy()
        torch.from_numpy(data)
        return sent, time.perf_counter() - t1

    send_med, recv_med = [], []
    for nbytes in WIRE_SAMPLE_BYTES:
        t = torch.rand(max(nbytes // 4, 1))
        pairs = [one(nbytes, t) for _ in range(max(3, repeats))]
        send_med.append(statistics.median(p[0] for p in pairs))
        recv_med.append(statistics.median(p[1] for p in pairs))
    # The per-call part cold: in a run a band tile is made after operator calls or a wait, and a call timed back to
    # back, warm, is 2-3x cheaper (its bytes, just computed, are warm, so the per-byte slope stays the warm one).
    small = min(WIRE_SAMPLE_BYTES)
    buf = cold_buffer()
    t = torch.rand(max(small // 4, 1))
    cold = []
    for _ in range(max(3, repeats)):
        evict_caches(buf)
        cold.append(one(small, t, functools.partial(evict_caches, buf)))  # the receiver meets it cold too
    sizes = list(WIRE_SAMPLE_BYTES)
    sa, sb = fit_line(sizes, send_med)
    ra, rb = fit_line(sizes, recv_med)
    sa = max(sa, statistics.median(c[0] for c in cold) - sb * small)
    ra = max(ra, statistics.median(c[1] for c in cold) - rb * small)
    return sa, sb, ra, rb


# ---------------------------------------------------------------------------------------------- profiling
def _piece(g: Graph, u: int, value: Any, rows: tuple[int, int] | None) -> Any:
    n = g.nodes[u]
    if n.axis is None or not isinstance(value, torch.Tensor):
        return value
    if rows is None:
        return value.narrow(n.axis, 0, 0)
    return value.narrow(n.axis, rows[0], rows[1] - rows[0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _constants_on(g: Graph, dev: torch.device) -> dict[str, Any]:
    """The graph's constants moved to `dev` (what a forward pass of its row maps reads)."""
    return {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in g.constants.items()}


def _last_uses(g: Graph, keep_outputs: bool) -> list[int]:
    """Per node, the index of the last node that reads its value (a forward pass frees it after that one);
    outputs are kept to the end when `keep_outputs`."""
    last_use = [n.index for n in g.nodes]
    for n in g.nodes:
        for u in n.inputs:
            last_use[u] = max(last_use[u], n.index)
    if keep_outputs:
        for i in g.output_indices:
            last_use[i] = len(g.nodes)
    return last_use


def profile_graph(
    g: Graph,
    inputs: Sequence[torch.Tensor],
    device: str | torch.device = "cpu",
    warmup: int = 1,
    repeats: int = 3,
    sizes: int = PROFILE_SIZES,
    progress: Callable[[int, int], None] | None = None,
    message_overhead_s: float | None = None,
    step_overhead: bool = True,
    codecs: bool = True,
    codec_repeats: int = 3,
    wire_cost: bool = True,
    band_overhead: bool = False,
) -> Profile:
    """Time every node of `g` on `device` for a few row counts (interior tiles, as the executor runs them).

    Repeats are whole passes over the graph in topological order (each node timed once per size per
    pass), so caches are as cold as in a real inference, not warmed by back-to-back calls. Values are
    freed after their last consumer, so a big model at full resolution fits in memory. With
    `step_overhead`, one device-only run through the engine's executor measures its per-step bookkeeping.
    With `codecs`, the lossless codecs are profiled on this CPU (`codec_repeats` each) on samples of the run's own
    tensors, a few per tile kind (core/codec_choice.SampleCollector): profile on representative inputs (a real
    camera frame, a real scan), since random inputs do not compress. With `wire_cost`, the per-tile wire work of
    this CPU (`measure_tile_wire_cost`). With `band_overhead` (off by default: a few extra whole runs), the cost of
    a band beyond its rows' profile (`measure_band_overhead`). `progress(done, total)` is called after each node of
    each pass."""
    dev = torch.device(device)
    consts = _constants_on(g, dev)
    last_use = _last_uses(g, keep_outputs=True)
    sizes_of = [row_counts(n.extent, sizes) if n.is_local else [n.extent] for n in g.nodes]
    samples: list[dict[int, list[float]]] = [{r: [] for r in rs} for rs in sizes_of]
    # bytes per row on the wire: the graph's, except sparse nodes, whose survivors are counted on the inputs
    wire_bpr = [n.bytes_per_row for n in g.nodes]
    passes = warmup + max(1, repeats)
    from intradp_ros.core.codec_choice import SampleCollector  # late: imports the codec registry

    collector = SampleCollector(g.nodes) if codecs else None
    with torch.no_grad():
        for p in range(passes):
            values: list[Any] = [None] * len(g.nodes)
            for pos, idx in enumerate(g.input_indices):
                values[idx] = inputs[pos].to(dev)
                if collector is not None and p == 0:
                    collector.add(g.nodes[idx], values[idx])
            for n in g.nodes:
                if not n.is_input:
                    args = [values[u] for u in n.inputs]
                    for r in sorted(sizes_of[n.index], reverse=True):
                        a = (n.extent - r) // 2
                        pieces = (
                            args
                            if r == n.extent
                            else [_piece(g, u, values[u], rows) for u, rows in zip(n.inputs, n.rowmap.need(a, a + r))]
                        )
                        _sync(dev)
                        t0 = time.perf_counter()
                        out = n.rowmap.run(a, a + r, pieces, consts)
                        _sync(dev)
                        if p >= warmup:
                            samples[n.index][r].append(time.perf_counter() - t0)
                        if r == n.extent:
                            values[n.index] = out
                            if collector is not None and p == 0:
                                collector.add(n, out)
                            if n.is_sparse:  # survivors on this input: bytes a row really costs
                                wire_bpr[n.index] = max(wire_bpr[n.index], -(-int(out.nbytes) // max(n.extent, 1)))
                        del out, pieces
                for u in set(n.inputs) | {n.index}:
                    if last_use[u] <= n.index:
                        values[u] = None
                if progress is not None:
                    progress(p * len(g.nodes) + n.index + 1, passes * len(g.nodes))
            del values
    profs: list[NodeProfile] = []
    for n in g.nodes:
        if n.is_input:
            profs.append(NodeProfile([n.extent], [0.0], 0.0, 0.0))
            continue
        rows = sorted(samples[n.index])
        # the least of the passes, not their median: other processes' load only ever adds time, and on a shared
        # machine a spike hits one or two of three passes (a server profile measured at load 10 held VGG19 at
        # 2.1 s for a 0.5 s forward, with per-call times that made every band look as dear as the whole layer)
        secs = [float(min(samples[n.index][r])) for r in rows]
        a_fit, b_fit = fit_line(rows, secs)
        profs.append(NodeProfile(rows, secs, a_fit, b_fit))
    ovh = measure_message_overhead() if message_overhead_s is None else float(message_overhead_s)
    codec_profiles = collector.profile("here", max(1, codec_repeats)) if collector is not None else []
    prof = Profile(
        g.fingerprint,
        describe_device(dev),
        profs,
        wire_bpr,
        ovh,
        [n.extent for n in g.nodes],
        0.0,
        codecs=codec_profiles,
    )
    if step_overhead:
        prof.step_overhead_s = measure_step_overhead(g, inputs, dev)
    if band_overhead:
        prof.band_factors = measure_band_factors(g, inputs, dev, prof)
        prof.device[BAND_COST_KEY] = True  # measured: cached_profile can tell
    prof.mac_s_per_byte = mac_cost_s_per_mb() / (1 << 20)  # this CPU's tile MAC, charged on authenticated links
    if wire_cost:
        wire = measure_tile_wire_cost()
        prof.tile_send_s, prof.tile_send_s_per_byte, prof.tile_recv_s, prof.tile_recv_s_per_byte = wire
    return prof


def measure_step_overhead(g: Graph, inputs: Sequence[torch.Tensor], device: torch.device, runs: int = 2) -> float:
    """Seconds the engine's executor spends per step beyond the operator calls (device-only runs)."""
    from intradp_ros.core.executor import ClientHalf, ServerHalf  # ROS-free; imported late (heavy)
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.transport import inprocess_pair

    plan = Plan.device_only(g)
    robot_end, server_end = inprocess_pair(None)
    server = ServerHalf(g, server_end, [plan], device=device)
    client = ClientHalf(g, robot_end, device=device)
    per_step = []
    try:
        for _ in range(runs + 1):
            client.infer(plan, *inputs)
            st = client.last_stats
            if st is not None:
                per_step.append(max(st.total_s - st.compute_s, 0.0) / len(g.nodes))
    finally:
        client.close()
        server.close()
    return float(statistics.median(per_step[1:] or per_step or [0.0]))


# bands of the device-only run that measures the per-band cost: the finest count the solver tries
# (solver.BAND_CHOICES), since thin bands are where the operator profile misses most (KAPAO-L 512x640 device-only,
# load ~2: 8 bands 1.2x one band, as the profile's curve predicts; 32 bands 1.85x); coarser counts, with fewer
# steps, pay the per-step term fewer times
BAND_PROFILE_K = 32


def measure_band_overhead(
    g: Graph,
    inputs: Sequence[torch.Tensor],
    device: torch.device,
    prof: Profile,
    k: int = BAND_PROFILE_K,
    runs: int = 2,
) -> float:
    """Seconds (in `prof`'s time units) each step of a node cut into bands costs beyond its rows' profiled time.

    Device-only through the executor in one band and in k wavefront bands, interleaved (the fastest of `runs` after
    a warm-up of each: other processes' load only adds time, and a spike during one run would otherwise be charged
    to every band): the profile predicts both (`pred_1`, `pred_k`); the measured banded run, brought to the
    profile's scale by the one-band run (x pred_1 / t_1: a profile calibrated to whole frames later scales this
    term with it), minus `pred_k`, spread over the steps of banded nodes. So the cost model's banded / one-band
    ratio of the device-only run is the measured one; 0 when bands cost no more than the profile says."""
    from intradp_ros.core.cost_model import CostModel  # late: the cost model imports this module
    from intradp_ros.core.executor import ClientHalf
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.runtime.schedule import plan_schedule
    from intradp_ros.core.transport import inprocess_pair

    one = Plan.device_only(g)
    many = one.with_bands(k)
    banded_steps = sum(1 for st in plan_schedule(many, "robot").steps if st.bands > 1 and not st.node.is_input)
    if not banded_steps:
        return 0.0
    cm = CostModel(g, prof, prof, codecs=False)
    pred_1, pred_k = cm.latency(one, 1e12), cm.latency(many, 1e12)
    robot_end, _server_end = inprocess_pair(None)
    client = ClientHalf(g, robot_end, device=device)
    t1: list[float] = []
    tk: list[float] = []
    try:
        with torch.no_grad():
            for i in range(runs + 1):
                for plan, acc in ((one, t1), (many, tk))[:: 1 if i % 2 else -1]:
                    t0 = time.perf_counter()
                    client.infer(plan, *inputs)
                    _sync(device)
                    if i:
                        acc.append(time.perf_counter() - t0)
    finally:
        client.close()
    m1, mk = min(t1), min(tk)  # the least disturbed of each: load only ever adds time
    if m1 <= 0:
        return 0.0
    return max(0.0, mk * pred_1 / m1 - pred_k) / banded_steps


# band counts whose factor `measure_band_factors` measures: the counts the solver tries (solver.BAND_CHOICES)
BAND_FACTOR_COUNTS = (2, 4, 8, 16, 32)


def band_factor_from_runs(prof: Profile, many: Any, ratio: float) -> float:
    """The factor on the banded steps' operator time that makes the cost model's device-only replay of the banded
    plan `many` equal `ratio` x its one-band replay (a single side runs its steps one after another, so the
    replay is a sum: unbanded part + factor x banded operator time). Clamped to (0, MAX_BAND_FACTOR]."""
    from intradp_ros.core.cost_model import CostModel  # late: the cost model imports this module
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.runtime.schedule import plan_schedule

    g = many.graph
    plain = dataclasses.replace(prof, band_step_s=0.0, band_factors={})
    pred_1 = CostModel(g, plain, plain, codecs=False).latency(Plan.device_only(g), 1e12)
    fixed, banded = 0.0, 0.0
    for st in plan_schedule(many, "robot").steps:
        if st.node.is_input:  # the banded replay charges graph inputs nothing
            continue
        fixed += prof.step_overhead_s
        t = prof.time(st.node.index, st.rows[1] - st.rows[0])
        if st.bands > 1:
            banded += t
        else:
            fixed += t
    if banded <= 0:
        return 1.0
    return float(min(max((ratio * pred_1 - fixed) / banded, 1.0 / MAX_BAND_FACTOR), MAX_BAND_FACTOR))


def measure_band_factors(
    g: Graph,
    inputs: Sequence[torch.Tensor],
    device: torch.device,
    prof: Profile,
    counts: Sequence[int] = BAND_FACTOR_COUNTS,
    runs: int = 2,
) -> dict[int, float]:
    """Per band count k, the factor on a band's profiled operator time that makes the cost model's k-band /
    one-band ratio of a device-only run the measured one (`band_factor_from_runs`).

    Device-only through the executor in one band and in k wavefront bands for every k, interleaved (the order
    reversed every pass), the least of `runs` passes after a warm-up pass each: other processes' load only adds
    time, so a spike in one pass is not charged to every band. One factor per k, not one per-band constant from
    the finest count: VGG19 224 on 2 threads measured 1.15-1.43x one band at 2-4 bands and 4.5x at 32, which a
    constant per band fitted at 32 charged 1.75-2.5x at 2-4 bands, so the solver never streamed. A factor below
    1 is the operator profile overestimating bands (tiles timed one at a time, out of cache)."""
    from intradp_ros.core.executor import ClientHalf
    from intradp_ros.core.plan import Plan
    from intradp_ros.core.transport import inprocess_pair

    one = Plan.device_only(g)
    plans = {k: one.with_bands(k) for k in counts}
    plans = {k: p for k, p in plans.items() if p.is_banded}
    if not plans:
        return {}
    order: list[tuple[int, Plan]] = [(1, one), *plans.items()]
    times: dict[int, list[float]] = {k: [] for k, _ in order}
    robot_end, _server_end = inprocess_pair(None)
    client = ClientHalf(g, robot_end, device=device)
    try:
        with torch.no_grad():
            for i in range(runs + 1):
                for k, plan in order[:: 1 if i % 2 else -1]:
                    t0 = time.perf_counter()
                    client.infer(plan, *inputs)
                    _sync(device)
                    if i:
                        times[k].append(time.perf_counter() - t0)
    finally:
        client.close()
    t1 = min(times[1])
    if t1 <= 0:
        return {}
    return {k: band_factor_from_runs(prof, plans[k], min(times[k]) / t1) for k in plans}


# ---------------------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """How a per-operator profile was matched to measured whole frames (all times in seconds)."""

    raw_s: float  # device-only prediction of the per-operator profile
    measured_s: float  # median of the measured device-only frames
    factor: float  # measured_s / raw_s: every compute time (and the step overhead) is multiplied by it
    frames: int  # how many frames the median is over

    def to_dict(self) -> dict[str, Any]:
        return {"raw_s": self.raw_s, "measured_s": self.measured_s, "factor": self.factor, "frames": self.frames}


def measure_frames(
    run: Callable[[], Any], frames: int, warmup: int = 1, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    """Wall seconds of `frames` calls of `run` (one whole inference each) after `warmup` untimed calls.

    `clock` is injectable so callers (and tests) can time with another clock."""
    if frames < 1 or warmup < 0:
        raise ValueError(f"need frames >= 1 and warmup >= 0, got {frames}, {warmup}")
    for _ in range(warmup):
        run()
    out = []
    for _ in range(frames):
        t0 = clock()
        run()
        out.append(clock() - t0)
    return out


def quota_clock(quota: float | None = None) -> Callable[[], float]:
    """A clock for timing whole frames of a CPU-throttled process independently of the host's load: its CPU
    seconds (every thread's, `time.process_time`) / its CPU quota, i.e. the wall time a frame takes when the
    quota is all it gets. Wall time under a 0.1-CPU cgroup quota swung 2x with other jobs on the host (the
    quota is a ceiling, not a guarantee), and calibrations to it skewed device-only predictions 0.5-2x. Where
    there is no quota below one CPU (`quota` None: `cpu_quota()` of this process) it is the wall clock."""
    q = cpu_quota() if quota is None else quota
    if q is None or not (0 < q < 1):
        return time.perf_counter
    return lambda: time.process_time() / q


def calibrate_to_frames(profile: Profile, frame_seconds: Sequence[float]) -> tuple[Profile, Calibration]:
    """`profile` scaled so that its device-only prediction equals the median of `frame_seconds`.

    The frames must be device-only inferences through the executor the plans run on (what the cost model
    predicts). All compute times and the executor's step overhead are scaled by one factor: a CPU throttle
    slows both, and the per-operator shape of the profile is still the best guess of where the time goes.
    The message overhead (transport, not compute) is kept. The calibration is recorded in the device
    description (`device["calibration"]`). Raises ProfileError when the profile predicts no time or a
    frame time is not a finite positive number."""
    times = [float(t) for t in frame_seconds]
    if not times or any(not math.isfinite(t) or t <= 0 for t in times):
        raise ProfileError(f"calibration needs finite positive frame times, got {times!r}")
    raw = profile.device_only_s()
    if not (raw > 0 and math.isfinite(raw)):
        raise ProfileError(f"profile predicts {raw!r} s per device-only frame: cannot calibrate")
    measured = float(statistics.median(times))
    cal = Calibration(raw, measured, measured / raw, len(times))
    return apply_calibration(profile, cal), cal


def apply_calibration(profile: Profile, cal: Calibration) -> Profile:
    """`profile` scaled by `cal.factor` with `cal` recorded in its device facts."""
    if not (cal.factor > 0 and math.isfinite(cal.factor)):
        raise ProfileError(f"calibration factor {cal.factor!r} is not a finite number > 0")
    dev = dict(profile.device)
    dev["calibration"] = cal.to_dict()
    return profile._times_scaled(cal.factor, dev, scale_overhead=True)


def handshake_profiles_path(cache_dir: str | os.PathLike[str], g: Graph, robot: str) -> str:
    """Where a client keeps the two profiles of its last accepted handshake (eval/predict.py reads them)."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in robot)[:40]
    return os.path.join(os.fspath(cache_dir), "profiles", f"{g.fingerprint}_handshake_{slug}.json")


def write_handshake_profiles(path: str | os.PathLike[str], robot_json: str, server_json: str) -> None:
    if not robot_json:
        return
    write_atomic(path, json.dumps({"robot_profile": robot_json, "server_profile": server_json}))


def read_handshake_profiles(path: str | os.PathLike[str], g: Graph) -> tuple[Profile, Profile | None] | None:
    """(robot profile, server profile or None) a client stored, or None when missing or malformed."""
    try:
        with open(path) as f:
            d = json.load(f)
        robot = Profile.from_json(str(d["robot_profile"]), g)
        server = Profile.from_json(str(d["server_profile"]), g) if d.get("server_profile") else None
    except (OSError, ValueError, KeyError, TypeError, ProfileError):
        return None
    return robot, server


# ---------------------------------------------------------------------------------------------- cache
CPU_V1_ROOTS = ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct")
CGROUP_V2_ROOT = "/sys/fs/cgroup"


def cpu_quota(
    proc_cgroup: str = "/proc/self/cgroup", v1_roots: Sequence[str] = CPU_V1_ROOTS, v2_root: str = CGROUP_V2_ROOT
) -> float | None:
    """The CPU share this process may use (CFS quota / period, the tightest along its cgroup path, e.g. 0.1
    for 10 ms per 100 ms), or None when unlimited or unknown. cgroup v1 (cpu.cfs_quota_us / cpu.cfs_period_us)
    first, then v2 (cpu.max)."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v1_rel = v2_rel = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if "cpu" in parts[1].split(","):
            v1_rel = parts[2]
        elif parts[0] == "0" and parts[1] == "":
            v2_rel = parts[2]
    if v1_rel is not None:
        for root in v1_roots:
            if os.path.isfile(os.path.join(root, "cpu.cfs_quota_us")):
                return _tightest_share(root, v1_rel, v2=False)
    if v2_rel is not None and os.path.isfile(os.path.join(v2_root, "cgroup.controllers")):
        return _tightest_share(v2_root, v2_rel, v2=True)
    return None


def _tightest_share(root: str, rel: str, v2: bool) -> float | None:
    """Smallest quota share from the group `rel` under `root` up to the root (None: no quota anywhere)."""
    root = os.path.normpath(root)
    path = os.path.normpath(os.path.join(root, rel.lstrip("/")))
    best: float | None = None
    while path.startswith(root):
        share = _group_share(path, v2)
        if share is not None and (best is None or share < best):
            best = share
        if path == root:
            break
        path = os.path.dirname(path)
    return best


def _group_share(path: str, v2: bool) -> float | None:
    try:
        if v2:
            with open(os.path.join(path, "cpu.max")) as f:
                quota_s, period_s = f.read().split()[:2]
            if quota_s == "max":
                return None
            quota, period = int(quota_s), int(period_s)
        else:
            with open(os.path.join(path, "cpu.cfs_quota_us")) as f:
                quota = int(f.read().strip())
            with open(os.path.join(path, "cpu.cfs_period_us")) as f:
                period = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def profile_cache_path(
    cache_dir: str | os.PathLike[str], g: Graph, device: str | torch.device = "cpu", codec_tag: bool = True
) -> str:
    """Where the profile of graph `g` on this device lives: keyed by graph fingerprint, device, torch threads
    and the process's CPU quota (`cpu_quota()`; a throttled robot's per-operator times differ from an
    unthrottled one's on the same machine, so they must not share an entry), and by the candidate codecs its codec
    profiles cover (`codec_set_tag`; `codec_tag=False`: the name entries had before the tag). A profile holding a
    codec that older code does not know (green_delta_zstd) must not be read by it: its plan books would name the
    codec, and that code could neither send nor receive it."""
    desc = describe_device(torch.device(device))
    q = desc.get("cpu_quota")
    tag = f"_q{q:.4g}" if q is not None else ""
    slug = "".join(ch if ch.isalnum() else "_" for ch in f"{desc['name']}_{desc['threads']}t")[:80]
    codecs = f"_c{codec_set_tag()}" if codec_tag else ""
    return os.path.join(os.fspath(cache_dir), "profiles", f"{g.fingerprint}_{slug}{tag.replace('.', 'p')}{codecs}.json")


def codec_set_tag() -> str:
    """A short hash of the candidate codecs per tile kind (core/codec_choice.CANDIDATES) this code profiles."""
    from intradp_ros.core.codec_choice import CANDIDATES  # late: imports the codec registry

    text = ";".join(f"{k}:{','.join(str(c) for c in v)}" for k, v in sorted(CANDIDATES.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def measure_codec_profiles(
    g: Graph, inputs: Sequence[torch.Tensor], device: str | torch.device = "cpu", repeats: int = 3
) -> list[CodecProfile]:
    """Codec profiles on the tensors of one forward pass of `inputs` (what profile_graph measures with its
    operators): to refresh a cached profile's codecs on a representative input without timing operators again."""
    from intradp_ros.core.codec_choice import SampleCollector  # late: imports the codec registry

    dev = torch.device(device)
    consts = _constants_on(g, dev)
    last_use = _last_uses(g, keep_outputs=False)
    collector = SampleCollector(g.nodes)
    values: list[Any] = [None] * len(g.nodes)
    with torch.no_grad():
        for pos, idx in enumerate(g.input_indices):
            values[idx] = inputs[pos].to(dev)
            collector.add(g.nodes[idx], values[idx])
        for n in g.nodes:
            if not n.is_input:
                values[n.index] = n.rowmap.run(0, n.extent, [values[u] for u in n.inputs], consts)
                collector.add(n, values[n.index])
            for u in set(n.inputs) | {n.index}:
                if last_use[u] <= n.index:
                    values[u] = None
    return collector.profile("here", max(1, repeats))


def cached_profile(
    g: Graph,
    inputs: Sequence[torch.Tensor],
    cache_dir: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    codec_input: str = "",
    check_frame: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> tuple[Profile, bool]:
    """(profile, True if read from the cache); measures and stores it on a miss (kwargs: profile_graph's).

    `codec_input` names what `inputs` are (e.g. "camera_sample"): a cached profile whose codecs were measured on
    something else (a random example) gets its codec profiles measured again on `inputs` (one forward pass, the
    operator times kept) and is stored again. So does an entry made before this code's candidate codecs (the
    file name without their tag, see `profile_cache_path`): it is stored under the new name and left in place for
    code that still reads it. With `check_frame`, a cached profile is first compared with one whole forward pass
    timed here (`stale_profile`); a stale one is measured again and `check_frame` is told why."""
    path = profile_cache_path(cache_dir, g, device)
    legacy = profile_cache_path(cache_dir, g, device, codec_tag=False)
    source = path if os.path.isfile(path) else legacy
    if os.path.isfile(source):
        try:
            with open(source) as f:
                prof = Profile.from_json(f.read(), g)
            if missing_band_cost(prof, kwargs):
                raise ProfileError("cached profile lacks what a banded plan costs: measured again")
            if check_frame is not None:
                why = stale_profile(g, inputs, device, prof)
                if why is not None:
                    check_frame(f"cached profile {source} measured again: {why}")
                    raise ProfileError(why)
            if prof.device.get("codec_input", "") == codec_input and source == path:
                return prof, True
            fresh = prof.with_codecs(measure_codec_profiles(g, inputs, device, int(kwargs.get("codec_repeats", 3))))
            fresh.device["codec_input"] = codec_input
            _store_profile(path, fresh)
            return fresh, True
        except ProfileError:
            pass
    prof = profile_graph(g, inputs, device, **kwargs)
    if codec_input:
        prof.device["codec_input"] = codec_input
    _store_profile(path, prof)
    return prof, False


STALE_PROFILE_FACTOR = 3.0  # a frame this many times faster than its cached profile says: not this machine's


def stale_profile(
    g: Graph,
    inputs: Sequence[torch.Tensor],
    device: str | torch.device,
    prof: Profile,
    factor: float = STALE_PROFILE_FACTOR,
) -> str | None:
    """Why `prof` cannot be this machine's profile of `g` now, or None: one whole forward pass timed here (cold, so
    if anything slower than the profile's least-of-passes times) ran more than `factor` x faster than the profile's
    operator sum. Such a profile was measured somewhere slower (inside a robot's CPU quota whose process could not
    see its quota, or under heavy load) and cached under this machine's key; every plan priced from it is wrong (a
    KAPAO-L server profile 18x too slow made Intra-DP keep every frame on the robot). A frame slower than the profile
    is not judged: load slows a frame down, nothing makes one faster."""
    dev = torch.device(device)
    consts = _constants_on(g, dev)
    values: list[Any] = [None] * len(g.nodes)
    for pos, idx in enumerate(g.input_indices):
        values[idx] = inputs[pos].to(dev)
    last_use = _last_uses(g, keep_outputs=False)
    with torch.no_grad():
        _sync(dev)
        t0 = time.perf_counter()
        for n in g.nodes:
            if not n.is_input:
                values[n.index] = n.rowmap.run(0, n.extent, [values[u] for u in n.inputs], consts)
                for u in n.inputs:
                    if last_use[u] <= n.index:
                        values[u] = None
        _sync(dev)
        frame_s = time.perf_counter() - t0
    profiled_s = prof.total()  # the same operator calls; the executor's per-step overhead is not in this pass
    if profiled_s > factor * frame_s:
        return (
            f"it says {profiled_s:.3f} s per frame, a whole forward pass here took {frame_s:.3f} s "
            f"({profiled_s / max(frame_s, 1e-12):.1f}x; limit {factor:g}x): measured on a slower machine, in a CPU "
            "quota or under load"
        )
    return None


BAND_COST_KEY = "band_cost_measured"  # device fact: the profile's per-band and per-tile wire costs were measured


def missing_band_cost(prof: Profile, kwargs: dict[str, Any]) -> bool:
    """True when `kwargs` ask for the per-band cost (`band_overhead`) but the cached `prof` was made without it,
    or without the per-tile wire work (profiles of format /1): a server profile made before streamed plans,
    or measured without them, would price every band as free or, timed under load, as dear as the whole layer
    (a cached one made the system benchmark's plan book keep one band everywhere). It is measured again."""
    if not kwargs.get("band_overhead"):
        return False
    return not prof.device.get(BAND_COST_KEY) or (kwargs.get("wire_cost", True) and not any(prof.wire_costs()))


def _store_profile(path: str, prof: Profile) -> None:
    write_atomic(path, prof.to_json())
