"""Echo node helpers that need no master: test tiles pass validation, answers carry the server receive time."""

import pytest
from rosgraph.names import resolve_name

from intradp_ros.core.tile import TileError
from intradp_ros.msg import TensorTile
from intradp_ros.ros import echo_nodes
from intradp_ros.ros.tile_conversion import msg_to_tile, tile_to_msg


@pytest.mark.parametrize("nbytes,rows", [(1, 1), (1024, 1), (65536, 64), (65537, 65)])
def test_test_tiles_are_whole_rows_and_pass_the_echo_validator(nbytes, rows):
    tile = echo_nodes.make_tile(nbytes, 7, "robot1")
    assert tile.data.shape == (rows, echo_nodes.ROW_BYTES)
    back = msg_to_tile(tile_to_msg(tile), echo_nodes.make_validator())
    assert back.request_id == 7 and back.nbytes == rows * echo_nodes.ROW_BYTES


def test_the_echo_validator_drops_unknown_plans():
    msg = tile_to_msg(echo_nodes.make_tile(2048, 1, "robot1"))
    msg.plan_id = echo_nodes.PLAN_ID + 1
    with pytest.raises(TileError) as err:
        msg_to_tile(msg, echo_nodes.make_validator())
    assert err.value.field == "plan_id"


@pytest.mark.parametrize(
    "frame_id,expected",
    [("recv_ns=1700000000123456789", 1700000000123456789), ("recv_ns=abc", None), ("", None), ("map", None)],
)
def test_server_receive_time_is_read_from_frame_id(frame_id, expected):
    msg = TensorTile()
    msg.header.frame_id = frame_id
    assert echo_nodes._recv_ns_of(msg) == expected


def test_transfer_timeout_grows_with_size_and_never_divides_by_zero():
    assert echo_nodes.transfer_timeout(4 << 20, 90) < echo_nodes.transfer_timeout(16 << 20, 90)
    assert echo_nodes.transfer_timeout(1 << 20, 0) > 5


def test_topics_are_per_robot():
    # relative names: today's topics for nodes at the root
    assert resolve_name(echo_nodes.up_topic("r2"), "/tile_echo") == "/intradp/r2/up"
    assert resolve_name(echo_nodes.down_topic("r2"), "/tile_echo") == "/intradp/r2/down"
