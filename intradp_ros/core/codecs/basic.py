"""The uncompressed codecs: raw elements, bit-packed 0/1 grids and sparse survivors with int64 positions.

Their payload size follows from dtype and shape, so decoding is a zero-copy read-only view of the received bytes
(raw and sparse) or one unpack (bitpack).
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

import numpy as np

from intradp_ros.core.codecs import SPARSE_INDEX_DTYPE, Codec, Payload, dense_size, register, sparse_size
from intradp_ros.core.tile import CODEC_BITPACK, CODEC_RAW, CODEC_SPARSE, TileError

BITPACK_DTYPES = frozenset(("bool", "uint8"))


def exact_size_check(size_of: Callable[[str, tuple[int, ...]], int]) -> Callable[[str, tuple[int, ...], int], None]:
    """A checker refusing a payload whose length is not `size_of(dtype name, shape)`."""

    def check(dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
        expected = size_of(dtype, shape)
        if nbytes != expected:
            raise TileError("data", f"{nbytes} bytes, expected {expected} for {dtype}{list(shape)}")

    return check


def _np(dtype: str) -> np.dtype:
    return np.dtype(dtype).newbyteorder("<")


# ---------------------------------------------------------------------------------------------------- raw
def _raw_encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    return arr.tobytes()


def _raw_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    return np.frombuffer(payload, dtype=dtype).reshape(shape), None


RAW = register(Codec(CODEC_RAW, "raw", _raw_encode, _raw_decode, exact_size_check(lambda d, s: dense_size(_np(d), s))))


# ------------------------------------------------------------------------------------------------ bitpack
def bitpack_bytes(arr: np.ndarray) -> bytes:
    """numpy.packbits (MSB first) of a bool or 0/1 uint8 array; TileError if a value is > 1."""
    if arr.dtype.name not in BITPACK_DTYPES:
        raise TileError("dtype", f"bitpack needs bool or uint8 0/1 data, got {arr.dtype.name}")
    if arr.dtype.name == "uint8" and arr.size and int(arr.max()) > 1:
        raise TileError("data", "bitpack needs 0/1 values; values > 1 would be lost")
    return np.packbits(arr.reshape(-1), bitorder="big").tobytes()


def bits_to_array(packed: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=prod(shape), bitorder="big")
    return (bits.view(np.bool_) if dtype.name == "bool" else bits).reshape(shape)


def bitpack_size(shape: tuple[int, ...]) -> int:
    return (prod(int(d) for d in shape) + 7) // 8


BITPACK = register(
    Codec(
        CODEC_BITPACK,
        "bitpack",
        lambda arr, index, encoded: bitpack_bytes(arr),
        lambda payload, dtype, shape: (bits_to_array(payload, dtype, shape), None),
        exact_size_check(lambda d, s: bitpack_size(s)),
        dtypes=BITPACK_DTYPES,
    )
)


# ------------------------------------------------------------------------------------------------- sparse
def sparse_index(arr: np.ndarray, index: np.ndarray | None) -> np.ndarray:
    """The positions of a sparse tile as int64, checked against its [n, ...] entries."""
    if arr.ndim == 0 or index is None or np.ndim(index) != 1 or len(index) != arr.shape[0]:
        raise TileError(
            "data",
            f"a sparse tile needs [n, ...] entries and n positions, got entries "
            f"{arr.shape} and positions {None if index is None else np.shape(index)}",
        )
    return np.ascontiguousarray(index, dtype=SPARSE_INDEX_DTYPE)


def _sparse_encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    return sparse_index(arr, index).tobytes() + arr.tobytes()


def _sparse_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    n = shape[0]
    index = np.frombuffer(payload, dtype=SPARSE_INDEX_DTYPE, count=n)
    arr = np.frombuffer(payload, dtype=dtype, offset=n * SPARSE_INDEX_DTYPE.itemsize).reshape(shape)
    return arr, index


SPARSE = register(
    Codec(
        CODEC_SPARSE,
        "sparse",
        _sparse_encode,
        _sparse_decode,
        exact_size_check(lambda d, s: sparse_size(_np(d), s)),
        sparse=True,
    )
)
