"""Tile echo nodes: measure what TensorTile transport achieves between the robot and the server masters.

`run_echo_server` (server side) subscribes to /intradp/<robot>/up and answers every valid tile on
/intradp/<robot>/down: mode "echo" sends the tile back, mode "ack" sends a 1-byte tile (for one-way
throughput runs that must not load the return path). The answer's header.frame_id carries the server's
receive time ("recv_ns=<ns since epoch>"); header.stamp is its send time.

`run_tile_sender` (robot side) publishes tiles of given sizes and writes one JSON object per line on
stdout, so the demo and the benchmark can print and aggregate them:
  {"kind": "tile", ...}    one ping-pong: bytes, up_s (one-way robot->server), down_s, rtt_s
  {"kind": "stream", ...}  back-to-back tiles of one size: count, bytes, goodput_mbit (first send -> last receipt)
  {"kind": "error", ...}   {"kind": "done"}
Robot and server namespaces share one kernel clock, so stamp-to-receipt differences are true one-way times.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np
import rospy

from intradp_ros.core.codec import TileValidator
from intradp_ros.core.log_throttle import LogThrottle
from intradp_ros.core.tile import Tile, TileError
from intradp_ros.msg import TensorTile
from intradp_ros.ros.names import RobotNames
from intradp_ros.ros.tile_conversion import msg_to_tile, tile_to_msg

ROW_BYTES = 1024  # echo tiles are uint8 (rows, 1024)
PLAN_ID = 1  # the only plan id the echo nodes accept
MAX_TILE_BYTES = 64 << 20
RECV_BUFF = 1 << 20  # rospy's recv() size: 1 MiB takes what a fast link delivers without huge allocations
RECV_FIELD = "recv_ns="
MAX_STREAM_TILES = 200  # tiles per stream run (bounds the sender's queue and the run's length)

_DROPS = LogThrottle(10.0)  # per-tile drop lines: the first at once, then one per 10 s with the count


def up_topic(robot: str) -> str:
    return RobotNames(robot).up


def down_topic(robot: str) -> str:
    return RobotNames(robot).down


def make_validator() -> TileValidator:
    """What an echo node accepts: plan PLAN_ID, any node, payloads up to MAX_TILE_BYTES."""
    return TileValidator(known_plan_ids=[PLAN_ID], node_shapes=None, max_bytes=MAX_TILE_BYTES)


def make_tile(nbytes: int, request_id: int, robot: str) -> Tile:
    """A uint8 (rows, ROW_BYTES) tile of `nbytes` (rounded up to whole rows)."""
    rows = max(1, math.ceil(nbytes / ROW_BYTES))
    data = np.full((rows, ROW_BYTES), 0x5A, dtype=np.uint8)
    return Tile(
        request_id=request_id, plan_id=PLAN_ID, node_id=0, axis=0, row_start=0, row_stop=rows, data=data, robot=robot
    )


def _recv_ns_of(msg: TensorTile) -> int | None:
    text = msg.header.frame_id
    if not text.startswith(RECV_FIELD):
        return None
    try:
        return int(text[len(RECV_FIELD) :])
    except ValueError:
        return None


# ---- server ------------------------------------------------------------------------------------------
class EchoServer:
    """Answers every valid tile on the down topic (see module docstring); invalid tiles are logged and dropped."""

    def __init__(self, robot: str, mode: str) -> None:
        if mode not in ("echo", "ack"):
            raise ValueError(f"mode must be 'echo' or 'ack', got {mode!r}")
        self.mode = mode
        self.robot = robot
        self.validator = make_validator()
        self.received = 0
        self.dropped = 0
        self.pub = rospy.Publisher(down_topic(robot), TensorTile, queue_size=8, tcp_nodelay=True)
        self.sub = rospy.Subscriber(
            up_topic(robot), TensorTile, self._on_tile, queue_size=8, buff_size=RECV_BUFF, tcp_nodelay=True
        )

    def _on_tile(self, msg: TensorTile) -> None:
        recv_ns = time.time_ns()
        try:
            tile = msg_to_tile(msg, self.validator)
        except TileError as err:
            self.dropped += 1
            sender = getattr(msg, "_connection_header", {}).get("callerid", "?")
            if n := _DROPS.hit(f"echo {err.field}"):
                rospy.logerr("tile_echo_server: dropped tile from %s (%d such): %s", str(sender)[:200], n, err)
            return
        self.received += 1
        if self.mode == "echo":
            out = msg  # same bytes back, no re-encoding
        else:
            out = tile_to_msg(
                Tile(
                    request_id=tile.request_id,
                    plan_id=tile.plan_id,
                    node_id=tile.node_id,
                    axis=0,
                    row_start=0,
                    row_stop=1,
                    data=np.zeros((1, 1), np.uint8),
                    robot=tile.robot,
                )
            )
        out.header.frame_id = f"{RECV_FIELD}{recv_ns}"
        out.header.stamp = rospy.Time.from_sec(time.time())
        self.pub.publish(out)


def run_echo_server(robot: str = "robot1", mode: str = "echo") -> int:
    """Node main: echo tiles until shut down."""
    rospy.init_node("tile_echo_server")
    server = EchoServer(robot, mode)
    rospy.loginfo("tile_echo_server: %s mode on %s -> %s", mode, up_topic(robot), down_topic(robot))
    rospy.spin()
    rospy.loginfo("tile_echo_server: %d tiles answered, %d dropped", server.received, server.dropped)
    return 0


# ---- sender --------------------------------------------------------------------------------------------
class TileSender:
    """Publishes tiles on the up topic and collects the answers from the down topic."""

    def __init__(self, robot: str, queue_size: int) -> None:
        self.robot = robot
        self.validator = make_validator()
        self._answers: dict[int, tuple] = {}
        self._templates: dict[int, TensorTile] = {}
        self._cond = threading.Condition()
        # publish() serialises in the caller's thread and hands the bytes to a per-connection writer thread, so
        # the next tile is serialised while the previous one is on the wire. A stream sizes the queue to hold
        # all its tiles: rospy drops the oldest message of a full queue, which must not happen here.
        self.pub = rospy.Publisher(up_topic(robot), TensorTile, queue_size=queue_size, tcp_nodelay=True)
        self.sub = rospy.Subscriber(
            down_topic(robot), TensorTile, self._on_answer, queue_size=64, buff_size=RECV_BUFF, tcp_nodelay=True
        )

    def _on_answer(self, msg: TensorTile) -> None:
        recv_ns = time.time_ns()
        try:
            tile = msg_to_tile(msg, self.validator)
        except TileError as err:
            if n := _DROPS.hit(f"answer {err.field}"):
                rospy.logerr("tile_sender: dropped answer (%d such): %s", n, err)
            return
        server_ns = _recv_ns_of(msg)
        if server_ns is None:
            if n := _DROPS.hit("answer without time"):
                rospy.logerr(
                    "tile_sender: dropped answer %d without a server receive time (%d such)", tile.request_id, n
                )
            return
        with self._cond:
            self._answers[tile.request_id] = (server_ns, msg.header.stamp.to_nsec(), recv_ns, tile.nbytes)
            self._cond.notify_all()

    def wait_connected(self, timeout: float) -> bool:
        """True once the up topic has a subscriber and the down topic a publisher (through the bridge)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not rospy.is_shutdown():
            if self.pub.get_num_connections() > 0 and self.sub.get_num_connections() > 0:
                return True
            time.sleep(0.05)
        return False

    def wait_answers(self, request_ids: Sequence[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(r in self._answers for r in request_ids):
                left = deadline - time.monotonic()
                if left <= 0 or rospy.is_shutdown():
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def send(self, nbytes: int, request_id: int) -> tuple[int, int]:
        """Publish one tile stamped now; returns (stamp in ns, payload bytes).

        The message of each size is built once and reused with a new request id and stamp (publish() serialises
        it before returning, so changing it afterwards is safe): the benchmark then times the transport, not
        the making of test data.
        """
        msg = self._templates.get(nbytes)
        if msg is None:
            msg = self._templates[nbytes] = tile_to_msg(make_tile(nbytes, 0, self.robot))
        msg.request_id = request_id
        stamp_ns = time.time_ns()
        msg.header.stamp = rospy.Time(nsecs=stamp_ns)
        self.pub.publish(msg)
        return stamp_ns, len(msg.data)

    def answer(self, request_id: int) -> tuple:
        with self._cond:
            return self._answers[request_id]


def transfer_timeout(nbytes: int, rate_mbit: float) -> float:
    """Generous bound for one tile at `rate_mbit` (x4 plus 5 s), so a stalled link ends the run, not a hang."""
    return 4.0 * nbytes * 8 / (max(rate_mbit, 0.1) * 1e6) + 5.0


def run_tile_sender(
    sizes: Sequence[int],
    repeats: int,
    mode: str = "pingpong",
    stream_bytes: int = 24 << 20,
    robot: str = "robot1",
    connect_timeout: float = 30.0,
    min_rate_mbit: float = 10.0,
    hold: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Node main: ping-pong or stream tiles, one JSON line per result on `out`; returns the exit code."""
    if mode not in ("pingpong", "stream"):
        raise ValueError(f"mode must be 'pingpong' or 'stream', got {mode!r}")
    rospy.init_node("tile_sender")

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    sender = TileSender(robot, queue_size=MAX_STREAM_TILES + 1)
    if not sender.wait_connected(connect_timeout):
        emit(
            {
                "kind": "error",
                "error": f"no connection on {up_topic(robot)}/{down_topic(robot)} within "
                f"{connect_timeout:g} s (is the bridge running?)",
            }
        )
        return 2
    emit({"kind": "connected"})
    request_id = 1
    for _ in range(repeats):
        for nbytes in sizes:
            if rospy.is_shutdown():
                return 1
            if mode == "pingpong":
                stamp, sent = sender.send(nbytes, request_id)
                if not sender.wait_answers([request_id], 2 * transfer_timeout(nbytes, min_rate_mbit)):
                    emit({"kind": "error", "error": f"no echo for tile {request_id} ({nbytes} B)"})
                    return 3
                server_ns, echo_stamp_ns, recv_ns, got = sender.answer(request_id)
                emit(
                    {
                        "kind": "tile",
                        "request_id": request_id,
                        "bytes": sent,
                        "answer_bytes": got,
                        "up_s": (server_ns - stamp) / 1e9,
                        "down_s": (recv_ns - echo_stamp_ns) / 1e9,
                        "rtt_s": (recv_ns - stamp) / 1e9,
                    }
                )
                request_id += 1
            else:
                count = max(4, min(MAX_STREAM_TILES, math.ceil(stream_bytes / nbytes)))
                ids = list(range(request_id, request_id + count))
                first = None
                for rid in ids:
                    stamp, sent = sender.send(nbytes, rid)
                    first = stamp if first is None else first
                request_id += count
                if not sender.wait_answers(ids, count * transfer_timeout(nbytes, min_rate_mbit)):
                    emit({"kind": "error", "error": f"stream of {count} x {nbytes} B incomplete"})
                    return 3
                answers = [sender.answer(r) for r in ids]
                last = max(a[0] for a in answers)
                total = count * sent
                emit(
                    {
                        "kind": "stream",
                        "bytes": total // count,
                        "count": count,
                        "seconds": (last - first) / 1e9,
                        "goodput_mbit": total * 8 / ((last - first) / 1e9) / 1e6,
                    }
                )
    emit({"kind": "done"})
    if hold:  # keep the connections open until the caller closes our stdin (it inspects sockets meanwhile)
        try:
            sys.stdin.read()
        except (OSError, ValueError):
            pass
    return 0
