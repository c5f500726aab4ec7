"""Every registered lossless codec: bit-exact round trips through the wire codec, strict refusal of malformed,
oversized and decompression-bomb payloads, and the sender's codec choice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from intradp_ros.core.codec import (
    DENSE_CODECS,
    SPARSE_CODECS,
    UNCOMPRESSED,
    TileValidator,
    choose_codec,
    choose_sparse_codec,
    decode_tile,
    encode_tile,
)
from intradp_ros.core.codecs import get_codec, registered
from intradp_ros.core.codecs.zstd_frame import compress
from intradp_ros.core.tile import (
    CODEC_BITPACK,
    CODEC_BITPACK_ZSTD,
    CODEC_CAMERA,
    CODEC_DELTA_ZSTD,
    CODEC_GREEN_DELTA_ZSTD,
    CODEC_RAW,
    CODEC_SPARSE,
    CODEC_SPARSE_ZSTD,
    CODEC_WEBP,
    CODEC_ZSTD,
    CODEC_ZSTD_SHUFFLE,
    Tile,
    TileError,
)

ALL_DTYPES = ["float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"]
GENERIC = [CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_SHUFFLE]


def _sample(dtype: str, shape: tuple, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("float"):
        x = rng.standard_normal(shape).astype(dtype)
        flat = x.reshape(-1)
        flat[:3] = [np.nan, -0.0, np.inf][: flat.size]  # bit-exact, not just ==
        return x
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _tile(data: np.ndarray, codec: int, index: np.ndarray | None = None) -> Tile:
    return Tile(7, 3, 2, 0, 0, data.shape[0] if data.ndim else 1, data, codec, index=index)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("codec", GENERIC)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(5, 3, 7), (1, 1), (0, 4)])
def test_generic_codecs_round_trip_bit_exact(codec: int, dtype: str, shape: tuple) -> None:
    x = _sample(dtype, shape)
    got = decode_tile(encode_tile(_tile(x, codec)))
    assert _same_bits(got.data, x) and got.codec == codec


def test_big_endian_and_strided_input_round_trip() -> None:
    x = _sample("float32", (6, 8)).astype(">f4")[:, ::2]
    got = decode_tile(encode_tile(_tile(x, CODEC_ZSTD_SHUFFLE)))
    assert np.array_equal(got.data, x.astype("<f4"), equal_nan=True)


@pytest.mark.parametrize("dtype", ["bool", "uint8"])
def test_bitpack_zstd_round_trip_and_compresses_grids(dtype: str) -> None:
    grid = np.zeros((1, 1, 64, 32, 64), dtype=dtype)
    grid[..., 10:20, 5:9, 30:40] = 1
    wire = encode_tile(_tile(grid, CODEC_BITPACK_ZSTD))
    assert len(wire.data) < grid.size // 8 // 20  # a mostly empty grid: far below the bit-packed size
    assert _same_bits(decode_tile(wire).data, grid)


def test_bitpack_zstd_refuses_non_binary_values() -> None:
    with pytest.raises(TileError) as err:
        encode_tile(_tile(np.array([0, 2], np.uint8), CODEC_BITPACK_ZSTD))
    assert err.value.field == "data"


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
def test_delta_zstd_round_trip_every_byte_value(dtype: str) -> None:
    x = np.arange(256 * 6, dtype=np.uint16).astype(np.uint8).reshape(1, 3, 2, 256)[..., ::-1].copy()
    if dtype != "uint8":
        with pytest.raises(TileError):
            encode_tile(_tile(x.astype(dtype), CODEC_DELTA_ZSTD))
        return
    assert _same_bits(decode_tile(encode_tile(_tile(x, CODEC_DELTA_ZSTD))).data, x)


@pytest.mark.parametrize("codec", [CODEC_SPARSE, CODEC_SPARSE_ZSTD])
@pytest.mark.parametrize("gap", [1, 300, 70_000, 2**40])
def test_sparse_codecs_round_trip(codec: int, gap: int) -> None:
    rng = np.random.default_rng(1)
    index = np.cumsum(rng.integers(0, gap, size=50, endpoint=True)).astype(np.int64)
    entries = _sample("float32", (50, 4))
    got = decode_tile(encode_tile(_tile(entries, codec, index)))
    assert _same_bits(got.data, entries) and _same_bits(got.index, index)


def test_sparse_zstd_is_smaller_than_sparse_for_dense_positions() -> None:
    index = np.flatnonzero(np.random.default_rng(2).random(200_000) < 0.1).astype(np.int64)
    entries = np.ones((len(index),), np.uint8)
    raw = len(encode_tile(_tile(entries, CODEC_SPARSE, index)).data)
    packed = len(encode_tile(_tile(entries, CODEC_SPARSE_ZSTD, index)).data)
    assert packed * 4 < raw


def test_sparse_zstd_refuses_descending_positions() -> None:
    with pytest.raises(TileError):
        encode_tile(_tile(np.zeros((2,), np.float32), CODEC_SPARSE_ZSTD, np.array([5, 3])))


def test_sparse_zstd_refuses_bad_width_byte_and_overflowing_positions() -> None:
    good = encode_tile(_tile(np.zeros((2,), np.uint8), CODEC_SPARSE_ZSTD, np.array([1, 2])))
    with pytest.raises(TileError, match="width"):
        decode_tile(dataclasses.replace(good, data=b"\x03" + bytes(good.data[1:])))
    huge = np.array([2**63 - 1, 2**63 - 1], dtype="<u8").tobytes() + b"\0\0"
    with pytest.raises(TileError, match="int64"):
        decode_tile(dataclasses.replace(good, data=b"\x08" + compress(huge)))


# ------------------------------------------------------------------------------------------ strictness
ZSTD_BASED = [CODEC_ZSTD, CODEC_ZSTD_SHUFFLE, CODEC_BITPACK_ZSTD, CODEC_DELTA_ZSTD]


def _wire(codec: int):  # type: ignore[no-untyped-def]
    x = np.zeros((4, 16), np.uint8)
    return encode_tile(_tile(x, codec))


@pytest.mark.parametrize("codec", ZSTD_BASED)
def test_zstd_codecs_refuse_a_bomb_declaring_more_than_the_shape(codec: int) -> None:
    bomb = compress(bytes(64 << 20))  # 64 MiB of zeros in a few kB
    assert len(bomb) < 1 << 16
    with pytest.raises(TileError, match="declares") as err:
        decode_tile(dataclasses.replace(_wire(codec), data=bomb))
    assert err.value.field == "data"


@pytest.mark.parametrize("codec", ZSTD_BASED)
def test_zstd_codecs_refuse_frames_without_content_size(codec: int) -> None:
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(64))
    with pytest.raises(TileError):
        decode_tile(dataclasses.replace(_wire(codec), data=frame))


@pytest.mark.parametrize("codec", ZSTD_BASED)
@pytest.mark.parametrize("damage", ["truncate", "trailing", "garbage", "empty"])
def test_zstd_codecs_refuse_malformed_frames(codec: int, damage: str) -> None:
    good = bytes(_wire(codec).data)
    bad = {
        "truncate": good[:-3],
        "trailing": good + b"x",
        "garbage": b"\x00" * len(good),
        "empty": b"",
    }[damage]
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(_wire(codec), data=bad))
    assert err.value.field == "data"


def test_validator_limit_applies_to_decoded_size() -> None:
    x = np.zeros((64, 64), np.float32)  # 16 kB decoded, ~100 bytes compressed
    wire = encode_tile(_tile(x, CODEC_ZSTD))
    assert len(wire.data) < 1000
    with pytest.raises(TileError, match="decodes to"):
        decode_tile(wire, TileValidator(None, None, max_bytes=4096))
    assert _same_bits(decode_tile(wire, TileValidator(None, None, max_bytes=1 << 20)).data, x)


def test_validator_checks_rows_of_compressed_tiles_against_node_shapes() -> None:
    wire = encode_tile(Tile(7, 3, 2, 0, 0, 4, np.zeros((4, 16), np.uint8), CODEC_DELTA_ZSTD))
    with pytest.raises(TileError) as err:
        decode_tile(wire, TileValidator(None, {2: (4, 15)}, 1 << 20))
    assert err.value.field == "shape"


def test_codec_dtype_restrictions_are_validated_on_receipt() -> None:
    wire = encode_tile(_tile(np.zeros((4, 16), np.uint8), CODEC_DELTA_ZSTD))
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, dtype="float32"))
    assert err.value.field == "dtype"


def test_every_registered_codec_is_accepted_by_exactly_one_receiver_set() -> None:
    ids = set(registered())
    assert ids <= DENSE_CODECS | SPARSE_CODECS
    assert not DENSE_CODECS & SPARSE_CODECS
    for cid in SPARSE_CODECS:
        assert get_codec(cid).sparse


# ----------------------------------------------------------------------------------------- choice
@dataclasses.dataclass
class _Node:
    binary: bool = False
    is_input: bool = False


def test_choose_codec_defaults_to_the_uncompressed_wire_format() -> None:
    assert choose_codec(_Node(binary=True), np.ones((2, 2), np.uint8)) == CODEC_BITPACK
    assert choose_codec(_Node(binary=True), np.full((2, 2), 3, np.uint8)) == CODEC_RAW
    assert choose_codec(_Node(), np.ones((2, 2), np.float32)) == CODEC_RAW
    assert choose_sparse_codec() == CODEC_SPARSE


def test_choose_codec_with_compression_enabled() -> None:
    every = DENSE_CODECS | SPARSE_CODECS
    assert choose_codec(_Node(binary=True), np.ones((2, 2), np.uint8), every) == CODEC_BITPACK_ZSTD
    assert choose_codec(_Node(), np.ones((1, 3, 2, 2), np.uint8), every) == CODEC_GREEN_DELTA_ZSTD  # RGB planes
    assert choose_codec(_Node(), np.ones((1, 4, 2, 2), np.uint8), every) == CODEC_DELTA_ZSTD  # not 3 channels
    assert choose_codec(_Node(), np.ones((1, 3, 2, 2), np.uint8), every - {CODEC_GREEN_DELTA_ZSTD}) == CODEC_DELTA_ZSTD
    assert choose_codec(_Node(), np.ones((1, 3, 2, 2), np.uint8), UNCOMPRESSED | {CODEC_WEBP}) == CODEC_WEBP
    assert choose_codec(_Node(), np.ones((5, 2), np.uint8), UNCOMPRESSED | {CODEC_WEBP}) == CODEC_RAW
    assert choose_codec(_Node(), np.ones((2, 2), np.float32), every) == CODEC_ZSTD_SHUFFLE
    assert choose_codec(_Node(), np.ones((2, 2), np.int8), every) == CODEC_ZSTD
    assert choose_codec(_Node(is_input=True), np.ones((2, 2), np.uint8), every, source=object()) != CODEC_CAMERA
    assert choose_sparse_codec(every) == CODEC_SPARSE_ZSTD


def test_abort_tile_without_payload_needs_an_empty_shape_even_without_a_validator() -> None:
    from intradp_ros.core.codec import WireTile
    from intradp_ros.core.tile import FLAG_ABORT

    empty = decode_tile(WireTile(1, 1, 0, 0, 0, 0, "uint8", (0,), CODEC_RAW, FLAG_ABORT, b""))
    assert empty.data.shape == (0,)
    with pytest.raises(TileError) as err:
        decode_tile(WireTile(1, 1, 0, 0, 0, 0, "uint8", (3,), CODEC_ZSTD, FLAG_ABORT, b""))
    assert err.value.field == "data"


def test_nbytes_is_the_size_on_the_wire_once_encoded() -> None:
    x = np.zeros((64, 64), np.float32)
    tile = _tile(x, CODEC_ZSTD)
    assert tile.nbytes == x.nbytes  # not encoded yet: the uncompressed size
    wire = encode_tile(tile)
    assert tile.nbytes == len(wire.data) < x.nbytes
    assert decode_tile(wire).nbytes == len(wire.data)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(ALL_DTYPES),
    shape=st.lists(st.integers(0, 7), min_size=1, max_size=4).map(lambda s: (max(s[0], 1), *s[1:])),  # rows >= 1
    codec=st.sampled_from([CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_SHUFFLE]),
    seed=st.integers(0, 2**16),
)
def test_property_every_generic_codec_is_bit_exact(dtype: str, shape: tuple, codec: int, seed: int) -> None:
    x = _sample(dtype, shape, seed)
    got = decode_tile(encode_tile(_tile(x, codec)), TileValidator(None, None, 1 << 20))
    assert _same_bits(got.data, x)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=2, max_size=4).map(tuple),
    seed=st.integers(0, 2**16),
)
def test_property_uint8_and_bits_codecs_are_bit_exact(shape: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    assert _same_bits(decode_tile(encode_tile(_tile(img, CODEC_DELTA_ZSTD))).data, img)
    bits = rng.integers(0, 2, size=shape).astype(bool)
    assert _same_bits(decode_tile(encode_tile(_tile(bits, CODEC_BITPACK_ZSTD))).data, bits)
