"""Registry of tile payload codecs: one `Codec` record per TensorTile.CODEC_* value, one module per format.

`intradp_ros.core.codec` (the wire codec) dispatches encode/decode/validation through `get_codec`; adding a
format means one module that builds a `Codec` and calls `register`, plus its constant in core/tile.py and
msg/TensorTile.msg (see docs/wire.md). Every decoder is bounded: it produces exactly `decoded_size(dtype, shape)`
bytes or raises `TileError`, so a compressed payload can never expand past what the tile's shape declares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod

import numpy as np

from intradp_ros.core.tile import TileError

Payload = bytes | bytearray | memoryview
SPARSE_INDEX_DTYPE = np.dtype("<i8")

# encode(data, index, encoded) -> payload; data is little-endian C-contiguous in a wire dtype.
Encoder = Callable[[np.ndarray, np.ndarray | None, bytes | None], Payload]
# decode(payload, dtype, shape) -> (data, index or None); the payload passed `check` first.
Decoder = Callable[[Payload, np.dtype, tuple[int, ...]], tuple[np.ndarray, np.ndarray | None]]
# check(dtype name, shape, payload bytes): raise TileError for what can be refused before decoding.
Checker = Callable[[str, tuple[int, ...], int], None]


def dense_size(dtype: np.dtype, shape: Sequence[int]) -> int:
    """Bytes of a dense tile of `shape` elements of `dtype` once decoded."""
    return prod(int(d) for d in shape) * dtype.itemsize


def sparse_size(dtype: np.dtype, shape: Sequence[int]) -> int:
    """Bytes of a sparse tile ([n, *features] entries plus n int64 positions) once decoded."""
    n = int(shape[0]) if len(shape) else 0
    return n * SPARSE_INDEX_DTYPE.itemsize + dense_size(dtype, shape)


@dataclass(frozen=True)
class Codec:
    """How one codec turns a tile's array into payload bytes and back.

    sparse: the tile carries positions (`index`) and [n, *features] entries.
    lossless: decode(encode(x)) == x bit for bit (every registered codec so far).
    dtypes: dtype names the codec accepts (None: every wire dtype).
    """

    codec_id: int
    name: str
    encode: Encoder
    decode: Decoder
    check: Checker
    sparse: bool = False
    lossless: bool = True
    dtypes: frozenset[str] | None = None

    def decoded_size(self, dtype: np.dtype, shape: Sequence[int]) -> int:
        return sparse_size(dtype, shape) if self.sparse else dense_size(dtype, shape)


_REGISTRY: dict[int, Codec] = {}


def register(codec: Codec) -> Codec:
    """Add a codec; a second codec with the same id is a programming error."""
    old = _REGISTRY.get(codec.codec_id)
    if old is not None and old is not codec and old.name != codec.name:
        raise ValueError(f"codec id {codec.codec_id} is already '{old.name}'")
    _REGISTRY[codec.codec_id] = codec
    return codec


def get_codec(codec_id: int) -> Codec:
    """The registered codec for a wire value; TileError('codec') for an unknown one."""
    try:
        return _REGISTRY[int(codec_id)]
    except (KeyError, TypeError, ValueError):
        raise TileError("codec", f"unknown codec {codec_id}") from None


def registered() -> dict[int, Codec]:
    """A copy of the registry (id -> codec)."""
    return dict(_REGISTRY)


def codec_by_name(name: str) -> Codec:
    for codec in _REGISTRY.values():
        if codec.name == name:
            return codec
    raise KeyError(f"no codec named {name!r}; known: {sorted(c.name for c in _REGISTRY.values())}")


def _load_builtin() -> None:
    # Imported for their register() calls; kept at the bottom so the modules can import this one.
    from intradp_ros.core.codecs import basic, image, lossy, sparse_zstd, zstd_codecs  # noqa: F401


_load_builtin()
