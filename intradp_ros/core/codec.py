"""Wire codec for tiles: `Tile` <-> flat wire fields (dtype name, shape, codec, flags, payload bytes).

Transport-neutral and ROS-free: the ROS adapter (intradp_ros.ros.tile_conversion) copies `WireTile` fields
into a TensorTile message one-to-one, other transports can send them as they like. Payloads are never pickled,
never lists: raw little-endian C-contiguous element bytes, or one of the lossless compressed forms of the codec
registry (intradp_ros.core.codecs, one module per format). Raw and sparse payloads decode zero-copy
(`np.frombuffer(...).reshape(shape)`, a read-only view of the received bytes); compressed ones decode into a
new array of exactly the size the tile's shape declares (never more: see core/codecs/zstd_frame.py).

`TileValidator` checks every field of a received tile against what the receiver knows (plans, node shapes,
a size limit on the payload AND on the decoded tile) and raises `TileError(field, reason)` naming the
offending field, so a bad tile can be logged and dropped instead of crashing a node.
`choose_codec` is the sender's choice of codec for a tile; `DENSE_CODECS` / `SPARSE_CODECS` are what a
receiver accepts for dense and sparse graph nodes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from intradp_ros.core.codecs import SPARSE_INDEX_DTYPE, get_codec
from intradp_ros.core.codecs.basic import BITPACK_DTYPES
from intradp_ros.core.codecs.image import rgb_layout, webp_layout
from intradp_ros.core.codecs.lossy import choose_lossy_codec, fp16_fits
from intradp_ros.core.tile import (
    CODEC_BITPACK,
    CODEC_BITPACK_ZSTD,
    CODEC_CAMERA,
    CODEC_DELTA_ZSTD,
    CODEC_FP16,
    CODEC_GREEN_DELTA_ZSTD,
    CODEC_INT8,
    CODEC_RAW,
    CODEC_SPARSE,
    CODEC_SPARSE_ZSTD,
    CODEC_WEBP,
    CODEC_ZSTD,
    CODEC_ZSTD_SHUFFLE,
    FLAG_ABORT,
    FLAG_LAST,
    FLAG_START,
    FLAGS_WITHOUT_PAYLOAD,
    Tile,
    TileError,
)

# dtype names that may cross the wire, mapped to their little-endian numpy dtype. bfloat16 is left out:
# numpy has no native bfloat16 (it would need ml_dtypes), so it cannot be decoded zero-copy here.
WIRE_DTYPES: Mapping[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool")
}
KNOWN_FLAGS = FLAG_LAST | FLAG_ABORT | FLAG_START
# Lossy codecs: accepted by receivers, chosen by senders only under an error budget (choose_codec).
LOSSY_CODECS = frozenset((CODEC_FP16, CODEC_INT8))
# What a receiver accepts for a dense / a sparse graph node (the executor's receive-side check).
DENSE_CODECS = (
    frozenset(
        (
            CODEC_RAW,
            CODEC_BITPACK,
            CODEC_ZSTD,
            CODEC_ZSTD_SHUFFLE,
            CODEC_BITPACK_ZSTD,
            CODEC_DELTA_ZSTD,
            CODEC_GREEN_DELTA_ZSTD,
            CODEC_WEBP,
            CODEC_CAMERA,
        )
    )
    | LOSSY_CODECS
)
SPARSE_CODECS = frozenset((CODEC_SPARSE, CODEC_SPARSE_ZSTD))
# The codecs a sender uses unless told otherwise: today's uncompressed wire format. Compression is enabled per
# transfer by passing `enabled` (a link fast enough for raw pixels loses to a 25 ms encode: docs/wire.md).
UNCOMPRESSED = frozenset((CODEC_RAW, CODEC_BITPACK, CODEC_SPARSE))
LOSSLESS = (DENSE_CODECS - {CODEC_CAMERA} - LOSSY_CODECS) | SPARSE_CODECS
# Decoded-size cap when no validator says otherwise (decode_tile without one, e.g. in-process wire tests).
DEFAULT_MAX_DECODED_BYTES = 1 << 30

# Widths of the TensorTile integer fields: a value outside them cannot be serialised.
_UINT8_MAX = 2**8 - 1
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1

Payload = bytes | bytearray | memoryview


@dataclass(frozen=True)
class WireTile:
    """A tile as flat wire fields; field names equal the TensorTile message's."""

    request_id: int
    plan_id: int
    node_id: int
    axis: int
    row_start: int
    row_stop: int
    dtype: str
    shape: tuple[int, ...]
    codec: int
    flags: int
    data: Payload
    robot: str = ""


def payload_size(dtype: str, shape: Sequence[int], codec: int) -> int:
    """Bytes the payload of an uncompressed tile must have (packed size for CODEC_BITPACK)."""
    count = prod(int(d) for d in shape)
    if codec == CODEC_BITPACK:
        return (count + 7) // 8
    if codec == CODEC_SPARSE:  # n int64 positions, then the n entries
        return (int(shape[0]) * SPARSE_INDEX_DTYPE.itemsize if len(shape) else 0) + count * WIRE_DTYPES[dtype].itemsize
    if codec != CODEC_RAW:
        raise ValueError(f"codec {codec} has no fixed payload size")
    return count * WIRE_DTYPES[dtype].itemsize


def decoded_size(dtype: str, shape: Sequence[int], codec: int) -> int:
    """Bytes a tile with these fields occupies once decoded (positions included for sparse codecs)."""
    return get_codec(codec).decoded_size(WIRE_DTYPES[dtype], shape)


def choose_sparse_codec(enabled: Collection[int] = UNCOMPRESSED) -> int:
    """The codec of a sparse tile: compact positions + zstd when enabled, else int64 positions raw."""
    return CODEC_SPARSE_ZSTD if CODEC_SPARSE_ZSTD in enabled else CODEC_SPARSE


def choose_codec(
    node: object,
    arr: np.ndarray,
    enabled: Collection[int] = UNCOMPRESSED,
    source: object = None,
    error_budget: float = 0.0,
) -> int:
    """The codec a sender uses for `arr`, a dense tile of graph node `node`, among the `enabled` ones.

    0/1 grids go bit-packed (zstd on top when enabled), uint8 rows delta-filtered + zstd (RGB planes [.., 3, h, w]
    with the subtract-green transform first when that is enabled: fewer bytes at the same cost; lossless WebP when
    only that is enabled), other integer/float tiles zstd, byte-shuffled for multi-byte dtypes. CODEC_CAMERA is
    used only for a graph input whose tensor `source` carries its camera frame (models/camera_input.py) and whose
    rows are the whole input. A dense tile never gets a sparse codec. Every choice is lossless unless
    `error_budget` > 0 (a per-tile relative error the caller accepts) and a lossy codec within it is enabled:
    float32 tiles then go as int8 (budget >= 1/254) or float16 (budget >= 2**-11), see core/codecs/lossy.py.
    """
    if error_budget > 0 and arr.dtype == np.float32:
        lossy = choose_lossy_codec(error_budget)
        if lossy is not None and lossy in enabled and (lossy != CODEC_FP16 or fp16_fits(arr)):
            return lossy
    binary = bool(getattr(node, "binary", False))
    if CODEC_CAMERA in enabled and source is not None and getattr(node, "is_input", False):
        frame = getattr(source, "camera_frame", None)
        if frame is not None and tuple(frame.tensor_shape) == tuple(arr.shape):
            return CODEC_CAMERA
    if binary and arr.dtype.name in BITPACK_DTYPES and (arr.size == 0 or int(arr.max()) <= 1):
        # 0/1 inputs (occupancy) go bit-packed: 8x fewer bytes; raw if a frame breaks the promise
        if CODEC_BITPACK_ZSTD in enabled:
            return CODEC_BITPACK_ZSTD
        if CODEC_BITPACK in enabled:
            return CODEC_BITPACK
    if arr.dtype == np.uint8 and CODEC_GREEN_DELTA_ZSTD in enabled and rgb_layout(arr.shape) is None:
        return CODEC_GREEN_DELTA_ZSTD
    if arr.dtype == np.uint8 and CODEC_DELTA_ZSTD in enabled:
        return CODEC_DELTA_ZSTD
    if arr.dtype == np.uint8 and CODEC_WEBP in enabled and webp_layout(arr.shape) is None:
        return CODEC_WEBP
    if arr.dtype.itemsize > 1 and CODEC_ZSTD_SHUFFLE in enabled:
        return CODEC_ZSTD_SHUFFLE
    if CODEC_ZSTD in enabled:
        return CODEC_ZSTD
    return CODEC_RAW


def _check_uint(name: str, value: int, upper: int) -> None:
    if not 0 <= int(value) <= upper:
        raise TileError(name, f"{value} does not fit the wire field (0..{upper})")


def encode_tile(tile: Tile) -> WireTile:
    """Turn a tile into wire fields; big-endian or strided data is made little-endian C-contiguous first.

    Raises TileError if the tile cannot be represented on the wire (unsupported dtype, a bitpacked tensor
    that is not 0/1, a field outside its wire width, data a codec cannot carry). Records the payload size in
    `tile.meta["wire_bytes"]`, so `tile.nbytes` is then the size on the wire.
    """
    arr = np.asarray(tile.data)
    name = arr.dtype.name
    if name not in WIRE_DTYPES:
        raise TileError("dtype", f"'{arr.dtype}' cannot be sent; supported: {', '.join(WIRE_DTYPES)}")
    codec = get_codec(tile.codec)
    if codec.dtypes is not None and name not in codec.dtypes:
        raise TileError("dtype", f"{codec.name} needs one of {sorted(codec.dtypes)}, got {name}")
    _check_uint("request_id", tile.request_id, _UINT64_MAX)
    for field_name in ("plan_id", "node_id", "row_start", "row_stop"):
        _check_uint(field_name, getattr(tile, field_name), _UINT32_MAX)
    _check_uint("axis", tile.axis, _UINT8_MAX)
    _check_uint("flags", tile.flags, _UINT8_MAX)
    for extent in arr.shape:
        _check_uint("shape", extent, _UINT32_MAX)
    wire_dtype = WIRE_DTYPES[name]
    if arr.dtype != wire_dtype:  # big-endian input: byteswap into little-endian
        arr = arr.astype(wire_dtype)
    arr = np.ascontiguousarray(arr)
    payload: Payload = codec.encode(arr, tile.index, tile.encoded)
    tile.meta["wire_bytes"] = memoryview(payload).nbytes  # Tile.nbytes (stats, ledgers) counts what is sent
    return WireTile(
        request_id=int(tile.request_id),
        plan_id=int(tile.plan_id),
        node_id=int(tile.node_id),
        axis=int(tile.axis),
        row_start=int(tile.row_start),
        row_stop=int(tile.row_stop),
        dtype=name,
        shape=tuple(int(d) for d in arr.shape),
        codec=int(tile.codec),
        flags=int(tile.flags),
        data=payload,
        robot=tile.robot,
    )


def decode_tile(wire: WireTile, validator: TileValidator | None = None) -> Tile:
    """Rebuild a tile from wire fields; raw and sparse payloads are decoded as zero-copy read-only views.

    Without a validator only what decoding itself needs is checked (known dtype and codec, payload size,
    decoded size at most DEFAULT_MAX_DECODED_BYTES). The tile's meta["wire_bytes"] is the payload's size.
    """
    if validator is not None:
        validator.check(wire)
    else:
        _check_decodable(wire, DEFAULT_MAX_DECODED_BYTES)
    shape = tuple(int(d) for d in wire.shape)
    nbytes = _payload_len(wire.data)
    if wire.flags & FLAGS_WITHOUT_PAYLOAD and nbytes == 0:
        arr, index = np.frombuffer(b"", dtype=WIRE_DTYPES[wire.dtype]).reshape(shape), None
        codec_id = int(wire.codec)
    else:
        arr, index = get_codec(wire.codec).decode(wire.data, WIRE_DTYPES[wire.dtype], shape)
        codec_id = int(wire.codec)
    return Tile(
        request_id=int(wire.request_id),
        plan_id=int(wire.plan_id),
        node_id=int(wire.node_id),
        axis=int(wire.axis),
        row_start=int(wire.row_start),
        row_stop=int(wire.row_stop),
        data=arr,
        codec=codec_id,
        flags=int(wire.flags),
        robot=wire.robot,
        index=index,
        meta={"wire_bytes": nbytes},
    )


def _payload_len(data: object) -> int:
    """Byte length of a bytes-like payload; anything else (a list, None) is a malformed `data` field."""
    try:
        return memoryview(data).nbytes  # type: ignore[arg-type]
    except TypeError:
        raise TileError("data", f"payload must be bytes-like, got {type(data).__name__}") from None


def _check_decodable(wire: WireTile, max_decoded: int) -> None:
    """The checks without which decoding would fail, misread memory or expand past `max_decoded` bytes."""
    if wire.dtype not in WIRE_DTYPES:
        raise TileError("dtype", f"unknown dtype '{wire.dtype}'")
    codec = get_codec(wire.codec)
    if codec.dtypes is not None and wire.dtype not in codec.dtypes:
        raise TileError("dtype", f"{codec.name} needs one of {sorted(codec.dtypes)}, got {wire.dtype}")
    if any(int(d) < 0 for d in wire.shape):
        raise TileError("shape", f"negative extent in {tuple(wire.shape)}")
    nbytes = _payload_len(wire.data)
    if wire.flags & FLAGS_WITHOUT_PAYLOAD and nbytes == 0:
        if prod(int(d) for d in wire.shape):
            raise TileError("data", "an abort or start tile must carry no payload")
        return  # an abort/start tile carries nothing to decode
    if codec.sparse and len(wire.shape) == 0:
        raise TileError("shape", "a sparse tile's shape starts with its entry count")
    size = codec.decoded_size(WIRE_DTYPES[wire.dtype], wire.shape)
    if size > max_decoded:
        raise TileError(
            "shape", f"{wire.dtype}{list(wire.shape)} decodes to {size} bytes, over the limit of {max_decoded}"
        )
    codec.check(wire.dtype, tuple(int(d) for d in wire.shape), nbytes)


class TileValidator:
    """Checks every field of a received tile against the receiver's plans and graph.

    known_plan_ids: plan ids the receiver can execute (None: any plan id).
    node_shapes: node id -> full output shape of that node (None: node ids and extents are not checked).
    max_bytes: largest payload accepted, and largest tile once decoded (a compressed payload cannot expand
    past it: the decoded size follows from dtype and shape and is checked before decoding).

    A tile flagged FLAG_ABORT or FLAG_START carries no payload: it needs an empty `data` and a zero-element
    `shape`, and its row range is not checked.
    """

    def __init__(
        self,
        known_plan_ids: Collection[int] | None,
        node_shapes: Mapping[int, Sequence[int]] | None,
        max_bytes: int,
    ) -> None:
        self.known_plan_ids = None if known_plan_ids is None else frozenset(int(p) for p in known_plan_ids)
        self.node_shapes = (
            None if node_shapes is None else {int(k): tuple(int(d) for d in v) for k, v in node_shapes.items()}
        )
        self.max_bytes = int(max_bytes)

    def check(self, wire: WireTile) -> None:
        """Raise TileError(field, reason) for the first malformed field; return None for a good tile."""
        if wire.flags & ~KNOWN_FLAGS:
            raise TileError("flags", f"unknown flag bits {wire.flags & ~KNOWN_FLAGS:#x}")
        if self.known_plan_ids is not None and wire.plan_id not in self.known_plan_ids:
            raise TileError("plan_id", f"unknown plan {wire.plan_id}")
        full: tuple[int, ...] | None = None
        if self.node_shapes is not None:
            full = self.node_shapes.get(int(wire.node_id))
            if full is None:
                raise TileError("node_id", f"unknown graph node {wire.node_id}")
        nbytes = _payload_len(wire.data)
        if nbytes > self.max_bytes:
            raise TileError("data", f"{nbytes} bytes exceed the limit of {self.max_bytes}")
        _check_decodable(wire, self.max_bytes)
        shape = tuple(int(d) for d in wire.shape)
        if wire.flags & FLAGS_WITHOUT_PAYLOAD:
            if nbytes or prod(shape):
                raise TileError("data", "an abort or start tile must carry no payload")
            return
        rank = len(full) if full is not None else len(shape)
        if not 0 <= wire.axis < rank:
            raise TileError("axis", f"axis {wire.axis} outside rank {rank}")
        if wire.row_start < 0:
            raise TileError("row_start", f"negative row_start {wire.row_start}")
        if wire.row_start >= wire.row_stop:
            raise TileError("row_start", f"row_start {wire.row_start} is not before row_stop {wire.row_stop}")
        if full is not None:
            if wire.row_stop > full[wire.axis]:
                raise TileError(
                    "row_stop",
                    f"row_stop {wire.row_stop} beyond extent {full[wire.axis]} of node "
                    f"{wire.node_id} along axis {wire.axis}",
                )
            if wire.codec in SPARSE_CODECS:  # [n, *features]: the features are the node's trailing dims
                feat = shape[1:]
                if len(shape) > rank or (feat and tuple(full[rank - len(feat) :]) != feat):
                    raise TileError("shape", f"sparse entries {shape} do not fit node {wire.node_id} {full}")
                return
            if len(shape) != rank:
                raise TileError("shape", f"rank {len(shape)} != rank {rank} of node {wire.node_id}")
            for dim, (got, want) in enumerate(zip(shape, full)):
                if dim != wire.axis and got != want:
                    raise TileError("shape", f"extent {got} != {want} of node {wire.node_id} on axis {dim}")
        if wire.codec not in SPARSE_CODECS and shape[wire.axis] != wire.row_stop - wire.row_start:
            raise TileError(
                "shape",
                f"{shape[wire.axis]} rows along axis {wire.axis} but range "
                f"[{wire.row_start}, {wire.row_stop}) has {wire.row_stop - wire.row_start}",
            )


# ------------------------------------------------------------------------------------------------ size limits
CODEC_HEADROOM = 1.25  # a lossless codec's worst case over the raw size (zstd frames, headers), rounded up
SIZE_SLACK = 1 << 20  # fixed bytes on top (headers, tiny tensors)
CAMERA_FLOOR = 8 << 20  # camera passthrough carries the camera's own JPEG/PNG, not the model input: at least this
UNKNOWN_GRAPH_LIMIT = 64 << 20  # receivers that do not know the graph


def graph_tile_limit(graph: Any | None, headroom: float = CODEC_HEADROOM) -> int:
    """Largest tile payload (and decoded size) any plan of `graph` can send, with codec headroom: the biggest node
    output (a tile is at most one whole output; a sparse node with every position surviving, positions
    included) times `headroom`, plus SIZE_SLACK, and never below CAMERA_FLOOR. Receivers use it instead of a fixed
    limit, so a 200 MB tile for a model whose largest real tile is 245 kB is refused by size."""
    if graph is None:
        return UNKNOWN_GRAPH_LIMIT
    worst = 0
    for n in graph.nodes:
        size = int(n.nbytes)
        if getattr(n, "sparse_rank", 0):
            size += prod(int(d) for d in n.shape[: n.sparse_rank]) * SPARSE_INDEX_DTYPE.itemsize
        worst = max(worst, size)
    return max(CAMERA_FLOOR, int(worst * float(headroom)) + SIZE_SLACK)
