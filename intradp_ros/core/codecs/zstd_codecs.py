"""zstd for dense tiles: plain (uint8/int8/bool and bit-packed grids) and byte-shuffled (multi-byte dtypes).

Byte-shuffle regroups the k bytes of each element by position (all first bytes, then all second bytes, ...):
float exponents and the high bytes of small integers then form long runs zstd finds; measured on activations in
docs/wire.md. It is numpy's transpose of an [n, k] byte view, undone the same way.
"""

from __future__ import annotations

import numpy as np

from intradp_ros.core.codecs import Codec, Payload, dense_size, register
from intradp_ros.core.codecs.basic import BITPACK_DTYPES, bitpack_bytes, bitpack_size, bits_to_array
from intradp_ros.core.codecs.zstd_frame import compress, decompress_exact
from intradp_ros.core.tile import CODEC_BITPACK_ZSTD, CODEC_ZSTD, CODEC_ZSTD_SHUFFLE, TileError


def _no_static_check(dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
    if nbytes == 0:
        raise TileError("data", "a zstd payload holds at least a frame header")


def _zstd_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    raw = decompress_exact(payload, dense_size(dtype, shape))
    return np.frombuffer(raw, dtype=dtype).reshape(shape), None


ZSTD = register(
    Codec(
        CODEC_ZSTD,
        "zstd",
        lambda arr, index, encoded: compress(arr.data if arr.flags.c_contiguous else arr.tobytes()),
        _zstd_decode,
        _no_static_check,
    )
)


def shuffle_bytes(arr: np.ndarray) -> np.ndarray:
    """[k, n] bytes: byte j of every element in row j (k = itemsize)."""
    k = arr.dtype.itemsize
    return np.ascontiguousarray(arr.reshape(-1).view(np.uint8).reshape(-1, k).T)


def unshuffle_bytes(raw: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    k = dtype.itemsize
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(k, -1)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)


def _shuffle_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    return unshuffle_bytes(decompress_exact(payload, dense_size(dtype, shape)), dtype, shape), None


ZSTD_SHUFFLE = register(
    Codec(
        CODEC_ZSTD_SHUFFLE,
        "zstd_shuffle",
        lambda arr, index, encoded: compress(shuffle_bytes(arr)),
        _shuffle_decode,
        _no_static_check,
    )
)


def _bitpack_zstd_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    return bits_to_array(decompress_exact(payload, bitpack_size(shape)), dtype, shape), None


BITPACK_ZSTD = register(
    Codec(
        CODEC_BITPACK_ZSTD,
        "bitpack_zstd",
        lambda arr, index, encoded: compress(bitpack_bytes(arr)),
        _bitpack_zstd_decode,
        _no_static_check,
        dtypes=BITPACK_DTYPES,
    )
)
