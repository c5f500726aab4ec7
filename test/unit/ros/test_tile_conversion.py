"""Tile <-> TensorTile: every dtype through genpy serialize/deserialize, bytes payloads, zero-copy receipt."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("rospy")
import rospy

from intradp_ros.core.codec import TileValidator
from intradp_ros.core.tile import CODEC_BITPACK, CODEC_RAW, CODEC_SPARSE, FLAG_LAST, Tile, TileError
from intradp_ros.msg import TensorTile
from intradp_ros.ros.tile_conversion import msg_to_tile, tile_to_msg

ALL_DTYPES = ["float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"]


def _sample(dtype: str, shape: tuple) -> np.ndarray:
    rng = np.random.default_rng(1)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _through_the_wire(msg: TensorTile) -> TensorTile:
    buf = io.BytesIO()
    msg.serialize(buf)
    return TensorTile().deserialize(buf.getvalue())


CASES = [
    (dtype, shape, axis, codec)
    for dtype in ALL_DTYPES
    for shape, axis, codec in [((5,), 0, CODEC_RAW), ((1, 3, 4, 2), 2, CODEC_RAW), ((6, 3), 0, CODEC_SPARSE)]
]
CASES += [(dtype, (3, 5), 0, CODEC_BITPACK) for dtype in ("bool", "uint8")]  # bitpack carries 0/1 tensors only


@pytest.mark.parametrize("dtype,shape,axis,codec", CASES)
def test_round_trip_through_genpy(dtype: str, shape: tuple, axis: int, codec: int) -> None:
    data = _sample("bool", shape).astype(dtype) if codec == CODEC_BITPACK else _sample(dtype, shape)
    row_start = 3
    row_stop = row_start + (shape[axis] if codec != CODEC_SPARSE else 20)
    index = np.arange(row_start, row_start + shape[0], dtype=np.int64) if codec == CODEC_SPARSE else None
    tile = Tile(
        request_id=2**40 + 5,
        plan_id=11,
        node_id=4,
        axis=axis,
        row_start=row_start,
        row_stop=row_stop,
        data=data,
        codec=codec,
        flags=FLAG_LAST,
        robot="robot_7",
        index=index,
    )
    stamp = rospy.Time(12, 345)
    msg = tile_to_msg(tile, stamp=stamp)
    assert isinstance(msg.data, bytes)
    assert msg.header.stamp == stamp
    full = list(shape)
    full[axis] = 40
    validator = TileValidator(known_plan_ids=[11], node_shapes={4: tuple(full)}, max_bytes=1 << 20)
    back = msg_to_tile(_through_the_wire(msg), validator)
    for f in ("request_id", "plan_id", "node_id", "axis", "row_start", "row_stop", "codec", "flags", "robot"):
        assert getattr(back, f) == getattr(tile, f), f
    assert back.data.dtype == data.dtype and back.data.shape == data.shape
    np.testing.assert_array_equal(back.data, data)
    if index is not None:
        np.testing.assert_array_equal(back.index, index)
    assert back.meta["stamp"] == stamp


def test_receipt_is_zero_copy_from_the_bytes() -> None:
    msg = _through_the_wire(
        tile_to_msg(
            Tile(
                request_id=1,
                plan_id=0,
                node_id=0,
                axis=1,
                row_start=0,
                row_stop=64,
                data=_sample("float32", (3, 64, 64)),
            )
        )
    )
    assert isinstance(msg.data, bytes)
    tile = msg_to_tile(msg)
    assert np.shares_memory(tile.data, np.frombuffer(msg.data, dtype=np.uint8))
    owner = tile.data
    while isinstance(owner, np.ndarray):
        owner = owner.base
    assert owner is msg.data


def test_default_stamp_without_a_node_is_wall_time() -> None:
    msg = tile_to_msg(
        Tile(request_id=1, plan_id=0, node_id=0, axis=0, row_start=0, row_stop=1, data=np.zeros(1, dtype=np.uint8))
    )
    assert msg.header.stamp.to_sec() > 1.6e9


def test_big_endian_tile_arrives_little_endian() -> None:
    data = np.arange(12, dtype=">i4").reshape(3, 4)
    back = msg_to_tile(
        _through_the_wire(
            tile_to_msg(Tile(request_id=1, plan_id=0, node_id=0, axis=0, row_start=0, row_stop=3, data=data))
        )
    )
    np.testing.assert_array_equal(back.data, data)
    assert back.data.dtype.byteorder in "=<"


def _good_msg() -> TensorTile:
    tile = Tile(request_id=1, plan_id=3, node_id=5, axis=1, row_start=2, row_stop=4, data=_sample("float32", (1, 2, 6)))
    return _through_the_wire(tile_to_msg(tile))


VALIDATOR = TileValidator(known_plan_ids=[3], node_shapes={5: (1, 8, 6)}, max_bytes=1 << 16)


@pytest.mark.parametrize(
    "field_name,value",
    [
        ("dtype", "float128"),
        ("plan_id", 4),
        ("node_id", 6),
        ("axis", 3),
        ("row_stop", 9),
        ("shape", [1, 6, 2]),
        ("data", b"\x00" * 7),
        ("flags", 64),
        ("codec", 200),
        ("row_start", 4),
    ],
)
def test_malformed_message_field_is_named(field_name: str, value: object) -> None:
    msg = _good_msg()
    setattr(msg, field_name, value)
    with pytest.raises(TileError) as err:
        msg_to_tile(msg, VALIDATOR)
    assert err.value.field == field_name


def test_list_payload_is_accepted_but_a_bad_list_is_named() -> None:
    msg = _good_msg()
    expected = msg_to_tile(msg, VALIDATOR).data.copy()
    msg.data = list(msg.data)
    np.testing.assert_array_equal(msg_to_tile(msg, VALIDATOR).data, expected)
    msg.data = [300] * len(msg.data)
    with pytest.raises(TileError) as err:
        msg_to_tile(msg, VALIDATOR)
    assert err.value.field == "data"


def test_unsendable_tile_is_refused_before_serialising() -> None:
    with pytest.raises(TileError) as err:
        tile_to_msg(
            Tile(
                request_id=1,
                plan_id=0,
                node_id=2**33,
                axis=0,
                row_start=0,
                row_stop=1,
                data=np.zeros(1, dtype=np.uint8),
            )
        )
    assert err.value.field == "node_id"


@pytest.mark.parametrize("field_name", ["request_id", "node_id", "row_start", "flags", "robot", "data", "seq", "mac"])
def test_a_macd_tile_changed_in_any_field_after_signing_is_refused_before_decoding(field_name: str) -> None:
    from intradp_ros.core.auth import AuthError, TileAuth

    key = b"q" * 32
    tile = Tile(9, 1, 0, 2, 0, 4, np.ones((1, 2, 4, 3), np.float32), robot="robot1")
    msg = _through_the_wire(tile_to_msg(tile, auth=TileAuth("server", key)))
    receiver = TileAuth("robot", key)
    assert msg_to_tile(msg, auth=receiver).request_id == 9
    changed = {"robot": "robot2", "data": bytes(len(msg.data)), "mac": bytes(16)}
    setattr(msg, field_name, changed[field_name] if field_name in changed else getattr(msg, field_name) + 1)
    with pytest.raises(AuthError):
        msg_to_tile(msg, auth=receiver)
    assert receiver.rejected == 1
