"""Opt-in lossy codecs for float32 activation tiles (COACH-style): float16, or int8 with one scale per tile.

Never chosen by default: a sender picks them only with an error budget (`choose_lossy_codec`), and the measured
output deviation of each mode is in docs/wire.md (`rosrun intradp_ros bench_lossy`). Decoding is bounded like
every codec: the payload size follows from the shape.
- fp16: relative error <= 2**-11 for |x| in float16's normal range; values beyond +-65504 become +-inf (refused
  on encode), so a tile with larger values is sent another way.
- int8: scale = max|x| / 127, q = round(x / scale); absolute error <= scale / 2 = max|x| / 254 per tile.
"""

from __future__ import annotations

import numpy as np

from intradp_ros.core.codecs import Codec, Payload, register
from intradp_ros.core.codecs.basic import exact_size_check
from intradp_ros.core.tile import CODEC_FP16, CODEC_INT8, TileError

FLOAT32 = frozenset(("float32",))
FP16_MAX = float(np.finfo(np.float16).max)
FP16_REL_ERROR = 2.0**-11
INT8_REL_ERROR = 1.0 / 254  # of the tile's max |x|


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def fp16_fits(arr: np.ndarray) -> bool:
    """True when every finite value is inside float16's range (no value would become inf)."""
    finite = arr[np.isfinite(arr)]
    return not finite.size or float(np.max(np.abs(finite))) <= FP16_MAX


def _fp16_encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    if not fp16_fits(arr):
        raise TileError("data", f"fp16 cannot carry values beyond +-{FP16_MAX:g}")
    return arr.astype("<f2").tobytes()


def _fp16_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    return np.frombuffer(payload, dtype="<f2").astype(dtype).reshape(shape), None


FP16 = register(
    Codec(
        CODEC_FP16,
        "fp16",
        _fp16_encode,
        _fp16_decode,
        exact_size_check(lambda d, s: 2 * _count(s)),
        lossless=False,
        dtypes=FLOAT32,
    )
)


def _int8_encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    if arr.size and not np.all(np.isfinite(arr)):
        raise TileError("data", "int8 cannot carry NaN or inf")
    top = float(np.max(np.abs(arr))) if arr.size else 0.0
    scale = np.float32(top / 127.0 if top > 0 else 1.0)
    q = np.clip(np.rint(arr / scale), -127, 127).astype(np.int8)
    return np.array([scale], "<f4").tobytes() + q.tobytes()


def _int8_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    scale = np.frombuffer(payload, dtype="<f4", count=1)[0]
    if not np.isfinite(scale) or scale <= 0:
        raise TileError("data", f"int8 scale {scale} is not a positive finite number")
    q = np.frombuffer(payload, dtype=np.int8, offset=4)
    return (q.astype(np.float32) * scale).reshape(shape), None


INT8 = register(
    Codec(
        CODEC_INT8,
        "int8",
        _int8_encode,
        _int8_decode,
        exact_size_check(lambda d, s: 4 + _count(s)),
        lossless=False,
        dtypes=FLOAT32,
    )
)


def choose_lossy_codec(error_budget: float) -> int | None:
    """The cheapest lossy codec whose per-tile relative error bound fits `error_budget` (0: none, exact)."""
    if error_budget >= INT8_REL_ERROR:
        return CODEC_INT8
    if error_budget >= FP16_REL_ERROR:
        return CODEC_FP16
    return None
