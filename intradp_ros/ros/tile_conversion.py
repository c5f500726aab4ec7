"""Tile <-> intradp_ros/TensorTile, field for field, through the ROS-free wire codec.

Every codec of the registry (intradp_ros.core.codecs) travels this way, camera passthrough included (its
decoder lives with the letterbox in intradp_ros.models.camera_input, imported here so receivers know it).
The payload goes into `uint8[] data` as `bytes` (genpy writes it in one piece; a list would cost >100 ms for
4 MB) and comes back as a zero-copy numpy view of the `bytes` rospy hands the callback.
"""

from __future__ import annotations

import time

import rospy

from intradp_ros.core.codec import TileValidator, WireTile, decode_tile, encode_tile
from intradp_ros.core.tile import Tile, TileError
from intradp_ros.models import camera_input  # noqa: F401 - registers the CODEC_CAMERA decoder (camera passthrough)
from intradp_ros.msg import TensorTile


def _now() -> rospy.Time:
    """ROS time when a node runs (it may be simulated), wall time otherwise (e.g. in tests and tools)."""
    if rospy.rostime.is_rostime_initialized():
        return rospy.Time.now()
    return rospy.Time.from_sec(time.time())


def tile_to_msg(tile: Tile, stamp: rospy.Time | None = None) -> TensorTile:
    """Build the TensorTile for `tile`, stamped with `stamp` (default: now). Raises TileError if unsendable."""
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
    return msg


def msg_to_tile(msg: TensorTile, validator: TileValidator | None = None) -> Tile:
    """Decode a received TensorTile; raises TileError naming the bad field (the caller logs and drops it).

    The tile's array is a read-only view of `msg.data` (no copy) for raw and sparse payloads (a new array for
    compressed codecs, never larger than the validator's limit). Messages built
    in-process with a list payload are accepted too (copied once), although senders should never do that.
    """
    data = msg.data
    if isinstance(data, (list, tuple)):
        try:
            data = bytes(data)
        except (TypeError, ValueError) as err:
            raise TileError("data", f"list payload is not uint8: {err}") from None
    wire = WireTile(
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
    tile = decode_tile(wire, validator)
    tile.meta["stamp"] = msg.header.stamp
    return tile
