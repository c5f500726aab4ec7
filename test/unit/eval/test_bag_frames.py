"""Streamed bag frames (eval/bag_frames.py): ROS 1 bags through rosbag and rosbags, ROS 2 bags through rosbags."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

pytest.importorskip("rosbag")
from intradp_ros.eval.bag_frames import BagFramesError, open_frames, ros1_type_name
from intradp_ros.eval.sample_data import IMAGE_TOPIC, write_image_bag


@pytest.fixture(scope="module")
def camera_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_bag(tmp_path_factory.mktemp("bags") / "cam.bag", frames=4, width=32, height=24, shift_px=2)


@pytest.mark.parametrize("reader", ["rosbag", "rosbags"])
def test_streams_in_order_and_cycles(camera_bag: Path, reader: str) -> None:
    with open_frames(str(camera_bag), None, reader) as src:
        assert src.topic == IMAGE_TOPIC and src.count == 4 and src.msgtype == "sensor_msgs/Image"
        frames = list(src.frames(10))
    seqs = [m.header.seq for m in frames]
    assert seqs == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert frames[1].data != frames[0].data and frames[4].data == frames[0].data
    assert frames[0].width == 32 and frames[0].encoding == "rgb8"


def test_frames_is_lazy(camera_bag: Path) -> None:
    """The source yields frame by frame: taking two frames must not read the rest of the topic."""
    with open_frames(str(camera_bag), None, "rosbag") as src:
        it = src.frames(4)
        assert inspect.isgenerator(it)
        first = next(it)
        assert first.header.seq == 0
        it.close()


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_ros2_bag_through_rosbags(tmp_path: Path, storage: str) -> None:
    """A ROS 2 bag (sqlite3 or MCAP storage) reads back as ROS 1 sensor_msgs/Image messages."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    Image = ts.types["sensor_msgs/msg/Image"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    import numpy as np

    out = tmp_path / "ros2bag"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(out, version=8, storage_plugin=plugin) as w:
        conn = w.add_connection("/cam", "sensor_msgs/msg/Image", typestore=ts)
        for i in range(3):
            msg = Image(Header(Time(sec=i, nanosec=5), "camera"), 2, 3, "rgb8", 0, 9, np.full(18, i, dtype=np.uint8))
            w.write(conn, i * 1000, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    with open_frames(str(out), "/cam") as src:  # auto: a folder goes to rosbags
        assert src.msgtype == "sensor_msgs/Image" and src.count == 3
        got = list(src.frames(4))
    assert [m.header.stamp.secs for m in got] == [0, 1, 2, 0]
    assert got[2].height == 2 and got[2].width == 3 and bytes(got[2].data) == bytes([2] * 18)
    assert type(got[0])._type == "sensor_msgs/Image"


def test_errors_name_the_cause(camera_bag: Path, tmp_path: Path) -> None:
    with pytest.raises(BagFramesError, match="no topic '/nope'"):
        open_frames(str(camera_bag), "/nope")
    with pytest.raises(BagFramesError, match="no recording"):
        open_frames(str(tmp_path / "missing.bag"))
    with pytest.raises(BagFramesError, match="reader must be"):
        open_frames(str(camera_bag), None, "bogus")


def test_ros1_type_name() -> None:
    assert ros1_type_name("sensor_msgs/msg/PointCloud2") == "sensor_msgs/PointCloud2"
    assert ros1_type_name("sensor_msgs/Image") == "sensor_msgs/Image"
