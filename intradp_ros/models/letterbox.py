"""Letterboxing of camera frames to KAPAO's fixed input size, vectorised (numpy gathers + slicing, no pixel loops).

The output is the uint8 [1, 3, H, W] RGB tensor the KAPAO graph takes; `LetterboxInfo` maps model pixels back to the
original frame. Matches upstream: scale by min(H/h, W/w), centre, pad with grey 114.

The resize is bilinear (align_corners=False, no antialias: torch's formula) done in numpy float32, one fixed order
of operations: the camera passthrough needs robot and server to letterbox a frame to the very same pixels, and
torch's interpolate gives other values with another thread count (measured: 1 vs 2 threads at 1280x960 -> 832x624).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxInfo:
    """How a frame of `orig_hw` was placed into the model input: model = orig * gain + (pad_x, pad_y)."""

    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    gain: float
    pad_x: int
    pad_y: int


def letterbox_size(orig_hw: Sequence[int], long_side: int = 1280, stride: int = 64) -> tuple[int, int]:
    """The smallest stride-multiple input that holds a frame scaled to `long_side` (4:3 at 1280 gives 960x1280)."""
    h, w = int(orig_hw[0]), int(orig_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {h}x{w}")
    r = long_side / max(h, w)
    nh, nw = round(h * r), round(w * r)
    return (int(np.ceil(nh / stride) * stride), int(np.ceil(nw / stride) * stride))


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first source index, second source index, weight of the second) per output index: bilinear with
    align_corners=False (source = (i + 0.5) * n_in / n_out - 0.5, clamped at 0; the last index repeats)."""
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(n_in / n_out) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0.astype(np.float32)).astype(np.float32)


def resize_bilinear(hwc: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """HxWxC uint8 resized to nh x nw x C (bilinear, rounded), the same pixels on every machine and thread count."""
    y0, y1, wy = _taps(hwc.shape[0], nh)
    x0, x1, wx = _taps(hwc.shape[1], nw)
    a = hwc.astype(np.float32)
    rows = a[y0] * (np.float32(1.0) - wy)[:, None, None] + a[y1] * wy[:, None, None]
    out = rows[:, x0] * (np.float32(1.0) - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def letterbox(image_rgb: np.ndarray | torch.Tensor, input_hw: Sequence[int]) -> tuple[torch.Tensor, LetterboxInfo]:
    """Resize (bilinear) and pad an HxWx3 uint8 RGB frame into uint8 [1, 3, H, W]; returns the placement too."""
    img = torch.as_tensor(np.ascontiguousarray(image_rgb)) if isinstance(image_rgb, np.ndarray) else image_rgb
    if img.dim() != 3 or img.shape[2] != 3 or img.dtype != torch.uint8:
        raise ValueError(f"letterbox needs an HxWx3 uint8 image, got {tuple(img.shape)} {img.dtype}")
    h, w = int(img.shape[0]), int(img.shape[1])
    th, tw = int(input_hw[0]), int(input_hw[1])
    if h == 0 or w == 0:
        raise ValueError("letterbox got an empty image")
    gain = min(th / h, tw / w)
    nh, nw = min(th, round(h * gain)), min(tw, round(w * gain))
    dw, dh = (tw - nw) / 2, (th - nh) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    if (nh, nw) != (h, w):
        hwc = torch.from_numpy(resize_bilinear(img.cpu().numpy(), nh, nw)).to(img.device)
    else:
        hwc = img
    chw = hwc.permute(2, 0, 1).unsqueeze(0)
    out = torch.full((1, 3, th, tw), PAD_VALUE, dtype=torch.uint8, device=img.device)
    out[:, :, top : top + nh, left : left + nw] = chw
    return out, LetterboxInfo((h, w), (th, tw), float(gain), left, top)


def to_original_xy(coords: torch.Tensor, info: LetterboxInfo) -> torch.Tensor:
    """Map [..., 2k] interleaved (x, y) model-pixel coordinates back to the original frame, clipped to it."""
    out = coords.clone()
    out[..., 0::2] = ((out[..., 0::2] - info.pad_x) / info.gain).clamp(0, info.orig_hw[1])
    out[..., 1::2] = ((out[..., 1::2] - info.pad_y) / info.gain).clamp(0, info.orig_hw[0])
    return out
