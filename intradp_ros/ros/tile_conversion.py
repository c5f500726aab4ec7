"""Tile <-> intradp_ros/TensorTile, field for field, through the ROS-free wire codec.

Every codec of the registry (intradp_ros.core.codecs) travels this way, camera passthrough included (its
decoder lives with the letterbox in intradp_ros.models.camera_input, imported here so receivers know it).
The payload goes into `uint8[] data` as `bytes` (genpy writes it in one piece; a list would cost >100 ms for
4 MB) and comes back as a zero-copy numpy view of the `bytes` rospy hands the callback.

Authenticated links (docs/security.md): `tile_to_msg(..., auth=)` fills `mac` with the sender's keyed MAC over the
wire fields; `check_mac(msg, auth)` verifies it on receipt before anything else reads the message (`msg_to_tile`
with `auth` does it first too). The header stamp is not covered: it only feeds the statistics.
"""

from __future__ import annotations

import time

import rospy

from intradp_ros.core.auth import TileAuth
from intradp_ros.core.codec import TileValidator, WireTile, decode_tile, encode_tile
from intradp_ros.core.tile import Tile, TileError
from intradp_ros.models import camera_input  # noqa: F401 - registers the CODEC_CAMERA decoder (camera passthrough)
from intradp_ros.msg import TensorTile


def _now() -> rospy.Time:
    """ROS time when a node runs (it may be simulated), wall time otherwise (e.g. in tests and tools)."""
    if rospy.rostime.is_rostime_initialized():
        return rospy.Time.now()
    return rospy.Time.from_sec(time.time())


def tile_to_msg(tile: Tile, stamp: rospy.Time | None = None, auth: TileAuth | None = None) -> TensorTile:
    """Build the TensorTile for `tile`, stamped with `stamp` (default: now), MACed by `auth` when given.
    Raises TileError if unsendable, AuthError when `auth` holds no session key."""
    wire = encode_tile(tile)
    msg = TensorTile()
    msg.header.stamp = stamp if stamp is not None else _now()
    msg.robot = wire.robot
    msg.request_id = wire.request_id
    msg.plan_id = wire.plan_id
    msg.node_id = wire.node_id
    msg.axis = wire.axis
    msg.row_start = wire.row_start
    msg.row_stop = wire.row_stop
    msg.dtype = wire.dtype
    msg.shape = list(wire.shape)
    msg.codec = wire.codec
    msg.flags = wire.flags
    msg.data = bytes(wire.data) if not isinstance(wire.data, bytes) else wire.data
    if auth is not None:
        msg.seq, msg.mac = auth.sign(wire_of(msg))
    return msg


def wire_of(msg: TensorTile) -> WireTile:
    """The wire fields of a TensorTile, as the codec and the MAC see them (a list payload is copied to bytes)."""
    data = msg.data
    if isinstance(data, (list, tuple)):
        try:
            data = bytes(data)
        except (TypeError, ValueError) as err:
            raise TileError("data", f"list payload is not uint8: {err}") from None
    return WireTile(
        request_id=msg.request_id,
        plan_id=msg.plan_id,
        node_id=msg.node_id,
        axis=msg.axis,
        row_start=msg.row_start,
        row_stop=msg.row_stop,
        dtype=msg.dtype,
        shape=tuple(msg.shape),
        codec=msg.codec,
        flags=msg.flags,
        data=data,
        robot=msg.robot,
    )


def check_mac(msg: TensorTile, auth: TileAuth) -> None:
    """Raise AuthError (counted by `auth`) unless the message's MAC verifies under this direction's session key.

    Runs before any field of the message is validated or decoded, so a forged tile costs one keyed hash."""
    mac = msg.mac
    try:
        wire = wire_of(msg)
    except TileError as e:
        wire = WireTile(0, 0, 0, 0, 0, 0, "", (), 0, 0, b"", f"<unreadable: {e.reason}>")
    auth.check(wire, int(msg.seq), bytes(mac) if not isinstance(mac, bytes) else mac)


def msg_to_tile(msg: TensorTile, validator: TileValidator | None = None, auth: TileAuth | None = None) -> Tile:
    """Decode a received TensorTile; raises TileError naming the bad field (the caller logs and drops it), and
    with `auth`, first AuthError when its MAC does not verify.

    The tile's array is a read-only view of `msg.data` (no copy) for raw and sparse payloads (a new array for
    compressed codecs, never larger than the validator's limit). Messages built
    in-process with a list payload are accepted too (copied once), although senders should never do that.
    """
    if auth is not None:
        check_mac(msg, auth)
    tile = decode_tile(wire_of(msg), validator)
    tile.meta["stamp"] = msg.header.stamp
    return tile
