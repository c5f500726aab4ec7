"""Compact sparse tiles: ascending positions as differences in the smallest unsigned width, entries after, zstd.

Payload: one byte, the width of a difference (1, 2, 4 or 8), then one zstd frame of n differences (the first is
the first position itself) followed by the n entries. Positions are rebuilt by a cumulative sum and must stay
inside int64; decoding is bounded by the [n, *features] shape like every zstd codec.
"""

from __future__ import annotations

import numpy as np

from intradp_ros.core.codecs import Codec, Payload, dense_size, register
from intradp_ros.core.codecs.basic import sparse_index
from intradp_ros.core.codecs.zstd_frame import compress, decompress_exact
from intradp_ros.core.tile import CODEC_SPARSE_ZSTD, TileError

WIDTHS: dict[int, np.dtype] = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}


def _encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    pos = sparse_index(arr, index)
    if pos.size and (pos[0] < 0 or np.any(pos[1:] < pos[:-1])):
        raise TileError("data", "sparse_zstd needs ascending non-negative positions")
    diffs = np.diff(pos, prepend=np.int64(0)).astype(np.uint64) if pos.size else np.zeros(0, np.uint64)
    top = int(diffs.max()) if diffs.size else 0
    width = next(w for w, dt in WIDTHS.items() if top <= np.iinfo(dt).max)
    return bytes((width,)) + compress(diffs.astype(WIDTHS[width]).tobytes() + arr.tobytes())


def _check(dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
    if not shape:
        raise TileError("shape", "a sparse tile's shape starts with its entry count")
    if nbytes < 2:
        raise TileError("data", "a sparse_zstd payload holds a width byte and a zstd frame")


def _decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    view = memoryview(payload).cast("B")
    width = WIDTHS.get(view[0])
    if width is None:
        raise TileError("data", f"sparse_zstd position width {view[0]} is not 1, 2, 4 or 8")
    n = int(shape[0])
    pos_bytes = n * width.itemsize
    raw = decompress_exact(view[1:], pos_bytes + dense_size(dtype, shape))
    diffs = np.frombuffer(raw, dtype=width, count=n).astype(np.uint64)
    if width.itemsize == 8 and n and int(diffs.max()) >= 2**63:
        raise TileError("data", "sparse_zstd position beyond int64")
    total = np.cumsum(diffs, dtype=np.uint64)
    if n and (int(total[-1]) >= 2**63 or (n > 1 and np.any(total[1:] < total[:-1]))):
        raise TileError("data", "sparse_zstd positions overflow int64")
    entries = np.frombuffer(raw, dtype=dtype, offset=pos_bytes).reshape(shape)
    return entries, total.astype(np.int64)


SPARSE_ZSTD = register(Codec(CODEC_SPARSE_ZSTD, "sparse_zstd", _encode, _decode, _check, sparse=True))
