"""Opt-in lossy codecs: error within the stated bounds, never chosen without an error budget, strict decoding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from intradp_ros.core.codec import DENSE_CODECS, LOSSLESS, LOSSY_CODECS, choose_codec, decode_tile, encode_tile
from intradp_ros.core.codecs import get_codec
from intradp_ros.core.codecs.lossy import FP16_REL_ERROR, INT8_REL_ERROR, choose_lossy_codec
from intradp_ros.core.tile import CODEC_FP16, CODEC_INT8, CODEC_RAW, CODEC_ZSTD_SHUFFLE, Tile, TileError


def _tile(x: np.ndarray, codec: int) -> Tile:
    return Tile(1, 1, 0, 0, 0, x.shape[0], x, codec)


def _acts(seed: int = 0) -> np.ndarray:
    return np.maximum(np.random.default_rng(seed).standard_normal((8, 16, 32)).astype(np.float32) * 3, 0)


def test_fp16_error_within_its_bound_and_half_the_bytes() -> None:
    x = _acts()
    wire = encode_tile(_tile(x, CODEC_FP16))
    got = decode_tile(wire).data
    assert got.dtype == np.float32 and len(wire.data) == x.size * 2
    assert np.all(np.abs(got - x) <= FP16_REL_ERROR * np.abs(x) + 1e-7)


def test_int8_error_within_scale_over_two_and_a_quarter_of_the_bytes() -> None:
    x = _acts(1)
    wire = encode_tile(_tile(x, CODEC_INT8))
    got = decode_tile(wire).data
    assert len(wire.data) == 4 + x.size
    assert np.max(np.abs(got - x)) <= INT8_REL_ERROR * np.max(np.abs(x)) * 1.0001
    zeros = np.zeros((2, 3), np.float32)
    assert np.array_equal(decode_tile(encode_tile(_tile(zeros, CODEC_INT8))).data, zeros)


def test_lossy_codecs_refuse_what_they_cannot_carry() -> None:
    with pytest.raises(TileError):
        encode_tile(_tile(np.array([1e6], np.float32), CODEC_FP16))
    with pytest.raises(TileError):
        encode_tile(_tile(np.array([np.nan], np.float32), CODEC_INT8))
    with pytest.raises(TileError) as err:
        encode_tile(_tile(np.zeros(3, np.float64), CODEC_INT8))
    assert err.value.field == "dtype"
    wire = encode_tile(_tile(_acts(), CODEC_INT8))
    bad_scale = np.array([-1.0], "<f4").tobytes() + bytes(wire.data[4:])
    with pytest.raises(TileError, match="scale"):
        decode_tile(dataclasses.replace(wire, data=bad_scale))
    with pytest.raises(TileError):
        decode_tile(dataclasses.replace(wire, data=bytes(wire.data[:-1])))


def test_lossy_only_with_an_error_budget() -> None:
    x = _acts()
    every = DENSE_CODECS
    assert LOSSY_CODECS <= DENSE_CODECS and not LOSSY_CODECS & LOSSLESS
    assert all(not get_codec(c).lossless for c in LOSSY_CODECS)
    assert choose_codec(object(), x, every) == CODEC_ZSTD_SHUFFLE  # exact by default, even with all enabled
    assert choose_codec(object(), x, every, error_budget=1e-3) == CODEC_FP16
    assert choose_codec(object(), x, every, error_budget=0.01) == CODEC_INT8
    assert choose_codec(object(), x, {CODEC_RAW}, error_budget=0.01) == CODEC_RAW  # not enabled
    assert choose_codec(object(), np.array([1e6], np.float32), every, error_budget=1e-3) != CODEC_FP16
    assert choose_lossy_codec(0.0) is None and choose_lossy_codec(1e-5) is None
