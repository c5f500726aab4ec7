"""Lossless image codecs (delta_zstd, webp): bit-exact on photo-like and adversarial pixels, strict WebP checks."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from intradp_ros.core.codec import TileValidator, decode_tile, encode_tile
from intradp_ros.core.codecs.image import left_delta, undo_left_delta, webp_layout
from intradp_ros.core.tile import CODEC_DELTA_ZSTD, CODEC_RAW, CODEC_WEBP, Tile, TileError


def _frame(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """[1, 3, h, w] uint8: smooth gradients plus noise, and the extreme values 0/255 side by side."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2]).astype(np.int32) + rng.integers(-3, 4, size=(3, h, w))
    x = np.clip(base, 0, 255).astype(np.uint8)
    x[:, 0, ::2], x[:, 0, 1::2] = 0, 255
    return x[None]


def _tile(x: np.ndarray, codec: int) -> Tile:
    return Tile(1, 1, 0, 2, 0, x.shape[2], x, codec)


@pytest.mark.parametrize("codec", [CODEC_DELTA_ZSTD, CODEC_WEBP])
def test_round_trip_bit_exact_and_smaller_than_raw(codec: int) -> None:
    x = _frame()
    wire = encode_tile(_tile(x, codec))
    got = decode_tile(wire, TileValidator(None, {0: (1, 3, 48, 64)}, 1 << 20))
    assert got.data.tobytes() == x.tobytes() and got.data.shape == x.shape
    assert len(wire.data) < x.nbytes * 0.7  # noise of 7 levels alone needs ~0.35 of the raw bytes


@pytest.mark.parametrize("seed", range(3))
def test_webp_round_trip_random_noise(seed: int) -> None:
    x = np.random.default_rng(seed).integers(0, 256, size=(1, 3, 17, 31), dtype=np.uint8)
    assert decode_tile(encode_tile(_tile(x, CODEC_WEBP))).data.tobytes() == x.tobytes()


def test_left_delta_is_undone_exactly() -> None:
    x = np.random.default_rng(4).integers(0, 256, size=(2, 3, 5, 9), dtype=np.uint8)
    assert np.array_equal(undo_left_delta(left_delta(x)), x)
    assert left_delta(x)[..., 1].tolist() == ((x[..., 1].astype(int) - x[..., 0]) % 256).tolist()


def test_webp_layout_refuses_non_image_tiles() -> None:
    assert webp_layout((1, 3, 4, 4)) is None
    assert webp_layout((3, 4, 4)) is None
    assert webp_layout((2, 3, 4, 4)) is not None
    assert webp_layout((1, 4, 4, 4)) is not None
    assert webp_layout((1, 3, 4, 20000)) is not None
    with pytest.raises(TileError):
        encode_tile(_tile(np.zeros((1, 4, 4, 4), np.uint8), CODEC_WEBP))


def _webp_bytes(h: int, w: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    "payload,why",
    [
        (lambda: _webp_bytes(4000, 4000), "bomb: a far bigger picture than the tile"),
        (lambda: _webp_bytes(48, 65), "one column more"),
        (lambda: _webp_bytes(48, 64, "RGBA"), "alpha channel"),
        (lambda: b"RIFF\x00\x00\x00\x00WEBPgarbage", "corrupt"),
        (lambda: b"\x89PNG\r\n\x1a\n" + bytes(40), "not webp"),
    ],
)
def test_webp_refuses_pictures_that_do_not_match_the_tile(payload, why: str) -> None:  # type: ignore[no-untyped-def]
    wire = encode_tile(_tile(_frame(), CODEC_WEBP))
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, data=payload()))
    assert err.value.field == "data", why


def test_webp_static_checks_name_the_field() -> None:
    wire = encode_tile(_tile(_frame(), CODEC_WEBP))
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, shape=(1, 2, 48, 64)))
    assert err.value.field == "shape"
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, dtype="int8"))
    assert err.value.field == "dtype"
    assert encode_tile(_tile(_frame(), CODEC_RAW)).codec == CODEC_RAW
