"""Lossless image codecs (delta_zstd, green_delta_zstd, webp): bit-exact on photo-like, adversarial and random
pixels (bands, strided views), strict checks of layout, dtype, size and payload."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from intradp_ros.core.codec import TileValidator, decode_tile, encode_tile
from intradp_ros.core.codecs.image import (
    green_delta,
    left_delta,
    rgb_layout,
    undo_green_delta,
    undo_left_delta,
    webp_layout,
)
from intradp_ros.core.codecs.zstd_frame import compress
from intradp_ros.core.tile import CODEC_DELTA_ZSTD, CODEC_GREEN_DELTA_ZSTD, CODEC_RAW, CODEC_WEBP, Tile, TileError


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


@pytest.mark.parametrize("codec", [CODEC_DELTA_ZSTD, CODEC_GREEN_DELTA_ZSTD, CODEC_WEBP])
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


# ------------------------------------------------------------------------------------------ green_delta_zstd
def _correlated(h: int = 48, w: int = 64, seed: int = 1) -> np.ndarray:
    """[1, 3, h, w] uint8 whose channels share a textured luminance (as a camera's do) plus a little own noise."""
    rng = np.random.default_rng(seed)
    lum = rng.integers(0, 200, size=(h, w))
    planes = [lum + off + rng.integers(0, 3, size=(h, w)) for off in (10, 30, 0)]
    return np.clip(np.stack(planes), 0, 255).astype(np.uint8)[None]


def _green_wire(x: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    return encode_tile(_tile(_frame() if x is None else x, CODEC_GREEN_DELTA_ZSTD))


@settings(max_examples=80, deadline=None)
@given(
    lead=st.sampled_from([(), (1,), (2,), (1, 1)]),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    data=st.data(),
)
def test_green_delta_round_trip_is_bit_exact(lead: tuple[int, ...], h: int, w: int, data) -> None:  # type: ignore[no-untyped-def]
    shape = (*lead, 3, h, w)
    x = data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 255)))
    wire = encode_tile(Tile(1, 1, 0, len(shape) - 2, 0, h, x, CODEC_GREEN_DELTA_ZSTD))
    got = decode_tile(wire, TileValidator(None, None, 1 << 20))
    assert got.data.dtype == np.uint8 and got.data.shape == x.shape and got.data.tobytes() == x.tobytes()
    assert np.array_equal(undo_green_delta(green_delta(x)), x)


@pytest.mark.parametrize("band", [(0, 1), (5, 17), (40, 48)])
def test_green_delta_bands_and_strided_views_round_trip(band: tuple[int, int]) -> None:
    """Row bands (what streams), column slices and a channel-reversed view: non-contiguous inputs, exact."""
    x = _frame()
    views = [x[..., band[0] : band[1], :], x[..., band[0] : band[1], 3:50:2], x[:, ::-1, band[0] : band[1], :]]
    for v in views:
        assert not v.flags.c_contiguous
        got = decode_tile(encode_tile(Tile(1, 1, 0, 2, band[0], band[1], v, CODEC_GREEN_DELTA_ZSTD))).data
        assert got.tobytes() == np.ascontiguousarray(v).tobytes()
        assert np.array_equal(undo_green_delta(green_delta(v)), v)


def test_green_delta_payload_is_subtract_green_then_left_delta() -> None:
    """The wire format (msg/TensorTile.msg): planes R-G, G, B-G mod 256, each as left differences, one frame."""
    x = _frame()
    got = np.frombuffer(zstandard.ZstdDecompressor().decompress(bytes(_green_wire(x).data)), np.uint8)
    r, g, b = (x[0, c].astype(np.int64) for c in range(3))
    want = np.stack([(r - g) % 256, g, (b - g) % 256]).astype(np.uint8)[None]
    assert got.tobytes() == left_delta(want).tobytes()


def test_green_delta_beats_delta_zstd_on_correlated_channels() -> None:
    x = _correlated()
    green = len(_green_wire(x).data)
    plain = len(encode_tile(_tile(x, CODEC_DELTA_ZSTD)).data)
    assert green < 0.8 * plain, (green, plain)  # shared luminance: R-G and B-G are the small own noise


def test_green_delta_refuses_what_it_cannot_carry_when_encoding() -> None:
    with pytest.raises(TileError) as err:
        encode_tile(_tile(np.zeros((1, 3, 4, 4), np.int8), CODEC_GREEN_DELTA_ZSTD))
    assert err.value.field == "dtype"
    for shape in [(1, 4, 4, 4), (1, 2, 4, 4), (3, 4), (4,)]:
        with pytest.raises(TileError, match="RGB"):
            encode_tile(Tile(1, 1, 0, 0, 0, shape[0], np.zeros(shape, np.uint8), CODEC_GREEN_DELTA_ZSTD))


@pytest.mark.parametrize(
    "change,field",
    [
        ({"dtype": "int8"}, "dtype"),
        ({"dtype": "float32"}, "dtype"),
        ({"shape": (1, 4, 48, 64)}, "shape"),
        ({"shape": (3 * 48, 64)}, "shape"),
        ({"shape": (1, 3, 48, 63)}, "data"),  # one column less: the frame declares more bytes than the shape
        ({"data": b""}, "data"),
    ],
)
def test_green_delta_static_checks_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(_green_wire(), **change))
    assert err.value.field == field


@pytest.mark.parametrize("damage", ["truncate", "trailing", "garbage", "bomb", "second_frame", "no_size"])
def test_green_delta_refuses_malformed_payloads(damage: str) -> None:
    good = bytes(_green_wire().data)
    bad = {
        "truncate": lambda: good[: len(good) // 2],
        "trailing": lambda: good + b"\x00",
        "garbage": lambda: bytes(np.random.default_rng(0).integers(0, 256, len(good), dtype=np.uint8)),
        "bomb": lambda: compress(bytes(64 << 20)),
        "second_frame": lambda: good + good,
        "no_size": lambda: zstandard.ZstdCompressor(write_content_size=False).compress(bytes(3 * 48 * 64)),
    }[damage]()
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(_green_wire(), data=bad))
    assert err.value.field == "data"


def test_green_delta_decoded_size_is_limited_before_decompressing() -> None:
    wire = _green_wire(np.zeros((1, 3, 64, 64), np.uint8))  # 12 kB decoded, a few dozen bytes on the wire
    assert len(wire.data) < 200
    with pytest.raises(TileError, match="decodes to") as err:
        decode_tile(wire, TileValidator(None, None, max_bytes=4096))
    assert err.value.field == "shape"
    assert decode_tile(wire, TileValidator(None, {0: (1, 3, 64, 64)}, 1 << 20)).data.shape == (1, 3, 64, 64)


def test_rgb_layout_needs_three_planes_third_from_last() -> None:
    assert rgb_layout((1, 3, 4, 4)) is None and rgb_layout((3, 1, 1)) is None and rgb_layout((2, 3, 4, 4)) is None
    assert rgb_layout((1, 4, 4, 4)) is not None and rgb_layout((3, 4)) is not None and rgb_layout((4, 3, 4)) is not None
