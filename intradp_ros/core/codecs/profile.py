"""Measured cost of each codec on this machine: size ratio and encode/decode time, as data for the cost model.

A codec pays on a transfer of B raw bytes at bandwidth W only if ratio*B/W + encode + decode < B/W; on a slow
robot (its profiled slow-down) or a fast link a heavy codec loses. `profile_codecs` measures that on sample
tiles, the same way operators are profiled (median of repeats, on the side that will run it); the solver reads
`CodecProfile.seconds(nbytes, bandwidth)`. `measure_codec` is also what scripts/bench_wire prints.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from intradp_ros.core.codec import WireTile, decode_tile, encode_tile
from intradp_ros.core.codecs import get_codec
from intradp_ros.core.tile import Tile


@dataclass(frozen=True)
class Measurement:
    """One codec on one tile: payload bytes, median encode/decode seconds, bit-exact round trip."""

    codec: int
    name: str
    raw_bytes: int
    bytes: int
    encode_s: float
    decode_s: float
    exact: bool

    @property
    def ratio(self) -> float:
        """Payload bytes over raw bytes (0.5: half the bytes of raw)."""
        return self.bytes / self.raw_bytes if self.raw_bytes else 1.0


def _tile(arr: np.ndarray, codec: int, index: np.ndarray | None, encoded: bytes | None) -> Tile:
    rows = arr.shape[0] if arr.ndim else 1
    return Tile(1, 1, 0, 0, 0, max(rows, 1), arr, codec, index=index, encoded=encoded)


EVICT_BYTES = 8 << 20  # read once between timed calls: as cold as a convolution between two band tiles leaves them


def cold_buffer() -> np.ndarray:
    """A buffer for `evict_caches` (EVICT_BYTES; allocate it for a measurement and let it go afterwards)."""
    return np.ones(EVICT_BYTES, dtype=np.uint8)


def evict_caches(buf: np.ndarray) -> None:
    """One read pass over `buf`, so the next timed call starts about as cold as a band tile's coding does in a run.
    Between two tiles a side computes (operator calls over megabytes of activations) or waits, and a codec call
    timed back to back, warm, measured 2-3x cheaper than after either: a 4.7 kB uint8 image band with delta_zstd
    29 us encoding warm, 63-67 us after a 3x3 convolution over 64 rows, 62-64 us after a 2 ms sleep, 58 us after
    this pass; raw 6, 17-19, 13-15, 20 us (one thread, load average ~2; a full write pass over 32 MiB, which also
    leaves dirty lines to write back, measured 72-83 and 25-34 us: colder than a run)."""
    int(buf.sum())


def measure_codec(
    codec: int,
    arr: np.ndarray,
    repeat: int = 3,
    index: np.ndarray | None = None,
    encoded: bytes | None = None,
    reference: np.ndarray | None = None,
    cold: bool = False,
) -> Measurement:
    """Encode and decode `arr` `repeat` times with `codec` through the wire codec (what a transport does).

    `reference`: what the decode must equal bit for bit (default `arr`; the camera codec decodes to it).
    `cold`: evict the caches before each encode and each decode (`evict_caches`), as a run's operator calls do.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    tile = _tile(arr, codec, index, encoded)
    enc_times: list[float] = []
    dec_times: list[float] = []
    wire: WireTile | None = None
    out: Tile | None = None
    buf = cold_buffer() if cold else None
    for _ in range(repeat):
        if buf is not None:
            evict_caches(buf)
        t0 = time.perf_counter()
        wire = encode_tile(tile)
        enc_times.append(time.perf_counter() - t0)
        if buf is not None:
            evict_caches(buf)
        t1 = time.perf_counter()
        out = decode_tile(wire)
        dec_times.append(time.perf_counter() - t1)
    del buf
    assert wire is not None and out is not None
    want = arr if reference is None else reference
    exact = out.data.dtype == want.dtype and out.data.shape == want.shape and out.data.tobytes() == want.tobytes()
    if index is not None:
        exact = exact and out.index is not None and np.array_equal(out.index, index)
    raw = int(arr.nbytes) + (int(np.asarray(index).nbytes) if index is not None else 0)
    return Measurement(
        codec=codec,
        name=get_codec(codec).name,
        raw_bytes=raw,
        bytes=len(memoryview(wire.data).cast("B")),
        encode_s=statistics.median(enc_times),
        decode_s=statistics.median(dec_times),
        exact=bool(exact),
    )


@dataclass(frozen=True)
class CodecProfile:
    """A codec's cost on one side, per raw megabyte (1e6 bytes), measured on sample tiles of a kind.

    `kind` names the tiles it was measured on (core/codec_choice.codec_kind: "image" for uint8 rows, "binary" for
    0/1 grids, "sparse" for sparse tiles, else the dtype); "" means the dtype alone (profiles made before kinds).
    `ratio` is payload bytes over the samples' raw bytes (array bytes, positions included for sparse tiles)."""

    codec: int
    name: str
    side: str
    dtype: str
    ratio: float
    encode_s_per_mb: float
    decode_s_per_mb: float
    samples: int
    kind: str = ""
    encode_fixed_s: float = 0.0  # seconds per call beyond the per-MB cost (small band tiles pay it each)
    decode_fixed_s: float = 0.0

    @property
    def kind_name(self) -> str:
        """The kind these figures stand for (the dtype when no kind was recorded)."""
        return self.kind or self.dtype

    def seconds(
        self, raw_bytes: int, bandwidth_bytes_per_s: float, decode_profile: CodecProfile | None = None
    ) -> float:
        """Encode here + payload on the link + decode on the peer (`decode_profile`, default this side's)."""
        mb = raw_bytes / 1e6
        peer = decode_profile or self
        dec = peer.decode_fixed_s + peer.decode_s_per_mb * mb
        return self.encode_fixed_s + self.encode_s_per_mb * mb + self.ratio * raw_bytes / bandwidth_bytes_per_s + dec

    def pays(self, raw_bytes: int, bandwidth_bytes_per_s: float, decode_profile: CodecProfile | None = None) -> bool:
        """True when sending compressed beats sending raw bytes on this link."""
        return self.seconds(raw_bytes, bandwidth_bytes_per_s, decode_profile) < raw_bytes / bandwidth_bytes_per_s

    def slowed(self, factor: float) -> CodecProfile:
        """The profile on a side `factor` times slower (e.g. the robot's profiled slow-down)."""
        return CodecProfile(
            self.codec, self.name, self.side, self.dtype, self.ratio,
            self.encode_s_per_mb * factor, self.decode_s_per_mb * factor, self.samples, self.kind,
            self.encode_fixed_s * factor, self.decode_fixed_s * factor,
        )  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(text: str) -> CodecProfile:
        return CodecProfile.from_dict(json.loads(text))

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> CodecProfile:
        """Parse and check one profile entry (ValueError/TypeError/KeyError when malformed: numbers finite, a
        ratio > 0, times >= 0)."""
        prof = CodecProfile(
            int(d["codec"]), str(d["name"]), str(d["side"]), str(d["dtype"]), float(d["ratio"]),
            float(d["encode_s_per_mb"]), float(d["decode_s_per_mb"]), int(d["samples"]),
            str(d.get("kind", "")), float(d.get("encode_fixed_s", 0.0)), float(d.get("decode_fixed_s", 0.0)),
        )  # fmt: skip
        times = (prof.encode_s_per_mb, prof.decode_s_per_mb, prof.encode_fixed_s, prof.decode_fixed_s)
        if not (math.isfinite(prof.ratio) and prof.ratio > 0) or not all(math.isfinite(t) and t >= 0 for t in times):
            raise ValueError(f"codec profile {prof.name}: ratio must be > 0 and times >= 0, finite: {d!r}")
        return prof


def profile_codecs(
    samples: Sequence[np.ndarray],
    codecs: Iterable[int],
    side: str,
    repeat: int = 3,
    kind: str = "",
    indexes: Sequence[np.ndarray | None] | None = None,
) -> list[CodecProfile]:
    """One CodecProfile per codec that accepts every sample (all of one dtype); ratio and times pooled over them.

    `kind` is recorded in the profiles; `indexes` are the samples' sparse positions (then only sparse codecs are
    profiled, else only dense ones). A codec that is not lossless on a sample raises: a profile must never
    recommend a codec that changes data.
    """
    if not samples:
        raise ValueError("profile_codecs needs at least one sample tile")
    dtype = samples[0].dtype.name
    if any(s.dtype.name != dtype for s in samples):
        raise ValueError("profile samples must share one dtype")
    idx: list[np.ndarray | None] = list(indexes) if indexes is not None else [None] * len(samples)
    sparse = indexes is not None
    if len(idx) != len(samples):
        raise ValueError("one sparse position array per sample expected")
    out: list[CodecProfile] = []
    for cid in codecs:
        codec = get_codec(cid)
        if codec.sparse != sparse or (codec.dtypes is not None and dtype not in codec.dtypes):
            continue
        try:
            # cold, as a tile's coding is in a run (after operator calls or a wait): warm, back to back, it measured
            # 2-3x cheaper per call and about 2x per MB (VGG19 delta_zstd bands in scripts/bench_offload)
            ms = [measure_codec(cid, s, repeat, index=i, cold=True) for s, i in zip(samples, idx)]
        except Exception:  # noqa: BLE001 - a codec that cannot carry these tiles (layout) is not profiled
            continue
        if not all(m.exact for m in ms):
            raise AssertionError(f"codec {codec.name} did not round-trip a {dtype} sample exactly")
        try:  # the per-call cost: one row of the first sample
            tiny_arr, tiny_idx = _tiny(samples[0], idx[0])
            # cold: a band tile's call in a run comes after operator calls or a wait (warm: 2-3x cheaper)
            fixed = measure_codec(cid, tiny_arr, max(repeat, 3), index=tiny_idx, cold=True)
            enc_fixed, dec_fixed = fixed.encode_s, fixed.decode_s
        except Exception:  # noqa: BLE001 - a layout the codec refuses for one row: no fixed cost known
            enc_fixed = dec_fixed = 0.0
        raw_mb = sum(m.raw_bytes for m in ms) / 1e6 or 1e-12
        n = len(ms)
        out.append(
            CodecProfile(
                codec=cid,
                name=codec.name,
                side=side,
                dtype=dtype,
                ratio=sum(m.bytes for m in ms) / max(1, sum(m.raw_bytes for m in ms)),
                encode_s_per_mb=max(sum(m.encode_s for m in ms) - n * enc_fixed, 0.0) / raw_mb,
                decode_s_per_mb=max(sum(m.decode_s for m in ms) - n * dec_fixed, 0.0) / raw_mb,
                samples=n,
                kind=kind,
                encode_fixed_s=enc_fixed,
                decode_fixed_s=dec_fixed,
            )
        )
    return out


def _tiny(arr: np.ndarray, index: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """One row of a sample (a band tile at its smallest): a few entries of a sparse one, else the first row along
    the second-to-last axis (image rows) when it has more than one, else along the first."""
    if index is not None:
        return np.ascontiguousarray(arr[:8]), np.ascontiguousarray(index[:8])
    if arr.ndim == 0:
        return arr, None
    axis = arr.ndim - 2 if arr.ndim >= 2 and arr.shape[arr.ndim - 2] > 1 else 0
    return np.ascontiguousarray(np.take(arr, [0], axis=axis)), None
