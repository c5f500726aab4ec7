"""Lossless codecs for uint8 image rows ([1, 3, h, w] graph inputs, or any uint8 tile for delta_zstd).

delta_zstd: PNG's "Sub" filter (each byte minus its left neighbour, mod 256, along the last axis) then zstd;
undone by a wrapping uint8 cumulative sum. green_delta_zstd: the same on RGB planes after lossless WebP's
"subtract green" colour transform (R-G, G, B-G mod 256), which removes what the three channels share: 1 % fewer
bytes than delta_zstd on the noisy 1280x960 camera frames, 8 % at 224x224, 29 % on JPEG-decoded frames, at the same
coding cost (docs/wire.md). webp: one lossless
WebP picture (Pillow/libwebp, method 0 = fastest), smaller still on smooth frames but several times slower to
encode. All are per tile, so a frame split into row bands streams band by band."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from intradp_ros.core.codecs import Codec, Payload, dense_size, register
from intradp_ros.core.codecs.zstd_frame import compress, decompress_exact
from intradp_ros.core.tile import CODEC_DELTA_ZSTD, CODEC_GREEN_DELTA_ZSTD, CODEC_WEBP, TileError

UINT8 = frozenset(("uint8",))
WEBP_MAX_SIDE = 16383  # libwebp's limit per side
WEBP_METHOD = 0


def left_delta(arr: np.ndarray) -> np.ndarray:
    """Each element minus its left neighbour along the last axis, mod 256 (the first is kept)."""
    out = np.empty_like(arr)
    if arr.size:
        out[..., :1] = arr[..., :1]
        np.subtract(arr[..., 1:], arr[..., :-1], out=out[..., 1:])
    return out


def undo_left_delta(delta: np.ndarray) -> np.ndarray:
    return np.cumsum(delta, axis=-1, dtype=np.uint8) if delta.ndim else delta.copy()


def _delta_check(dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
    if dtype != "uint8":
        raise TileError("dtype", f"delta_zstd carries uint8 tiles, got {dtype}")
    if nbytes == 0:
        raise TileError("data", "a zstd payload holds at least a frame header")


def _delta_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    delta = np.frombuffer(decompress_exact(payload, dense_size(dtype, shape)), dtype=np.uint8).reshape(shape)
    return undo_left_delta(delta), None


DELTA_ZSTD = register(
    Codec(
        CODEC_DELTA_ZSTD,
        "delta_zstd",
        lambda arr, index, encoded: compress(left_delta(arr)),
        _delta_decode,
        _delta_check,
        dtypes=UINT8,
    )
)


def rgb_layout(shape: tuple[int, ...]) -> str | None:
    """Why a uint8 tile of `shape` cannot be RGB planes ([.., 3, h, w]: channels third from last), or None."""
    if len(shape) < 3 or int(shape[-3]) != 3:
        return f"green_delta_zstd carries [.., 3, h, w] RGB rows, got shape {list(shape)}"
    return None


def green_delta(arr: np.ndarray) -> np.ndarray:
    """RGB planes [.., 3, h, w] as R-G, G, B-G (mod 256), each as left differences along w: one new array.
    The left delta is linear mod 256, so subtracting G's delta from R's and B's equals delta(R-G) and delta(B-G)."""
    out = left_delta(arr)
    green = out[..., 1, :, :]
    out[..., 0, :, :] -= green
    out[..., 2, :, :] -= green
    return out


def undo_green_delta(delta: np.ndarray) -> np.ndarray:
    """The inverse of `green_delta`: a wrapping cumulative sum along w (one new array), then G added back in place."""
    out = np.cumsum(delta, axis=-1, dtype=np.uint8)
    green = out[..., 1, :, :]
    out[..., 0, :, :] += green
    out[..., 2, :, :] += green
    return out


def _green_encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    reason = rgb_layout(arr.shape)
    if reason or arr.dtype != np.uint8:
        raise TileError("data", reason or f"green_delta_zstd carries uint8, got {arr.dtype}")
    return compress(green_delta(arr))


def _green_check(dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
    if dtype != "uint8":
        raise TileError("dtype", f"green_delta_zstd carries uint8 tiles, got {dtype}")
    reason = rgb_layout(shape)
    if reason:
        raise TileError("shape", reason)
    if nbytes == 0:
        raise TileError("data", "a zstd payload holds at least a frame header")


def _green_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    delta = np.frombuffer(decompress_exact(payload, dense_size(dtype, shape)), dtype=np.uint8).reshape(shape)
    return undo_green_delta(delta), None


GREEN_DELTA_ZSTD = register(
    Codec(CODEC_GREEN_DELTA_ZSTD, "green_delta_zstd", _green_encode, _green_decode, _green_check, dtypes=UINT8)
)


def webp_layout(shape: tuple[int, ...]) -> str | None:
    """Why a uint8 tile of `shape` cannot be one RGB WebP picture ([1.., 3, h, w]), or None if it can."""
    if len(shape) < 3 or shape[-3] != 3 or any(int(d) != 1 for d in shape[:-3]):
        return f"webp carries [1, 3, h, w] image rows, got shape {list(shape)}"
    h, w = int(shape[-2]), int(shape[-1])
    if not (1 <= h <= WEBP_MAX_SIDE and 1 <= w <= WEBP_MAX_SIDE):
        return f"webp pictures are 1..{WEBP_MAX_SIDE} pixels per side, got {w}x{h}"
    return None


def _webp_encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    reason = webp_layout(arr.shape)
    if reason or arr.dtype != np.uint8:
        raise TileError("data", reason or f"webp carries uint8, got {arr.dtype}")
    hwc = np.ascontiguousarray(arr.reshape(arr.shape[-3:]).transpose(1, 2, 0))
    buf = io.BytesIO()
    Image.fromarray(hwc, "RGB").save(buf, "WEBP", lossless=True, method=WEBP_METHOD, quality=0, exact=True)
    return buf.getvalue()


def _webp_check(dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
    if dtype != "uint8":
        raise TileError("dtype", f"webp carries uint8 tiles, got {dtype}")
    reason = webp_layout(shape)
    if reason:
        raise TileError("shape", reason)
    if nbytes < 12:
        raise TileError("data", "a WebP payload holds at least its RIFF header")


def _webp_decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    data = bytes(payload)
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise TileError("data", "not a WebP picture (RIFF/WEBP header missing)")
    h, w = int(shape[-2]), int(shape[-1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["WEBP"]) as im:
                # the header is read, no pixel yet: a picture of another size (a bomb) is refused here
                if im.size != (w, h) or im.mode != "RGB":
                    raise TileError(
                        "data", f"WebP picture is {im.size[0]}x{im.size[1]} {im.mode}, tile needs {w}x{h} RGB"
                    )
                hwc = np.asarray(im.convert("RGB"))
    except TileError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt data
        raise TileError("data", f"corrupt WebP picture: {type(e).__name__}: {e}") from None
    return np.ascontiguousarray(hwc.transpose(2, 0, 1)).reshape(shape), None


WEBP = register(Codec(CODEC_WEBP, "webp", _webp_encode, _webp_decode, _webp_check, dtypes=UINT8))
