"""Wire codec for tiles: `Tile` <-> flat wire fields (dtype name, shape, codec, flags, payload bytes).

Transport-neutral and ROS-free: the ROS adapter (intradp_ros.ros.tile_conversion) copies `WireTile` fields
into a TensorTile message one-to-one, other transports can send them as they like. Payloads are raw
little-endian C-contiguous element bytes (never pickled, never lists); decoding is zero-copy
(`np.frombuffer(...).reshape(shape)`, so the decoded array is a read-only view of the received bytes).

`TileValidator` checks every field of a received tile against what the receiver knows (plans, node shapes,
a size limit) and raises `TileError(field, reason)` naming the offending field, so a bad tile can be logged
and dropped instead of crashing a node.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Collection, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from intradp_ros.core.tile import (
    CODEC_BITPACK,
    CODEC_RAW,
    CODEC_SPARSE,
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
KNOWN_CODECS = frozenset((CODEC_RAW, CODEC_BITPACK, CODEC_SPARSE))
DENSE_CODECS = frozenset((CODEC_RAW, CODEC_BITPACK))  # codecs whose decoded tile is the node's dense rows
KNOWN_FLAGS = FLAG_LAST | FLAG_ABORT | FLAG_START
BITPACK_DTYPES = frozenset(("bool", "uint8"))
SPARSE_INDEX_DTYPE = np.dtype("<i8")

# Widths of the TensorTile integer fields: a value outside them cannot be serialised.
_UINT8_MAX = 2**8 - 1
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1

Payload = Union[bytes, bytearray, memoryview]


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
    shape: Tuple[int, ...]
    codec: int
    flags: int
    data: Payload
    robot: str = ""


def payload_size(dtype: str, shape: Sequence[int], codec: int) -> int:
    """Bytes the payload of a tile with these fields must have (packed size for CODEC_BITPACK)."""
    count = prod(int(d) for d in shape)
    if codec == CODEC_BITPACK:
        return (count + 7) // 8
    if codec == CODEC_SPARSE:  # n int64 positions, then the n entries
        return (int(shape[0]) * SPARSE_INDEX_DTYPE.itemsize if len(shape) else 0) + count * WIRE_DTYPES[dtype].itemsize
    return count * WIRE_DTYPES[dtype].itemsize


def _check_uint(name: str, value: int, upper: int) -> None:
    if not 0 <= int(value) <= upper:
        raise TileError(name, f"{value} does not fit the wire field (0..{upper})")


def encode_tile(tile: Tile) -> WireTile:
    """Turn a tile into wire fields; big-endian or strided data is made little-endian C-contiguous first.

    Raises TileError if the tile cannot be represented on the wire (unsupported dtype, a bitpacked tensor
    that is not 0/1, a field outside its wire width).
    """
    arr = np.asarray(tile.data)
    name = arr.dtype.name
    if name not in WIRE_DTYPES:
        raise TileError("dtype", f"'{arr.dtype}' cannot be sent; supported: {', '.join(WIRE_DTYPES)}")
    if tile.codec not in KNOWN_CODECS:
        raise TileError("codec", f"unknown codec {tile.codec}")
    _check_uint("request_id", tile.request_id, _UINT64_MAX)
    for field_name in ("plan_id", "node_id", "row_start", "row_stop"):
        _check_uint(field_name, getattr(tile, field_name), _UINT32_MAX)
    _check_uint("axis", tile.axis, _UINT8_MAX)
    _check_uint("flags", tile.flags, _UINT8_MAX)
    for extent in arr.shape:
        _check_uint("shape", extent, _UINT32_MAX)

    if tile.codec == CODEC_BITPACK:
        if name not in BITPACK_DTYPES:
            raise TileError("dtype", f"bitpack needs bool or uint8 0/1 data, got {name}")
        if name == "uint8" and arr.size and int(arr.max()) > 1:
            raise TileError("data", "bitpack needs 0/1 values; values > 1 would be lost")
        payload: Payload = np.packbits(arr.reshape(-1), bitorder="big").tobytes()
    elif tile.codec == CODEC_SPARSE:
        index = tile.index
        if arr.ndim == 0 or index is None or np.ndim(index) != 1 or len(index) != arr.shape[0]:
            raise TileError(
                "data",
                f"a sparse tile needs [n, ...] entries and n positions, got entries "
                f"{arr.shape} and positions {None if index is None else np.shape(index)}",
            )
        payload = (
            np.ascontiguousarray(index, dtype=SPARSE_INDEX_DTYPE).tobytes()
            + np.ascontiguousarray(arr, dtype=WIRE_DTYPES[name]).tobytes()
        )
    else:
        wire_dtype = WIRE_DTYPES[name]
        if arr.dtype != wire_dtype:  # big-endian input: byteswap into little-endian
            arr = arr.astype(wire_dtype)
        payload = np.ascontiguousarray(arr).tobytes()
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


def decode_tile(wire: WireTile, validator: Optional["TileValidator"] = None) -> Tile:
    """Rebuild a tile from wire fields; raw and sparse payloads are decoded as zero-copy read-only views.

    Without a validator only what decoding itself needs is checked (known dtype and codec, payload size).
    """
    if validator is not None:
        validator.check(wire)
    else:
        _check_decodable(wire)
    shape = tuple(int(d) for d in wire.shape)
    index = None
    if wire.codec == CODEC_BITPACK:
        bits = np.unpackbits(np.frombuffer(wire.data, dtype=np.uint8), count=prod(shape), bitorder="big")
        arr = bits.view(np.bool_) if wire.dtype == "bool" else bits
        arr = arr.reshape(shape)
    elif wire.codec == CODEC_SPARSE:
        n = shape[0]
        index = np.frombuffer(wire.data, dtype=SPARSE_INDEX_DTYPE, count=n)
        arr = np.frombuffer(wire.data, dtype=WIRE_DTYPES[wire.dtype], offset=n * SPARSE_INDEX_DTYPE.itemsize).reshape(
            shape
        )
    else:
        arr = np.frombuffer(wire.data, dtype=WIRE_DTYPES[wire.dtype]).reshape(shape)
    return Tile(
        request_id=int(wire.request_id),
        plan_id=int(wire.plan_id),
        node_id=int(wire.node_id),
        axis=int(wire.axis),
        row_start=int(wire.row_start),
        row_stop=int(wire.row_stop),
        data=arr,
        codec=int(wire.codec),
        flags=int(wire.flags),
        robot=wire.robot,
        index=index,
    )


def _payload_len(data: object) -> int:
    """Byte length of a bytes-like payload; anything else (a list, None) is a malformed `data` field."""
    try:
        return memoryview(data).nbytes  # type: ignore[arg-type]
    except TypeError:
        raise TileError("data", f"payload must be bytes-like, got {type(data).__name__}") from None


def _check_decodable(wire: WireTile) -> None:
    """The checks without which decoding would fail or misread memory."""
    if wire.dtype not in WIRE_DTYPES:
        raise TileError("dtype", f"unknown dtype '{wire.dtype}'")
    if wire.codec not in KNOWN_CODECS:
        raise TileError("codec", f"unknown codec {wire.codec}")
    if wire.codec == CODEC_BITPACK and wire.dtype not in BITPACK_DTYPES:
        raise TileError("dtype", f"bitpack needs bool or uint8, got {wire.dtype}")
    if any(int(d) < 0 for d in wire.shape):
        raise TileError("shape", f"negative extent in {tuple(wire.shape)}")
    if wire.codec == CODEC_SPARSE and len(wire.shape) == 0 and not wire.flags & FLAGS_WITHOUT_PAYLOAD:
        raise TileError("shape", "a sparse tile's shape starts with its entry count")
    expected = payload_size(wire.dtype, wire.shape, wire.codec)
    nbytes = _payload_len(wire.data)
    if nbytes != expected:
        raise TileError(
            "data", f"{nbytes} bytes, expected {expected} for {wire.dtype}{list(wire.shape)} codec {wire.codec}"
        )


class TileValidator:
    """Checks every field of a received tile against the receiver's plans and graph.

    known_plan_ids: plan ids the receiver can execute (None: any plan id).
    node_shapes: node id -> full output shape of that node (None: node ids and extents are not checked).
    max_bytes: largest payload accepted.

    A tile flagged FLAG_ABORT or FLAG_START carries no payload: it needs an empty `data` and a zero-element
    `shape`, and its row range is not checked.
    """

    def __init__(
        self,
        known_plan_ids: Optional[Collection[int]],
        node_shapes: Optional[Mapping[int, Sequence[int]]],
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
        full: Optional[Tuple[int, ...]] = None
        if self.node_shapes is not None:
            full = self.node_shapes.get(int(wire.node_id))
            if full is None:
                raise TileError("node_id", f"unknown graph node {wire.node_id}")
        nbytes = _payload_len(wire.data)
        if nbytes > self.max_bytes:
            raise TileError("data", f"{nbytes} bytes exceed the limit of {self.max_bytes}")
        _check_decodable(wire)
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
            if wire.codec == CODEC_SPARSE:  # [n, *features]: the features are the node's trailing dims
                feat = shape[1:]
                if len(shape) > rank or (feat and tuple(full[rank - len(feat) :]) != feat):
                    raise TileError("shape", f"sparse entries {shape} do not fit node {wire.node_id} {full}")
                return
            if len(shape) != rank:
                raise TileError("shape", f"rank {len(shape)} != rank {rank} of node {wire.node_id}")
            for dim, (got, want) in enumerate(zip(shape, full)):
                if dim != wire.axis and got != want:
                    raise TileError("shape", f"extent {got} != {want} of node {wire.node_id} on axis {dim}")
        if wire.codec != CODEC_SPARSE and shape[wire.axis] != wire.row_stop - wire.row_start:
            raise TileError(
                "shape",
                f"{shape[wire.axis]} rows along axis {wire.axis} but range "
                f"[{wire.row_start}, {wire.row_stop}) has {wire.row_stop - wire.row_start}",
            )
