"""Which lossless codec pays for a transfer: the codec part of the cost model and of the solver's choice.

A transfer is rows of one graph node crossing the link in one direction. The node's kind (`codec_kind`: uint8
image rows, 0/1 grids, sparse tiles, or a dtype) decides which codecs can carry it (`CANDIDATES`) and its
baseline: what the wire sends uncompressed (raw elements, bit-packed 0/1 grids, sparse survivors with int64
positions), whose bytes the cost model charges as they are. A codec option replaces those B bytes by ratio x B
and adds encode seconds on the sender and decode seconds on the receiver, from the two sides' `CodecProfile`s
(measured like operator profiles, on samples of that kind; the robot's slowed like its operators). An option is
chosen only where encode + ratio x B / W + decode beats B / W by `PAY_MARGIN`: a codec that does not pay is not
used. Every candidate is lossless; lossy codecs stay the opt-in path of core/codec.choose_codec.

The camera option (CODEC_CAMERA, kind "camera"): a graph input sent UP as ONE tile holding all its rows may travel
as the camera's own JPEG/PNG bytes (camera passthrough). The robot's profile carries a camera CodecProfile only
once the server has decoded a probe frame identically, with the ratio it OBSERVES on its frames (file bytes /
model-input pixel bytes) and ~0 encode; the server's carries its measured decode (per MB of model input). The
option is offered for no other transfer: a banded or partial input has no file to send (`CodecOption.whole_only`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from intradp_ros.core.codecs.image import rgb_layout, webp_layout
from intradp_ros.core.codecs.profile import CodecProfile
from intradp_ros.core.tile import (
    CODEC_BITPACK,
    CODEC_BITPACK_ZSTD,
    CODEC_CAMERA,
    CODEC_DELTA_ZSTD,
    CODEC_GREEN_DELTA_ZSTD,
    CODEC_RAW,
    CODEC_SPARSE,
    CODEC_SPARSE_ZSTD,
    CODEC_WEBP,
    CODEC_ZSTD,
    CODEC_ZSTD_SHUFFLE,
)
from intradp_ros.core.vocabulary import Direction

KIND_IMAGE = "image"  # uint8 rows (camera frames, images)
KIND_BINARY = "binary"  # 0/1 grids that travel bit-packed (occupancy)
KIND_SPARSE = "sparse"  # survivors of a per-position filter with their positions
KIND_CAMERA = "camera"  # the graph input as the camera's JPEG/PNG file (passthrough; profiled apart, see above)
CAMERA_MAX_RATIO = 4.0  # a camera file larger than this many times the model input's pixels is refused as absurd

# Lossless codecs the solver may choose per kind (a dtype name for other dense tiles; see `candidates`).
CANDIDATES: dict[str, tuple[int, ...]] = {
    KIND_IMAGE: (CODEC_ZSTD, CODEC_DELTA_ZSTD, CODEC_GREEN_DELTA_ZSTD, CODEC_WEBP),
    KIND_BINARY: (CODEC_BITPACK_ZSTD,),
    KIND_SPARSE: (CODEC_SPARSE_ZSTD,),
}
MULTI_BYTE_CANDIDATES = (CODEC_ZSTD, CODEC_ZSTD_SHUFFLE)
SINGLE_BYTE_CANDIDATES = (CODEC_ZSTD,)
BASELINES: dict[str, int] = {KIND_BINARY: CODEC_BITPACK, KIND_SPARSE: CODEC_SPARSE}
PAY_MARGIN = 0.02  # an option must be predicted at least 2 % faster than the baseline transfer
SAMPLE_BYTES = 1 << 20  # a profile sample is cut to at most this many raw bytes (rows along the first axis)
SAMPLES_PER_KIND = 3


def dtype_name(dtype: Any) -> str:
    """numpy-style name of a torch or numpy dtype ('float32')."""
    return str(dtype).replace("torch.", "")


def codec_kind(node: Any) -> str:
    """The kind of tiles graph node `node` sends: 'sparse', 'binary', 'image' (uint8) or its dtype name."""
    if getattr(node, "is_sparse", False):
        return KIND_SPARSE
    if getattr(node, "binary", False):
        return KIND_BINARY
    name = dtype_name(node.dtype)
    return KIND_IMAGE if name == "uint8" else name


def baseline(kind: str) -> int:
    """The codec a tile of `kind` travels in without compression (what the cost model's bytes are)."""
    return BASELINES.get(kind, CODEC_RAW)


def candidates(kind: str) -> tuple[int, ...]:
    """The lossless codecs that may carry tiles of `kind` (besides its baseline)."""
    if kind in CANDIDATES:
        return CANDIDATES[kind]
    try:
        size = np.dtype(kind).itemsize
    except TypeError:
        return ()
    return MULTI_BYTE_CANDIDATES if size > 1 else SINGLE_BYTE_CANDIDATES


def camera_input(node: Any) -> bool:
    """True when `node` is a graph input a camera file can stand for: uint8 [1, 3, H, W] (a letterboxed frame)."""
    shape = tuple(int(d) for d in getattr(node, "shape", ()))
    return (
        bool(getattr(node, "is_input", False))
        and dtype_name(node.dtype) == "uint8"
        and len(shape) == 4
        and (shape[:2] == (1, 3))
    )


def codec_name(codec: int) -> str:
    """The registered name of `codec` ('camera' for CODEC_CAMERA, registered only where models/ is imported)."""
    if codec == CODEC_CAMERA:
        return KIND_CAMERA
    from intradp_ros.core.codecs import get_codec

    return get_codec(codec).name


def applies(codec: int, node: Any) -> bool:
    """True when `codec` may carry row tiles of `node`: its baseline, or a candidate of its kind that fits its
    layout (lossless WebP needs [1, 3, h, w] image rows split along h, green_delta_zstd RGB planes [.., 3, h, w] not
    split along the channels); CODEC_CAMERA a camera-shaped graph input
    (whether the transfer is one whole tile is the cost model's and the runtime's check)."""
    if codec == CODEC_CAMERA:
        return camera_input(node)
    kind = codec_kind(node)
    if codec == baseline(kind):
        return True
    if codec not in candidates(kind):
        return False
    if codec == CODEC_WEBP:
        shape = tuple(int(d) for d in node.shape)
        return webp_layout(shape) is None and node.axis in (None, len(shape) - 2)
    if codec == CODEC_GREEN_DELTA_ZSTD:
        shape = tuple(int(d) for d in node.shape)
        return rgb_layout(shape) is None and node.axis != len(shape) - 3
    return True


# ---------------------------------------------------------------------------------------------- profiling
def crop_sample(arr: np.ndarray, limit: int = SAMPLE_BYTES) -> np.ndarray:
    """`arr` cut to at most `limit` bytes: its first rows along the second-to-last axis (image rows) when that has
    more than one, else along the first (a row tile as it travels)."""
    if arr.nbytes <= limit or arr.ndim == 0:
        return arr
    axis = arr.ndim - 2 if arr.ndim >= 2 and arr.shape[arr.ndim - 2] > 1 else 0
    keep = max(1, int(arr.shape[axis] * limit // arr.nbytes))
    return np.ascontiguousarray(np.take(arr, np.arange(keep), axis=axis))


def profile_kind(
    kind: str,
    samples: Sequence[np.ndarray],
    side: str,
    repeat: int = 3,
    indexes: Sequence[np.ndarray] | None = None,
) -> list[CodecProfile]:
    """Codec profiles of `kind` (its baseline and every candidate that accepts the samples) on `side`."""
    from intradp_ros.core.codecs.profile import profile_codecs

    codecs = (baseline(kind), *candidates(kind))
    return profile_codecs(list(samples), codecs, side, repeat, kind=kind, indexes=indexes)


class SampleCollector:
    """Keeps sample tiles per kind from a profiling run for `profile_kind`: of the nodes of each kind, up to
    `per_kind` spread evenly over the graph (first, middle, last, ...), each cropped to SAMPLE_BYTES."""

    def __init__(self, nodes: Sequence[Any], per_kind: int = SAMPLES_PER_KIND) -> None:
        by_kind: dict[str, list[int]] = {}
        for n in nodes:
            try:
                kind = codec_kind(n)
            except (AttributeError, TypeError):
                continue
            if kind in (KIND_SPARSE, KIND_BINARY) or candidates(kind):
                by_kind.setdefault(kind, []).append(n.index)
        self.wanted: set[int] = set()
        for idx in by_kind.values():
            k = min(per_kind, len(idx))
            self.wanted.update(idx[round(j * (len(idx) - 1) / max(k - 1, 1))] for j in range(k))
        self.dense: dict[str, list[np.ndarray]] = {}
        self.sparse: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, node: Any, value: Any) -> None:
        """Offer node `node`'s output `value` (a tensor, or sparse rows with `.index` and `.values`)."""
        if node.index not in self.wanted:
            return
        kind = codec_kind(node)
        if kind == KIND_SPARSE:
            if hasattr(value, "index") and hasattr(value, "values"):
                idx = value.index.detach().cpu().numpy().astype(np.int64)
                vals = value.values.detach().cpu().contiguous().numpy()
                n = min(len(idx), max(1, SAMPLE_BYTES // max(1, vals[:1].nbytes + 8)))
                if n and (not self.sparse or self.sparse[0][0].dtype == vals.dtype):
                    self.sparse.append((np.ascontiguousarray(vals[:n]), np.ascontiguousarray(idx[:n])))
            return
        if not hasattr(value, "detach"):
            return
        arr = value.detach().cpu().contiguous().numpy()
        got = self.dense.setdefault(kind, [])
        if arr.ndim == 0 or arr.size == 0 or (kind == KIND_BINARY and int(arr.max()) > 1):
            return  # scalars are never worth coding (and have no rows)
        if got and got[0].dtype != arr.dtype:
            return
        if (
            kind == KIND_IMAGE
            and got
            and (
                webp_layout(arr.shape) != webp_layout(got[0].shape) or rgb_layout(arr.shape) != rgb_layout(got[0].shape)
            )
        ):
            return  # one layout per kind, so WebP and green_delta_zstd are profiled when the first sample allows
        got.append(crop_sample(arr))

    def profile(self, side: str, repeat: int = 3) -> list[CodecProfile]:
        """Codec profiles of every kind seen (a codec that fails on a sample's layout is left out)."""
        out: list[CodecProfile] = []
        for kind, arrs in sorted(self.dense.items()):
            if arrs:
                out += profile_kind(kind, arrs, side, repeat)
        if self.sparse:
            vals = [v for v, _ in self.sparse]
            if len({v.dtype for v in vals}) == 1:
                out += profile_kind(KIND_SPARSE, vals, side, repeat, indexes=[i for _, i in self.sparse])
        return out


# ---------------------------------------------------------------------------------------------- costs
@dataclass(frozen=True)
class CodecOption:
    """One codec for one node and direction, per byte of the baseline transfer: payload ratio, sender encode
    and receiver decode seconds."""

    codec: int
    name: str
    ratio: float
    encode_s_per_byte: float
    decode_s_per_byte: float
    encode_fixed_s: float = 0.0  # per tile (call), on the sender
    decode_fixed_s: float = 0.0  # per tile, on the receiver
    whole_only: bool = False  # only for one tile carrying the node's whole output (the camera file)

    def encode_s(self, nbytes: float, tiles: int = 1) -> float:
        return tiles * self.encode_fixed_s + nbytes * self.encode_s_per_byte

    def decode_s(self, nbytes: float, tiles: int = 1) -> float:
        return tiles * self.decode_fixed_s + nbytes * self.decode_s_per_byte

    def seconds(self, nbytes: float, bandwidth_Bps: float, tiles: int = 1) -> float:
        """Encode + payload on the link + decode of `nbytes` baseline bytes sent as `tiles` tiles."""
        return self.encode_s(nbytes, tiles) + self.decode_s(nbytes, tiles) + nbytes * self.ratio / bandwidth_Bps

    def pays(self, nbytes: float, bandwidth_Bps: float, margin: float = PAY_MARGIN, tiles: int = 1) -> bool:
        """True when this codec beats sending the baseline bytes by at least `margin`."""
        return nbytes > 0 and self.seconds(nbytes, bandwidth_Bps, tiles) < (1.0 - margin) * nbytes / bandwidth_Bps


def _by_kind(profiles: Iterable[CodecProfile]) -> dict[tuple[str, int], CodecProfile]:
    return {(p.kind_name, p.codec): p for p in profiles}


def camera_profile(
    side: str, ratio: float, encode_s_per_mb: float = 0.0, decode_s_per_mb: float = 0.0, samples: int = 1
) -> CodecProfile:
    """The camera passthrough entry of a side's profile: on the robot the observed file/pixel ratio (encode ~0:
    the file is already there), on the server its measured decode + letterbox seconds per MB of model input."""
    if not (0.0 < ratio <= CAMERA_MAX_RATIO) or not all(t >= 0 for t in (encode_s_per_mb, decode_s_per_mb)):
        raise ValueError(f"camera profile: ratio must be in (0, {CAMERA_MAX_RATIO}] and times >= 0")
    return CodecProfile(
        CODEC_CAMERA, KIND_CAMERA, side, "uint8", float(ratio), float(encode_s_per_mb), float(decode_s_per_mb),
        int(samples), KIND_CAMERA,
    )  # fmt: skip


def camera_entry(profiles: Iterable[CodecProfile]) -> CodecProfile | None:
    """The camera passthrough entry of a profile's codec list, if any."""
    for p in profiles:
        if p.codec == CODEC_CAMERA and p.kind_name == KIND_CAMERA:
            return p
    return None


def check_camera_entry(entry: CodecProfile) -> None:
    """ValueError for a camera entry whose figures are out of bounds (a peer's profile is validated with it)."""
    if entry.dtype != "uint8" or not (0.0 < entry.ratio <= CAMERA_MAX_RATIO):
        raise ValueError(f"camera codec profile: ratio {entry.ratio} outside (0, {CAMERA_MAX_RATIO}] or not uint8")


class CodecCosts:
    """Codec options of every (node, direction) of one graph, from the robot's and the server's codec profiles.

    UP transfers encode on the robot and decode on the server, DOWN ones the reverse; an option needs both sides'
    profile of that codec and kind. Ratios are the sender's measurement relative to the baseline's."""

    def __init__(self, nodes: Sequence[Any], robot: Iterable[CodecProfile], server: Iterable[CodecProfile]) -> None:
        self.nodes = nodes
        self.robot = _by_kind(robot)
        self.server = _by_kind(server)
        self._memo: dict[tuple[int, str], tuple[CodecOption, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.robot and self.server)

    def options(self, node: int, direction: str) -> tuple[CodecOption, ...]:
        """Every profiled lossless option for `node`'s rows sent in `direction` (baseline excluded)."""
        key = (node, str(direction))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        n = self.nodes[node]
        kind = codec_kind(n)
        sender, receiver = (self.robot, self.server) if direction == Direction.UP else (self.server, self.robot)
        base = sender.get((kind, baseline(kind)))
        out: list[CodecOption] = []
        if base is not None and base.ratio > 0:
            for codec in candidates(kind):
                enc, dec = sender.get((kind, codec)), receiver.get((kind, codec))
                if enc is None or dec is None or not applies(codec, n):
                    continue
                out.append(
                    CodecOption(
                        codec,
                        enc.name,
                        enc.ratio / base.ratio,
                        enc.encode_s_per_mb / 1e6 / base.ratio,
                        dec.decode_s_per_mb / 1e6 / base.ratio,
                        enc.encode_fixed_s,
                        dec.decode_fixed_s,
                    )
                )
        if direction == Direction.UP and camera_input(n):
            enc, dec = self.robot.get((KIND_CAMERA, CODEC_CAMERA)), self.server.get((KIND_CAMERA, CODEC_CAMERA))
            if enc is not None and dec is not None:  # the robot verified passthrough; the server measured its decode
                out.append(
                    CodecOption(
                        CODEC_CAMERA,
                        KIND_CAMERA,
                        enc.ratio,
                        enc.encode_s_per_mb / 1e6,
                        dec.decode_s_per_mb / 1e6,
                        enc.encode_fixed_s,
                        dec.decode_fixed_s,
                        whole_only=True,
                    )
                )
        self._memo[key] = tuple(out)
        return self._memo[key]

    def whole(self, node: int, nbytes: float, tiles: int = 1) -> bool:
        """True when `nbytes` in `tiles` tiles is node `node`'s whole output in one tile (what a camera file is)."""
        return tiles == 1 and nbytes >= self.nodes[node].wire_nbytes

    def usable(self, opt: CodecOption, node: int, nbytes: float, tiles: int = 1) -> bool:
        """True when `opt` can carry this transfer: a whole-only option (the camera file) only one whole tile."""
        return not opt.whole_only or self.whole(node, nbytes, tiles)

    def option(
        self, node: int, direction: str, codec: int, nbytes: float | None = None, tiles: int = 1
    ) -> CodecOption | None:
        """The option of `codec` for this transfer (None: the baseline, a codec without a profile here, or, given
        the transfer's `nbytes`, a whole-only option for a partial or banded one: the runtime sends it without)."""
        for opt in self.options(node, direction):
            if opt.codec == codec:
                if nbytes is not None and not self.usable(opt, node, nbytes, tiles):
                    return None
                return opt
        return None

    def best(
        self, node: int, direction: str, nbytes: float, bandwidth_Bps: float, tiles: int = 1
    ) -> CodecOption | None:
        """The fastest option that pays for `nbytes` in `tiles` tiles at `bandwidth_Bps`, or None (the baseline)."""
        best: CodecOption | None = None
        for opt in self.options(node, direction):
            if not self.usable(opt, node, nbytes, tiles):
                continue
            if opt.pays(nbytes, bandwidth_Bps, tiles=tiles) and (
                best is None or opt.seconds(nbytes, bandwidth_Bps, tiles) < best.seconds(nbytes, bandwidth_Bps, tiles)
            ):
                best = opt
        return best

    def best_many(
        self, node: int, direction: str, nbytes: float, bandwidths_Bps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per bandwidth: (payload bytes, encode s, decode s) of the best choice for one tile of `nbytes` (the
        baseline where none pays)."""
        bw = np.asarray(bandwidths_Bps, dtype=float)
        pay = np.full(bw.shape, float(nbytes))
        enc = np.zeros(bw.shape)
        dec = np.zeros(bw.shape)
        best = (1.0 - PAY_MARGIN) * nbytes / bw if nbytes > 0 else np.full(bw.shape, -np.inf)
        for opt in self.options(node, direction):
            if not self.usable(opt, node, nbytes):
                continue
            e, d = opt.encode_s(nbytes), opt.decode_s(nbytes)
            t = e + d + nbytes * opt.ratio / bw
            win = t < best
            best = np.where(win, t, best)
            pay = np.where(win, nbytes * opt.ratio, pay)
            enc = np.where(win, e, enc)
            dec = np.where(win, d, dec)
        return pay, enc, dec
