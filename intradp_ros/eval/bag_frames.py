"""Frames of one topic of a recording, streamed: the evaluation driver never holds a whole topic in memory.

Field camera bags are gigabytes; the driver needs one frame at a time. `open_frames(path, topic)` returns a
`FrameSource` that reads messages lazily, in recording order, and starts over at the end when more frames are
wanted than the topic holds (a short sample bag can feed a long run).

Readers:
- `rosbag` (ROS 1 .bag files, the default for them): messages come as the rospy classes of the running ROS.
- `rosbags` (the pure-Python library): ROS 1 bags, ROS 2 bag folders (sqlite3 or MCAP storage) and single .mcap
  files. Messages are converted to the rospy class of the same type (ROS 2 `sensor_msgs/msg/Image` becomes ROS 1
  `sensor_msgs/Image`) through the ROS 1 wire format, so the driver publishes them like any other.

`reader="auto"` picks rosbag for a .bag file and rosbags for everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class BagFramesError(ValueError):
    """A recording that cannot feed frames (no such topic, no messages, no header to stamp, unknown type)."""


class FrameSource:
    """A topic of a recording: `count` messages, streamed by `frames(n)` (cycling), one open reader at a time."""

    def __init__(
        self, path: str, topic: str, msgtype: str, count: int, iterate: Callable[[], Iterator[Any]], closer: Any
    ) -> None:
        self.path = path
        self.topic = topic
        self.msgtype = msgtype  # ROS 1 spelling, e.g. sensor_msgs/Image
        self.count = count
        self._iterate = iterate
        self._closer = closer

    def frames(self, n: int | None = None) -> Iterator[Any]:
        """`n` messages (default: the topic once), starting over at the end of the topic as often as needed."""
        want = self.count if n is None else int(n)
        given = 0
        while given < want:
            yielded = 0
            for msg in self._iterate():
                if given >= want:
                    return
                yield msg
                given += 1
                yielded += 1
            if yielded == 0:
                raise BagFramesError(f"{self.path}: topic {self.topic} yielded no messages")

    def first(self) -> Any:
        """The first message (to learn the type and check the header) without reading further."""
        for msg in self._iterate():
            return msg
        raise BagFramesError(f"{self.path}: topic {self.topic} holds no messages")

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def ros1_type_name(msgtype: str) -> str:
    """'sensor_msgs/msg/Image' (rosbags, ROS 2) -> 'sensor_msgs/Image' (ROS 1); ROS 1 names are kept."""
    parts = msgtype.split("/")
    if len(parts) == 3 and parts[1] == "msg":
        return f"{parts[0]}/{parts[2]}"
    return msgtype


def _pick_topic(path: str, topics: list[str], topic: str | None) -> str:
    if not topics:
        raise BagFramesError(f"recording {path} holds no topics")
    if topic is None:
        return sorted(topics)[0]
    if topic not in topics:
        raise BagFramesError(f"recording {path} has no topic {topic!r} (it has {sorted(topics)})")
    return topic


def _open_rosbag(path: str, topic: str | None) -> FrameSource:
    import rosbag

    bag = rosbag.Bag(path)
    try:
        info = bag.get_type_and_topic_info().topics
        topic = _pick_topic(path, list(info), topic)
        count = int(info[topic].message_count)
        msgtype = str(info[topic].msg_type)
    except Exception:
        bag.close()
        raise

    def iterate() -> Iterator[Any]:
        for _t, msg, _stamp in bag.read_messages(topics=[topic]):
            yield msg

    return FrameSource(path, topic, msgtype, count, iterate, bag.close)


def _open_rosbags(path: str, topic: str | None) -> FrameSource:
    from rosbags.highlevel import AnyReader

    reader = AnyReader([Path(path)])
    reader.open()
    try:
        topics = sorted({c.topic for c in reader.connections})
        topic = _pick_topic(path, topics, topic)
        conns = [c for c in reader.connections if c.topic == topic]
        count = sum(int(c.msgcount) for c in conns)
        msgtype = ros1_type_name(conns[0].msgtype)
        cls = _rospy_class(msgtype)
        is_ros1 = reader.is2 is False
    except Exception:
        reader.close()
        raise

    def iterate() -> Iterator[Any]:
        for conn, _stamp, raw in reader.messages(connections=conns):
            if is_ros1:  # ROS 1 bytes already: the rospy class reads them directly
                data = bytes(raw)
            else:  # CDR -> ROS 1 bytes (the ROS 1 header gains its seq field)
                data = bytes(reader.typestore.cdr_to_ros1(raw, conn.msgtype))
            yield cls().deserialize(data)

    return FrameSource(path, topic, msgtype, count, iterate, reader.close)


def _rospy_class(msgtype: str) -> Any:
    from roslib.message import get_message_class

    cls = get_message_class(msgtype)
    if cls is None:
        raise BagFramesError(f"message type {msgtype} is not known to this ROS (is its package built?)")
    return cls


def open_frames(path: str, topic: str | None = None, reader: str = "auto") -> FrameSource:
    """A streamed FrameSource of `topic` (default: the recording's first topic, sorted) of `path`.

    `reader`: "rosbag" (ROS 1 bags), "rosbags" (ROS 1/ROS 2 bags and MCAP) or "auto" (rosbag for a .bag file,
    rosbags otherwise). Raises BagFramesError when the topic has no messages or its messages have no header."""
    if reader not in ("auto", "rosbag", "rosbags"):
        raise BagFramesError(f"reader must be auto, rosbag or rosbags, not {reader!r}")
    p = Path(path)
    if not p.exists():
        raise BagFramesError(f"no recording at {path}")
    use = reader if reader != "auto" else ("rosbag" if p.is_file() and p.suffix == ".bag" else "rosbags")
    source = _open_rosbag(str(p), topic) if use == "rosbag" else _open_rosbags(str(p), topic)
    if source.count <= 0:
        source.close()
        raise BagFramesError(f"recording {path}: topic {source.topic} holds no messages")
    try:
        first = source.first()
    except Exception:
        source.close()
        raise
    if not hasattr(first, "header"):
        source.close()
        raise BagFramesError(f"{source.topic} messages ({source.msgtype}) have no header to stamp")
    return source


def frame_type(source: FrameSource) -> tuple[str, Any]:
    """(ROS 1 type name, rospy class) of a source's messages."""
    return source.msgtype, type(source.first())
