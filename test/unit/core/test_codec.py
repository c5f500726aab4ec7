"""Wire codec: round trips for every dtype/codec, byte layout, zero-copy decode, one rejection per bad field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intradp_ros.core.codec import WIRE_DTYPES, TileValidator, WireTile, decode_tile, encode_tile, payload_size
from intradp_ros.core.tile import (
    CODEC_BITPACK,
    CODEC_RAW,
    CODEC_SPARSE,
    FLAG_ABORT,
    FLAG_LAST,
    FLAG_START,
    Tile,
    TileError,
)

ALL_DTYPES = ["float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"]


def _sample(dtype: str, shape: tuple, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _tile(data: np.ndarray, axis: int = 0, row_start: int = 0, codec: int = CODEC_RAW, flags: int = 0, **kw) -> Tile:
    fields = dict(
        request_id=7,
        plan_id=3,
        node_id=5,
        axis=axis,
        row_start=row_start,
        row_stop=row_start + (data.shape[axis] if data.ndim else 1),
        data=data,
        codec=codec,
        flags=flags,
        robot="r1",
    )
    fields.update(kw)
    return Tile(**fields)


def _assert_same_tile(a: Tile, b: Tile) -> None:
    for f in ("request_id", "plan_id", "node_id", "axis", "row_start", "row_stop", "codec", "flags", "robot"):
        assert getattr(a, f) == getattr(b, f), f
    assert b.data.dtype == a.data.dtype and b.data.dtype.byteorder in "=|<"
    assert b.data.shape == a.data.shape
    np.testing.assert_array_equal(b.data, a.data)


def test_bfloat16_is_not_offered() -> None:
    # numpy cannot represent bfloat16 natively, so it is left out (see the module docstring)
    assert set(WIRE_DTYPES) == set(ALL_DTYPES)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,axis", [((4,), 0), ((2, 3), 1), ((1, 3, 5, 4), 2), ((1, 2, 0, 3), 1)])
def test_raw_round_trip_every_dtype(dtype: str, shape: tuple, axis: int) -> None:
    tile = _tile(_sample(dtype, shape), axis=axis, row_start=2)
    wire = encode_tile(tile)
    assert isinstance(wire.data, bytes)
    assert wire.dtype == dtype and wire.shape == shape
    assert len(wire.data) == payload_size(dtype, shape, CODEC_RAW)
    _assert_same_tile(tile, decode_tile(wire))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int16", "int32", "int64", "float16"])
def test_big_endian_input_is_sent_little_endian(dtype: str) -> None:
    native = _sample(dtype, (3, 4))
    big = native.astype(np.dtype(dtype).newbyteorder(">"))
    wire = encode_tile(_tile(big))
    assert wire.data == native.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    np.testing.assert_array_equal(decode_tile(wire).data, native)


def test_strided_input_is_sent_c_contiguous() -> None:
    base = np.arange(48, dtype=np.int32).reshape(4, 12)
    view = base[:, ::3].T  # (4, 4), neither C- nor F-contiguous
    wire = encode_tile(_tile(view, axis=1))
    assert wire.data == np.ascontiguousarray(view).astype("<i4").tobytes()
    np.testing.assert_array_equal(decode_tile(wire).data, view)


def test_raw_decode_is_zero_copy() -> None:
    wire = encode_tile(_tile(_sample("float32", (2, 8, 5)), axis=1))
    tile = decode_tile(wire)
    assert np.shares_memory(tile.data, np.frombuffer(wire.data, dtype=np.uint8))
    assert not tile.data.flags.writeable


@pytest.mark.parametrize("dtype", ["bool", "uint8"])
@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 7, 3), (9, 8)])
def test_bitpack_round_trip(dtype: str, shape: tuple) -> None:
    data = _sample("bool", shape).astype(dtype)
    wire = encode_tile(_tile(data, codec=CODEC_BITPACK))
    assert len(wire.data) == (data.size + 7) // 8
    assert wire.data == np.packbits(data.reshape(-1), bitorder="big").tobytes()  # MSB first
    _assert_same_tile(_tile(data, codec=CODEC_BITPACK), decode_tile(wire))


def test_bitpack_msb_first_layout() -> None:
    data = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1], dtype=np.uint8)
    assert encode_tile(_tile(data, codec=CODEC_BITPACK)).data == bytes([0b10000001, 0b10000000])


def test_bitpack_refuses_non_binary_values() -> None:
    with pytest.raises(TileError) as err:
        encode_tile(_tile(np.array([0, 2, 1], dtype=np.uint8), codec=CODEC_BITPACK))
    assert err.value.field == "data"
    with pytest.raises(TileError) as err:
        encode_tile(_tile(np.array([0.0, 1.0], dtype=np.float32), codec=CODEC_BITPACK))
    assert err.value.field == "dtype"


def test_sparse_round_trip_keeps_survivor_shape_and_positions() -> None:
    survivors = _sample("float32", (3, 57))  # 3 survivors of rows [10, 40) of a (100,) mask with 57 features
    index = np.array([12, 17, 39], dtype=np.int64)
    tile = Tile(
        request_id=1,
        plan_id=2,
        node_id=5,
        axis=0,
        row_start=10,
        row_stop=40,
        data=survivors,
        codec=CODEC_SPARSE,
        index=index,
    )
    wire = encode_tile(tile)
    assert wire.data == index.tobytes() + survivors.tobytes() and wire.shape == (3, 57)
    validator = TileValidator(known_plan_ids=[2], node_shapes={5: (100, 57)}, max_bytes=1 << 20)
    back = decode_tile(wire, validator)
    _assert_same_tile(tile, back)
    np.testing.assert_array_equal(back.index, index)
    assert back.nbytes == tile.nbytes == 3 * 8 + survivors.nbytes


def test_sparse_tile_needs_one_position_per_entry() -> None:
    for index in (None, np.array([1, 2], dtype=np.int64)):
        with pytest.raises(TileError) as err:
            encode_tile(
                Tile(
                    request_id=1,
                    plan_id=2,
                    node_id=5,
                    axis=0,
                    row_start=0,
                    row_stop=4,
                    data=_sample("float32", (3, 2)),
                    codec=CODEC_SPARSE,
                    index=index,
                )
            )
        assert err.value.field == "data"


def test_unsupported_dtype_cannot_be_encoded() -> None:
    with pytest.raises(TileError) as err:
        encode_tile(_tile(np.zeros(3, dtype=np.complex64)))
    assert err.value.field == "dtype"


def test_field_outside_wire_width_cannot_be_encoded() -> None:
    with pytest.raises(TileError) as err:
        encode_tile(_tile(np.zeros(3, dtype=np.uint8), plan_id=2**32))
    assert err.value.field == "plan_id"


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(ALL_DTYPES), shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_round_trip_random_shapes(dtype: str, shape: list, data: st.DataObject) -> None:
    axis = data.draw(st.integers(0, len(shape) - 1))
    start = data.draw(st.integers(0, 10))
    arr = _sample(dtype, tuple(shape), seed=len(shape))
    full = list(shape)
    full[axis] = start + shape[axis] + data.draw(st.integers(0, 3))
    tile = _tile(arr, axis=axis, row_start=start)
    validator = TileValidator(known_plan_ids=[3], node_shapes={5: tuple(full)}, max_bytes=1 << 20)
    _assert_same_tile(tile, decode_tile(encode_tile(tile), validator))


# --- validation: one malformed field at a time -----------------------------------------------------------

FULL = (1, 4, 10, 6)  # node 5's full output shape; tiles split axis 2


def _good_wire(**changes) -> WireTile:
    data = _sample("float32", (1, 4, 3, 6))
    wire = encode_tile(Tile(request_id=1, plan_id=3, node_id=5, axis=2, row_start=4, row_stop=7, data=data))
    return dataclasses.replace(wire, **changes)


@pytest.fixture
def validator() -> TileValidator:
    return TileValidator(known_plan_ids={3, 4}, node_shapes={5: FULL, 6: (2, 2)}, max_bytes=4096)


def test_good_tile_passes(validator: TileValidator) -> None:
    tile = decode_tile(_good_wire(), validator)
    assert tile.data.shape == (1, 4, 3, 6)


BAD_FIELDS = [
    ("dtype", dict(dtype="complex64")),
    ("dtype", dict(dtype="bfloat16")),
    ("data", dict(data=bytes(1 * 4 * 3 * 6 * 4 - 1))),  # one byte short
    ("data", dict(data=bytes(1 * 4 * 3 * 6 * 4 + 4))),  # one element too many
    ("data", dict(data=[0] * 288)),  # not bytes-like
    ("shape", dict(shape=(1, 4, 3, 6, 1))),  # rank differs from the node's
    ("shape", dict(shape=(1, 5, 3, 6), data=bytes(1 * 5 * 3 * 6 * 4))),  # non-split extent differs
    ("shape", dict(shape=(1, 4, 2, 6), data=bytes(1 * 4 * 2 * 6 * 4))),  # rows != row_stop - row_start
    ("axis", dict(axis=4)),
    ("row_start", dict(row_start=-1)),
    ("row_start", dict(row_start=7)),  # empty range
    ("row_stop", dict(row_start=8, row_stop=11)),  # beyond the node's extent 10
    ("node_id", dict(node_id=99)),
    ("plan_id", dict(plan_id=17)),
    ("flags", dict(flags=8)),
    ("codec", dict(codec=200)),
]


@pytest.mark.parametrize("field_name,changes", BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_FIELDS)])
def test_malformed_field_is_named(validator: TileValidator, field_name: str, changes: dict) -> None:
    with pytest.raises(TileError) as err:
        decode_tile(_good_wire(**changes), validator)
    assert err.value.field == field_name
    assert field_name in str(err.value)


def test_payload_over_limit_is_refused() -> None:
    small = TileValidator(known_plan_ids=None, node_shapes=None, max_bytes=100)
    with pytest.raises(TileError) as err:
        small.check(_good_wire())
    assert err.value.field == "data" and "limit" in err.value.reason


def test_bitpack_with_wrong_packed_size_is_refused(validator: TileValidator) -> None:
    wire = encode_tile(
        Tile(
            request_id=1,
            plan_id=3,
            node_id=6,
            axis=0,
            row_start=0,
            row_stop=2,
            data=np.ones((2, 2), dtype=bool),
            codec=CODEC_BITPACK,
        )
    )
    decode_tile(wire, validator)
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, data=b"\xff\x00"), validator)
    assert err.value.field == "data"
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, dtype="float32"), validator)
    assert err.value.field == "dtype"


def test_sparse_survivor_count_is_not_checked_against_range(validator: TileValidator) -> None:
    # node 5 is FULL = (1, 4, 10, 6); sparse entries are [n, *trailing dims of the node]
    sparse = _good_wire(codec=CODEC_SPARSE, shape=(2, 6), data=bytes(2 * 8 + 2 * 6 * 4))
    back = decode_tile(sparse, validator)
    assert back.data.shape == (2, 6) and back.index.shape == (2,)
    with pytest.raises(TileError) as err:  # features must be the node's trailing extents
        decode_tile(dataclasses.replace(sparse, shape=(2, 5), data=bytes(2 * 8 + 2 * 5 * 4)), validator)
    assert err.value.field == "shape"
    with pytest.raises(TileError) as err:  # positions count in the payload size
        decode_tile(dataclasses.replace(sparse, data=bytes(2 * 6 * 4)), validator)
    assert err.value.field == "data"


def test_abort_tile_carries_no_payload(validator: TileValidator) -> None:
    abort = WireTile(
        request_id=9,
        plan_id=3,
        node_id=5,
        axis=0,
        row_start=0,
        row_stop=0,
        dtype="uint8",
        shape=(0,),
        codec=CODEC_RAW,
        flags=FLAG_ABORT | FLAG_LAST,
        data=b"",
    )
    assert decode_tile(abort, validator).data.size == 0
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(abort, shape=(1,), data=b"\x00"), validator)
    assert err.value.field == "data"


def test_start_tile_carries_no_payload(validator: TileValidator) -> None:
    start = WireTile(
        request_id=9,
        plan_id=3,
        node_id=5,
        axis=0,
        row_start=0,
        row_stop=0,
        dtype="uint8",
        shape=(0,),
        codec=CODEC_RAW,
        flags=FLAG_START,
        data=b"",
    )
    assert decode_tile(start, validator).data.size == 0
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(start, shape=(1,), data=b"\x00"), validator)
    assert err.value.field == "data"


def test_without_node_shapes_only_self_consistency_is_checked() -> None:
    loose = TileValidator(known_plan_ids=None, node_shapes=None, max_bytes=1 << 20)
    decode_tile(_good_wire(node_id=1234, plan_id=999), loose)
    with pytest.raises(TileError) as err:
        decode_tile(_good_wire(row_stop=9), loose)
    assert err.value.field == "shape"


def test_the_tile_size_limit_follows_the_largest_node_of_the_graph() -> None:
    from types import SimpleNamespace

    import torch

    from intradp_ros.core.codec import CAMERA_FLOOR, SIZE_SLACK, UNKNOWN_GRAPH_LIMIT, graph_tile_limit

    def node(shape, sparse_rank=0):
        n = 1
        for d in shape:
            n *= d
        return SimpleNamespace(shape=shape, nbytes=n * 4, sparse_rank=sparse_rank, dtype=torch.float32)

    small = SimpleNamespace(nodes=[node((1, 3, 8, 8))])
    assert graph_tile_limit(small) == CAMERA_FLOOR  # tiny graphs keep room for camera passthrough
    big = SimpleNamespace(nodes=[node((1, 3, 8, 8)), node((1, 64, 256, 256))])
    assert graph_tile_limit(big) == int(64 * 256 * 256 * 4 * 1.25) + SIZE_SLACK
    sparse = SimpleNamespace(nodes=[node((1, 1024, 1024, 4), sparse_rank=3)])  # every position survives
    assert graph_tile_limit(sparse) == int((1024 * 1024 * 4 * 4 + 1024 * 1024 * 8) * 1.25) + SIZE_SLACK
    assert graph_tile_limit(None) == UNKNOWN_GRAPH_LIMIT
