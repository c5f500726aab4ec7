"""Camera passthrough, the model-input half: camera file -> letterboxed KAPAO input tagged with its file bytes,
and the CODEC_CAMERA codec that rebuilds the same input on the receiver (registered on import).

Both sides run `camera_model_input`: bounded decode (core/codecs/camera.py), then `letterbox` on the CPU, so
the robot's model input and the server's are the same function of the same bytes. The robot's hash of its input
travels in the payload; a receiver whose decode hashes differently refuses the tile (TileError 'data'), naming
the decoder mismatch, instead of computing on different pixels.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Sequence
from math import prod

import numpy as np
import torch

from intradp_ros.core.codecs import Codec, Payload, register
from intradp_ros.core.codecs.camera import (
    ATTR,
    HEADER_BYTES,
    CameraFrame,
    decode_camera_bytes,
    local_decoder,
    pixel_hash,
    split_payload,
)
from intradp_ros.core.tile import CODEC_CAMERA, TileError
from intradp_ros.models.letterbox import LetterboxInfo, letterbox

MAX_CAMERA_PIXELS = 4096 * 4096  # largest camera frame a receiver decodes (the client's max_pixels default)


def camera_model_input(
    data: bytes, input_hw: Sequence[int], max_pixels: int = MAX_CAMERA_PIXELS
) -> tuple[torch.Tensor, LetterboxInfo, np.ndarray]:
    """(uint8 [1, 3, H, W] model input tagged with its CameraFrame, placement, decoded HxWx3 frame).

    ValueError for a file that is not a JPEG/PNG, is corrupt or is over `max_pixels`.
    """
    rgb = decode_camera_bytes(bytes(data), max_pixels)
    x, info = letterbox(rgb, input_hw)
    x = x.cpu().contiguous()
    setattr(x, ATTR, CameraFrame(bytes(data), tuple(x.shape), pixel_hash(x.numpy())))
    return x, info, rgb


def camera_frame_of(x: torch.Tensor) -> CameraFrame | None:
    frame = getattr(x, ATTR, None)
    return frame if isinstance(frame, CameraFrame) else None


def drop_camera_frame(x: torch.Tensor) -> torch.Tensor:
    """The same input without its file bytes: the sender then sends pixels (passthrough off)."""
    if hasattr(x, ATTR):
        delattr(x, ATTR)
    return x


def _encode(arr: np.ndarray, index: np.ndarray | None, encoded: bytes | None) -> Payload:
    if encoded is None:
        raise TileError("data", "a camera tile needs the camera payload (Tile.encoded)")
    return encoded


def _check(dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
    if dtype != "uint8" or len(shape) != 4 or shape[0] != 1 or shape[1] != 3:
        raise TileError("shape", f"a camera tile is a uint8 [1, 3, H, W] model input, got {dtype}{list(shape)}")
    if nbytes <= HEADER_BYTES:
        raise TileError("data", "camera payload too short")


def _decode(payload: Payload, dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, None]:
    return decode_camera_tile(payload, shape), None


def decode_camera_tile(payload: Payload, shape: tuple[int, ...]) -> np.ndarray:
    """The model input of a CODEC_CAMERA payload; TileError('data') naming a decoder mismatch if its hash differs
    from the robot's."""
    robot_hash, body = split_payload(bytes(payload))
    try:
        x, _info, _rgb = camera_model_input(body, shape[-2:])
    except ValueError as e:
        raise TileError("data", f"camera passthrough: {e}") from None
    if tuple(x.shape) != tuple(shape):
        raise TileError("shape", f"camera frame letterboxes to {tuple(x.shape)}, tile says {tuple(shape)}")
    frame = camera_frame_of(x)
    assert frame is not None
    if frame.input_hash != robot_hash:
        raise TileError(
            "data",
            f"camera passthrough: this side's decode differs from the robot's (decoder mismatch; "
            f"here: {local_decoder().version})",
        )
    return drop_camera_frame(x).numpy()


CAMERA = register(Codec(CODEC_CAMERA, "camera", _encode, _decode, _check, dtypes=frozenset(("uint8",))))


def sample_model_input(input_hw: Sequence[int]) -> torch.Tensor | None:
    """A real photograph (scikit-image's bundled 'astronaut', a pinned dependency) letterboxed to `input_hw` like a
    camera frame: what a robot profiles its codecs on before its first frame (None without scikit-image)."""
    try:
        from skimage import data
    except ImportError:
        return None
    rgb = np.ascontiguousarray(np.asarray(data.astronaut())[:, :, :3])
    x, _info = letterbox(rgb, input_hw)
    return x.cpu().contiguous()


def sample_profile_input(example: torch.Tensor) -> tuple[torch.Tensor, str]:
    """(input a camera robot's profile is measured on, its name): the bundled photograph letterboxed like a frame
    of `example`'s shape, so its codec ratios are a picture's, not the random example's, which never compresses
    (a torchvision client profiled on the example priced every image codec at ratio 1.0 and never used one);
    `example` and "" where no photograph fits (no scikit-image, another shape or dtype)."""
    sample = sample_model_input(tuple(example.shape[-2:]))
    if sample is None or sample.shape != example.shape or sample.dtype != example.dtype:
        return example, ""
    return sample, "camera_sample"


def sample_camera_payload(input_hw: Sequence[int], quality: int = 90) -> bytes | None:
    """A CODEC_CAMERA payload of the bundled photograph as a camera JPEG (quality 90, like a camera driver), for
    timing a decode before any real frame came (None without scikit-image)."""
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return None
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(data.astronaut())[:, :, :3])).save(buf, "JPEG", quality=quality)
    x, _info, _rgb = camera_model_input(buf.getvalue(), input_hw)
    frame = camera_frame_of(x)
    return None if frame is None else frame.payload()


def measure_camera_decode(payload: bytes, input_shape: Sequence[int], repeat: int = 3) -> float:
    """Seconds per MB (1e6 bytes) of model input this side takes to rebuild the input from a CODEC_CAMERA payload
    (decode + letterbox + hash check, as a received tile), the median of `repeat` runs; TileError if it fails."""
    shape = tuple(int(d) for d in input_shape)
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        decode_camera_tile(payload, shape)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (prod(shape) / 1e6)
