"""Camera passthrough, the ROS-free and torch-free half: decoder identity, bounded JPEG/PNG decode, pixel hash.

When a plan sends the whole graph input to the server, the robot can send the camera's own JPEG/PNG bytes
(150-400 kB for 1280x960) instead of the letterboxed pixels (3.7 MB). That is exact only if the server decodes
them to the very same pixels: both sides decode with `decode_camera_bytes` (Pillow on libjpeg-turbo / zlib, the
library defaults: accurate integer IDCT, fancy upsampling, no draft/DCT scaling) and letterbox identically
(models/camera_input.py). `DecoderIdentity` names library, versions and settings; the handshake carries it and
the client only passes bytes through when the server's identity equals its own. Every camera tile also carries
the robot's hash of the decoded model input, and the server refuses a tile whose decode hashes differently,
so a decoder drift is caught on the first frame (the client then sends raw pixels and warns once).

Payload of a CODEC_CAMERA tile: MAGIC (4 bytes), the 16-byte blake2b of the model input, the file bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import PIL
from PIL import Image, features

from intradp_ros.core.tile import TileError

MAGIC = b"IDPC"
HASH_BYTES = 16
HEADER_BYTES = len(MAGIC) + HASH_BYTES
FORMATS = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
DECODE_SETTINGS = "mode=RGB;jpeg_dct=islow(accurate);jpeg_fancy_upsampling=on;draft=off;png=zlib"


@dataclass(frozen=True)
class DecoderIdentity:
    """What must be equal on both sides for a camera file to decode to the same pixels."""

    library: str
    version: str
    settings: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> DecoderIdentity | None:
        """The identity a peer sent; None for an empty or malformed field (passthrough then stays off)."""
        try:
            d = json.loads(text)
            return DecoderIdentity(str(d["library"]), str(d["version"]), str(d["settings"]))
        except (ValueError, TypeError, KeyError):
            return None


def local_decoder() -> DecoderIdentity:
    """This process's decoder: Pillow and the libjpeg-turbo / zlib it was built with."""
    jpeg = features.version("libjpeg_turbo") or features.version_codec("jpg") or "none"
    zlib = features.version_codec("zlib") or "none"
    return DecoderIdentity(
        library="Pillow+libjpeg-turbo" if features.check_feature("libjpeg_turbo") else "Pillow+libjpeg",
        version=f"Pillow {PIL.__version__}; jpeg {jpeg}; zlib {zlib}",
        settings=DECODE_SETTINGS,
    )


def sniff_format(data: bytes) -> str | None:
    for magic, name in FORMATS.items():
        if data[: len(magic)] == magic:
            return name
    return None


def decode_camera_bytes(data: bytes, max_pixels: int) -> np.ndarray:
    """HxWx3 uint8 RGB pixels of a JPEG or PNG file; ValueError for anything else, a corrupt file or a picture
    over `max_pixels` (checked from the header, before any pixel is decoded)."""
    fmt = sniff_format(data)
    if fmt is None:
        raise ValueError("not a JPEG or PNG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                w, h = im.size
                if w <= 0 or h <= 0 or w * h > max_pixels:
                    raise ValueError(f"{fmt} picture {w}x{h} exceeds max_pixels={max_pixels}")
                if im.mode not in ("RGB", "L", "P", "RGBA", "LA", "I;16", "I"):
                    raise ValueError(f"{fmt} picture mode {im.mode} is not supported")
                rgb = im.convert("RGB")  # JPEG: libjpeg's own YCbCr->RGB (JCS_RGB output), as the robot did
                rgb.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"{fmt} picture exceeds max_pixels={max_pixels} (and Pillow's bomb limit): {e}") from None
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt data
        raise ValueError(f"corrupt {fmt} file: {type(e).__name__}: {e}") from None
    return np.array(rgb)  # writable (torch.as_tensor in letterbox warns on read-only arrays)


def pixel_hash(arr: np.ndarray) -> bytes:
    """16-byte blake2b of an array's shape, dtype and bytes (the decoded model input)."""
    a = np.ascontiguousarray(arr)
    h = hashlib.blake2b(digest_size=HASH_BYTES)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.data)
    return h.digest()


@dataclass(frozen=True)
class CameraFrame:
    """The camera file behind a model input: its bytes, the input's shape and the hash of the decoded input."""

    encoded: bytes
    tensor_shape: tuple[int, ...]
    input_hash: bytes

    def payload(self) -> bytes:
        return MAGIC + self.input_hash + self.encoded


def split_payload(payload: bytes) -> tuple[bytes, bytes]:
    """(robot's input hash, file bytes) of a CODEC_CAMERA payload; TileError('data') if malformed."""
    if len(payload) <= HEADER_BYTES or payload[: len(MAGIC)] != MAGIC:
        raise TileError("data", "not a camera passthrough payload")
    body = payload[HEADER_BYTES:]
    if sniff_format(body) is None:
        raise TileError("data", "camera passthrough payload is not a JPEG or PNG file")
    return payload[len(MAGIC) : HEADER_BYTES], body


ATTR = "camera_frame"


def camera_payload(tensor: object) -> bytes | None:
    """The CODEC_CAMERA payload of a model input tensor tagged by models/camera_input.py, else None."""
    frame = getattr(tensor, ATTR, None)
    return frame.payload() if isinstance(frame, CameraFrame) else None
