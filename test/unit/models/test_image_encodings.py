"""Every supported camera encoding against an independent per-pixel reference (small frames, Python loops)."""

from __future__ import annotations

import numpy as np
import pytest

from intradp_ros.models.image_encodings import (
    BAYER_PATTERNS,
    MALFORMED,
    SUPPORTED_ENCODINGS,
    UNSUPPORTED,
    ImageEncodingError,
    decode_image,
)

H, W = 6, 8
RNG = np.random.default_rng(14)


def _half_up(v: float) -> int:
    return int(min(255, max(0, np.floor(v + 0.5))))


def _padded(rows: np.ndarray, pad: int = 3) -> tuple[bytes, int]:
    """Bytes with `pad` junk bytes after each row, and the step."""
    h, n = rows.shape
    out = np.full((h, n + pad), 0xAB, np.uint8)
    out[:, :n] = rows
    return out.tobytes(), n + pad


@pytest.mark.parametrize("encoding,order", [("rgb8", (0, 1, 2)), ("bgr8", (2, 1, 0))])
def test_three_channel(encoding, order):
    pix = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    data, step = _padded(pix.reshape(H, -1))
    ref = np.array([[[pix[y, x, order[c]] for c in range(3)] for x in range(W)] for y in range(H)], np.uint8)
    assert np.array_equal(decode_image(encoding, H, W, step, data), ref)


@pytest.mark.parametrize("encoding,order", [("rgba8", (0, 1, 2)), ("bgra8", (2, 1, 0))])
def test_four_channel_drops_alpha(encoding, order):
    pix = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    data, step = _padded(pix.reshape(H, -1))
    ref = np.array([[[pix[y, x, order[c]] for c in range(3)] for x in range(W)] for y in range(H)], np.uint8)
    assert np.array_equal(decode_image(encoding, H, W, step, data), ref)


def test_mono8_is_grey():
    pix = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    data, step = _padded(pix)
    ref = np.array([[[pix[y, x]] * 3 for x in range(W)] for y in range(H)], np.uint8)
    assert np.array_equal(decode_image("mono8", H, W, step, data), ref)


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_keeps_the_high_byte(big_endian):
    vals = RNG.integers(0, 65536, (H, W), dtype=np.uint32)
    raw = vals.astype(">u2" if big_endian else "<u2")
    data, step = _padded(raw.view(np.uint8).reshape(H, -1))
    ref = np.array([[[int(vals[y, x]) // 256] * 3 for x in range(W)] for y in range(H)], np.uint8)
    assert np.array_equal(decode_image("mono16", H, W, step, data, big_endian), ref)


def _bayer_reference(raw: np.ndarray, pattern: str) -> np.ndarray:
    """Per pixel: the sample of its own colour, else the mean of that colour's samples among the 3x3 neighbours
    (mirrored border, edge not repeated), rounded half up."""
    cell = BAYER_PATTERNS[pattern]
    h, w = raw.shape

    def colour(y: int, x: int) -> int:
        return cell[2 * (y % 2) + (x % 2)]

    def mirror(i: int, n: int) -> int:
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    out = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                if colour(y, x) == c:
                    out[y, x, c] = raw[y, x]
                    continue
                vals = [
                    int(raw[mirror(y + dy, h), mirror(x + dx, w)])
                    for dy in (-1, 0, 1)
                    for dx in (-1, 0, 1)
                    if colour(mirror(y + dy, h), mirror(x + dx, w)) == c
                ]
                out[y, x, c] = _half_up(sum(vals) / len(vals))
    return out


@pytest.mark.parametrize("pattern", sorted(BAYER_PATTERNS))
@pytest.mark.parametrize("shape", [(H, W), (5, 7)])
def test_bayer_bilinear_demosaic(pattern, shape):
    raw = RNG.integers(0, 256, shape, dtype=np.uint8)
    data, step = _padded(raw)
    got = decode_image(pattern, shape[0], shape[1], step, data)
    assert np.array_equal(got, _bayer_reference(raw, pattern))


def test_bayer_of_a_flat_colour_is_that_colour():
    rgb = (200, 90, 30)
    cell = BAYER_PATTERNS["bayer_rggb8"]
    raw = np.array([[rgb[cell[2 * (y % 2) + (x % 2)]] for x in range(W)] for y in range(H)], np.uint8)
    out = decode_image("bayer_rggb8", H, W, W, raw.tobytes())
    assert (out == np.array(rgb, np.uint8)).all()


def _yuv_reference(y: int, u: int, v: int) -> list:
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    return [_half_up(c + 1.596 * e), _half_up(c - 0.813 * e - 0.391 * d), _half_up(c + 2.018 * d)]


@pytest.mark.parametrize("encoding,uyvy", [("yuv422", True), ("uyvy", True), ("yuyv", False)])
def test_yuv422_bt601(encoding, uyvy):
    raw = RNG.integers(0, 256, (H, W * 2), dtype=np.uint8)
    data, step = _padded(raw)
    ref = np.zeros((H, W, 3), np.uint8)
    for y in range(H):
        for x in range(W):
            pair = raw[y, 4 * (x // 2) : 4 * (x // 2) + 4].tolist()
            u, y0, v, y1 = pair if uyvy else (pair[1], pair[0], pair[3], pair[2])
            ref[y, x] = _yuv_reference(y0 if x % 2 == 0 else y1, u, v)
    assert np.array_equal(decode_image(encoding, H, W, step, data), ref)


def test_every_supported_encoding_decodes_to_rgb():
    for enc in SUPPORTED_ENCODINGS:
        out = decode_image(enc, 4, 6, 6 * 4, bytes(range(96)))
        assert out.shape == (4, 6, 3) and out.dtype == np.uint8, enc


@pytest.mark.parametrize(
    "args,kind,reason",
    [
        (("32FC1", 2, 2, 8, bytes(16)), UNSUPPORTED, "not supported"),
        (("mono16", 2, 2, 3, bytes(16)), MALFORMED, "step 3 is smaller"),
        (("bgra8", 2, 2, 8, bytes(15)), MALFORMED, "expected step\\*height"),
        (("uyvy", 2, 3, 6, bytes(12)), MALFORMED, "width 3 is odd"),
        (("bayer_rggb8", 0, 2, 2, b""), MALFORMED, "no pixels"),
    ],
)
def test_failures_say_why_and_which_kind(args, kind, reason):
    with pytest.raises(ImageEncodingError, match=reason) as err:
        decode_image(*args)
    assert err.value.kind == kind


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_round_trip_exactly(encoding):
    from intradp_ros.models.image_encodings import encode_rgb

    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    data, step = encode_rgb(rgb, encoding)
    assert np.array_equal(decode_image(encoding, H, W, step, data), rgb)


@pytest.mark.parametrize("encoding", sorted(set(SUPPORTED_ENCODINGS) - {"rgb8", "bgr8", "rgba8", "bgra8"}))
def test_lossy_encodings_round_trip_a_smooth_picture_closely(encoding):
    """Grey, Bayer and 4:2:2 lose colour detail, not the picture: a smooth gradient survives within a few levels
    (a grey picture for the mono encodings)."""
    from intradp_ros.models.image_encodings import encode_rgb

    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([40 + 6 * xx, 60 + 12 * yy, 90 + 4 * (xx + yy)], axis=-1).astype(np.uint8)
    if encoding.startswith("mono"):
        rgb = np.repeat(rgb[..., 1:2], 3, axis=2)
    data, step = encode_rgb(rgb, encoding, is_bigendian=True)
    out = decode_image(encoding, H, W, step, data, is_bigendian=True).astype(int)
    inner = (slice(1, -1), slice(1, -1))  # the mirrored border of a gradient is not bilinear
    assert np.abs(out[inner] - rgb[inner].astype(int)).max() <= 3, encoding
