"""Raw camera frames (a sensor_msgs/Image's encoding, size, step, byte order and bytes) -> HxWx3 uint8 RGB.

ROS-free and vectorised (numpy views and whole-array arithmetic, no per-pixel Python loops), so the clients
accept what real cameras publish:
- rgb8, bgr8, rgba8, bgra8: channel views (alpha dropped); mono8: the grey value in all three channels.
- mono16: the high byte of each 16-bit value (v >> 8, byte order from `is_bigendian`), i.e. the full 16-bit range
  scaled to 8 bits by truncation, as a depth-less grey picture.
- bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8: bilinear demosaic. Each output colour at a pixel is its own
  sample where the pattern has that colour there, else the mean of the samples of that colour in the 3x3
  neighbourhood (2 or 4 of them), rounded half up; the border is mirrored without repeating the edge
  (scipy.ndimage 'mirror'), which keeps the Bayer phase. This is OpenCV's COLOR_Bayer*2RGB (bilinear) away
  from the 1-pixel border.
- yuv422 and uyvy (bytes U0 Y0 V0 Y1 for each pixel pair, the ROS meaning of yuv422), yuyv and yuv422_yuy2
  (Y0 U0 Y1 V0): BT.601 limited range, as OpenCV's COLOR_YUV2RGB_UYVY / _YUYV:
  R = 1.164 (Y - 16) + 1.596 (V - 128), G = 1.164 (Y - 16) - 0.813 (V - 128) - 0.391 (U - 128),
  B = 1.164 (Y - 16) + 2.018 (U - 128), rounded half up and clipped to 0..255. The width must be even.

`encode_rgb` goes the other way (for tests, replay tools and simulated cameras): grey is BT.601 luma, mono16 is
luma * 257, a Bayer mosaic keeps each pixel's own colour, YUV 4:2:2 averages the chroma of each pixel pair.

Every failure raises `ImageEncodingError` whose `kind` says whether the encoding is unsupported or the frame
is malformed (size, step, buffer length), so a node can count the two apart.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

UNSUPPORTED = "unsupported_encoding"
MALFORMED = "malformed"

# bytes per pixel of each supported encoding
BYTES_PER_PIXEL: dict[str, int] = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "mono16": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
    "yuv422": 2,
    "uyvy": 2,
    "yuyv": 2,
    "yuv422_yuy2": 2,
}
SUPPORTED_ENCODINGS = tuple(BYTES_PER_PIXEL)

# colour (0 R, 1 G, 2 B) of the 2x2 Bayer cell's pixels (row 0 left, row 0 right, row 1 left, row 1 right)
BAYER_PATTERNS: dict[str, tuple[int, int, int, int]] = {
    "bayer_rggb8": (0, 1, 1, 2),
    "bayer_bggr8": (2, 1, 1, 0),
    "bayer_gbrg8": (1, 2, 0, 1),
    "bayer_grbg8": (1, 0, 2, 1),
}
# byte offsets of (U, Y0, V, Y1) inside a 4-byte pixel pair
YUV_LAYOUTS: dict[str, tuple[int, int, int, int]] = {
    "yuv422": (0, 1, 2, 3),
    "uyvy": (0, 1, 2, 3),
    "yuyv": (1, 0, 3, 2),
    "yuv422_yuy2": (1, 0, 3, 2),
}
# bilinear demosaic kernels (R and B: the 8 neighbours; G: the 4 orthogonal ones)
_RB_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_G_KERNEL = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4

Buffer = bytes | bytearray | memoryview


class ImageEncodingError(ValueError):
    """A frame that cannot be decoded; `kind` is UNSUPPORTED or MALFORMED."""

    def __init__(self, message: str, kind: str = MALFORMED) -> None:
        super().__init__(message)
        self.kind = kind


def _rows(data: Buffer, height: int, width: int, step: int, bpp: int) -> np.ndarray:
    """[H, W*bpp] uint8 view of the pixel bytes (row padding beyond W*bpp cut off)."""
    if height <= 0 or width <= 0:
        raise ImageEncodingError(f"image has no pixels ({width}x{height})")
    if step < width * bpp:
        raise ImageEncodingError(f"image step {step} is smaller than width*bytes_per_pixel = {width * bpp}")
    if len(data) < step * height:
        raise ImageEncodingError(f"image data has {len(data)} bytes, expected step*height = {step * height}")
    return np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)[:, : width * bpp]


def _round_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def demosaic_bilinear(raw: np.ndarray, pattern: str) -> np.ndarray:
    """HxWx3 uint8 RGB from an HxW uint8 Bayer mosaic (see the module docstring for the method)."""
    colours = BAYER_PATTERNS[pattern]
    h, w = raw.shape
    cell = np.array(colours, np.int8).reshape(2, 2)
    colour_of = np.tile(cell, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    plane = raw.astype(np.float32)
    out = np.empty((h, w, 3), np.uint8)
    for c, kernel in ((0, _RB_KERNEL), (1, _G_KERNEL), (2, _RB_KERNEL)):  # three whole-plane convolutions
        sampled = np.where(colour_of == c, plane, np.float32(0))
        out[..., c] = _round_u8(ndimage.convolve(sampled, kernel, mode="mirror"))
    return out


def yuv422_to_rgb(pairs: np.ndarray, layout: tuple[int, int, int, int]) -> np.ndarray:
    """HxWx3 uint8 RGB from [H, W/2, 4] pixel pairs; `layout` gives the byte offsets of U, Y0, V, Y1."""
    u_at, y0_at, v_at, y1_at = layout
    h, half, _ = pairs.shape
    y = np.empty((h, half, 2), np.float64)
    y[..., 0], y[..., 1] = pairs[..., y0_at], pairs[..., y1_at]
    y = (y - 16.0) * 1.164
    u = pairs[..., u_at, None].astype(np.float64) - 128.0
    v = pairs[..., v_at, None].astype(np.float64) - 128.0
    rgb = np.stack([y + 1.596 * v, y - 0.813 * v - 0.391 * u, y + 2.018 * u], axis=-1)  # [H, W/2, 2, 3]
    return _round_u8(rgb).reshape(h, 2 * half, 3)


def decode_image(
    encoding: str, height: int, width: int, step: int, data: Buffer, is_bigendian: bool = False
) -> np.ndarray:
    """HxWx3 uint8 RGB array of a raw frame (a view of `data` for rgb8 and mono8, a new array otherwise)."""
    bpp = BYTES_PER_PIXEL.get(encoding)
    if bpp is None:
        raise ImageEncodingError(
            f"image encoding '{encoding}' is not supported (use one of {', '.join(SUPPORTED_ENCODINGS)})", UNSUPPORTED
        )
    h, w = int(height), int(width)
    rows = _rows(data, h, w, int(step), bpp)
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        pix = rows.reshape(h, w, bpp)
        return pix[..., 2::-1] if encoding.startswith("bgr") else pix[..., :3]
    if encoding == "mono8":
        return np.broadcast_to(rows.reshape(h, w, 1), (h, w, 3))
    if encoding == "mono16":
        high = rows.reshape(h, w, 2)[..., 0 if is_bigendian else 1]
        return np.broadcast_to(high[..., None], (h, w, 3))
    if encoding in BAYER_PATTERNS:
        return demosaic_bilinear(rows, encoding)
    if w % 2:
        raise ImageEncodingError(f"{encoding} image width {w} is odd (pixels come in pairs)")
    return yuv422_to_rgb(rows.reshape(h, w // 2, 4), YUV_LAYOUTS[encoding])


def encode_rgb(rgb: np.ndarray, encoding: str, is_bigendian: bool = False) -> tuple[bytes, int]:
    """(data, step) of an HxWx3 uint8 RGB array in `encoding` (rows unpadded)."""
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageEncodingError(f"expected an HxWx3 array, got {arr.shape}")
    h, w, _ = arr.shape
    bpp = BYTES_PER_PIXEL.get(encoding)
    if bpp is None:
        raise ImageEncodingError(f"cannot encode '{encoding}'", UNSUPPORTED)
    f = arr.astype(np.float64)
    luma = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        pix = arr[..., ::-1] if encoding.startswith("bgr") else arr
        if bpp == 4:
            pix = np.concatenate([pix, np.full((h, w, 1), 255, np.uint8)], axis=2)
        out = pix
    elif encoding == "mono8":
        out = _round_u8(luma)
    elif encoding == "mono16":
        out = (_round_u8(luma).astype(np.uint32) * 257).astype(">u2" if is_bigendian else "<u2").view(np.uint8)
    elif encoding in BAYER_PATTERNS:
        cell = np.array(BAYER_PATTERNS[encoding], np.intp).reshape(2, 2)
        colour_of = np.tile(cell, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
        out = np.take_along_axis(arr, colour_of[..., None], axis=2)[..., 0]
    else:
        if w % 2:
            raise ImageEncodingError(f"{encoding} image width {w} is odd (pixels come in pairs)")
        y = 16.0 + 0.857 * luma  # 219/255
        v = 128.0 + (f[..., 0] - luma) / 1.402 * 224 / 255
        u = 128.0 + (f[..., 2] - luma) / 1.772 * 224 / 255
        pairs = np.empty((h, w // 2, 4), np.uint8)
        u_at, y0_at, v_at, y1_at = YUV_LAYOUTS[encoding]
        pairs[..., y0_at], pairs[..., y1_at] = _round_u8(y[:, 0::2]), _round_u8(y[:, 1::2])
        pairs[..., u_at] = _round_u8((u[:, 0::2] + u[:, 1::2]) / 2)
        pairs[..., v_at] = _round_u8((v[:, 0::2] + v[:, 1::2]) / 2)
        out = pairs
    data = np.ascontiguousarray(out).tobytes()
    return data, w * bpp
