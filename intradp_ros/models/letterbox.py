"""Letterboxing of camera frames to KAPAO's fixed input size, vectorised (torch interpolate + slicing, no pixel loops).

The output is the uint8 [1, 3, H, W] RGB tensor the KAPAO graph takes; `LetterboxInfo` maps model pixels back to the
original frame. Matches upstream: scale by min(H/h, W/w), centre, pad with grey 114.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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
    chw = img.permute(2, 0, 1).unsqueeze(0)
    if (nh, nw) != (h, w):
        chw = F.interpolate(chw.float(), size=(nh, nw), mode="bilinear", align_corners=False)
        chw = chw.round_().clamp_(0, 255).to(torch.uint8)
    out = torch.full((1, 3, th, tw), PAD_VALUE, dtype=torch.uint8, device=img.device)
    out[:, :, top : top + nh, left : left + nw] = chw
    return out, LetterboxInfo((h, w), (th, tw), float(gain), left, top)


def to_original_xy(coords: torch.Tensor, info: LetterboxInfo) -> torch.Tensor:
    """Map [..., 2k] interleaved (x, y) model-pixel coordinates back to the original frame, clipped to it."""
    out = coords.clone()
    out[..., 0::2] = ((out[..., 0::2] - info.pad_x) / info.gain).clamp(0, info.orig_hw[1])
    out[..., 1::2] = ((out[..., 1::2] - info.pad_y) / info.gain).clamp(0, info.orig_hw[0])
    return out
