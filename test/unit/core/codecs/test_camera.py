"""Camera passthrough, ROS-free half: decoder identity, bounded decode of JPEG/PNG, hashes, payload layout."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from intradp_ros.core.codecs.camera import (
    MAGIC,
    CameraFrame,
    DecoderIdentity,
    decode_camera_bytes,
    local_decoder,
    pixel_hash,
    split_payload,
)
from intradp_ros.core.tile import TileError


def _jpeg(h: int = 48, w: int = 64, quality: int = 90, subsampling: int = 2) -> bytes:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.clip(np.stack([xx * 3, yy * 4, xx + yy], -1) + rng.integers(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def test_decoder_identity_names_library_version_settings_and_round_trips() -> None:
    me = local_decoder()
    assert "Pillow" in me.library and "jpeg" in me.version and "islow" in me.settings
    assert DecoderIdentity.from_json(me.to_json()) == me
    assert DecoderIdentity.from_json("") is None and DecoderIdentity.from_json('{"library": 1}') is None


def test_decode_is_bit_identical_in_another_process() -> None:
    """What the server does: a separate interpreter decoding the same bytes gets the same pixels."""
    data = _jpeg(96, 128)
    here = pixel_hash(decode_camera_bytes(data, 1 << 20))
    code = (
        "import sys; from intradp_ros.core.codecs.camera import decode_camera_bytes, pixel_hash; "
        "print(pixel_hash(decode_camera_bytes(sys.stdin.buffer.read(), 1 << 20)).hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60, check=True)
    assert out.stdout.decode().strip() == here.hex()


def test_decode_uses_accurate_idct_and_fancy_upsampling() -> None:
    """Pillow's draft mode (DCT scaling, what a 'fast' decode uses) changes pixels; our decode never uses it."""
    data = _jpeg(96, 128, subsampling=2)
    ours = decode_camera_bytes(data, 1 << 20)
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (64, 48))  # scaled DCT: different pixels
        fast = np.asarray(im.convert("RGB"))
    assert fast.shape != ours.shape or not np.array_equal(fast, ours)
    with Image.open(io.BytesIO(data)) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), ours)


def test_png_and_grey_decode_to_rgb() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "L").save(buf, "PNG")
    rgb = decode_camera_bytes(buf.getvalue(), 100)
    assert rgb.shape == (8, 8, 3) and (rgb[..., 0] == rgb[..., 2]).all()


def test_decode_refuses_bombs_and_junk_before_decoding() -> None:
    for side in (5000, 20000):  # 25 and 400 Mpixel of zeros in a few hundred kB
        buf = io.BytesIO()
        Image.new("L", (side, side)).save(buf, "PNG")
        with pytest.raises(ValueError, match="max_pixels"):
            decode_camera_bytes(buf.getvalue(), 4096 * 4096)
    with pytest.raises(ValueError, match="JPEG or PNG"):
        decode_camera_bytes(b"GIF89a....", 100)
    with pytest.raises(ValueError, match="corrupt"):
        decode_camera_bytes(_jpeg()[:200], 1 << 20)


def test_payload_layout_and_strict_split() -> None:
    data = _jpeg()
    frame = CameraFrame(data, (1, 3, 48, 64), b"h" * 16)
    payload = frame.payload()
    assert payload[:4] == MAGIC and len(payload) == len(data) + 20
    assert split_payload(payload) == (b"h" * 16, data)
    for bad in (b"", MAGIC + b"h" * 16, b"XXXX" + payload[4:], payload[:20] + b"not an image"):
        with pytest.raises(TileError) as err:
            split_payload(bad)
        assert err.value.field == "data"


def test_pixel_hash_covers_shape_and_values() -> None:
    a = np.zeros((2, 6), np.uint8)
    assert pixel_hash(a) != pixel_hash(a.reshape(3, 4)) and pixel_hash(a) != pixel_hash(a + 1)
    assert len(pixel_hash(a)) == 16
