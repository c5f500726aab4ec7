"""ROS adapter of the engine's Transport: tiles over intradp_ros/TensorTile topics.

Per robot, tiles go robot -> server on `intradp/<robot>/up` and server -> robot on `intradp/<robot>/down`
(names relative to the node's namespace, intradp_ros.ros.names) (TCPROS with tcp_nodelay and a large receive
buffer). Messages are converted by
`intradp_ros.ros.tile_conversion` (raw bytes, zero-copy views on receipt); every received tile is
validated against the graph (known node, range inside its shape, payload size); a bad one is logged (throttled,
with counts) and dropped, never raised into the node. The executors (ClientHalf / ServerHalf) then check it
against the running request's plan.

Slow peers: every subscriber connection of our tile publisher gets its own writer (intradp_ros.ros.connection_writer:
bounded queue, progress watchdog), so a subscriber that connects and never reads is dropped (logged once) after
`stall_s` without progress or `max_queue_bytes` queued, and never stalls the link to the real peer.

Size limit: `max_bytes` defaults to the largest tile any plan of the graph can send plus codec headroom
(core.codec.graph_tile_limit). rospy reads a whole message before our callback sees it (its subscriber read loop
has no public hook for the length prefix), so an oversized message costs its size once in rospy's buffer; it is
refused in the callback before any copy or decode, and its bytes are released with the message.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings

import rospy

from intradp_ros.core.codec import TileValidator, graph_tile_limit
from intradp_ros.core.graph import Graph
from intradp_ros.core.log_throttle import LogThrottle, clip
from intradp_ros.core.plan import ROBOT, SERVER
from intradp_ros.core.tile import Tile, TileError
from intradp_ros.core.transport import Transport, TransportClosed
from intradp_ros.msg import TensorTile
from intradp_ros.ros.connection_writer import WriterSet
from intradp_ros.ros.names import DEFAULT_BASE, RobotNames
from intradp_ros.ros.tile_conversion import msg_to_tile, tile_to_msg

_CLOSED = object()


def tile_topics(robot: str, namespace: str = DEFAULT_BASE) -> tuple[str, str]:
    """(up, down) topic names of one robot (intradp_ros.ros.names: relative to the node's namespace by default)."""
    names = RobotNames(robot, namespace.rstrip("/") or DEFAULT_BASE)
    return names.up, names.down


class RosTransport(Transport):
    """One end (robot or server side) of the tile link of robot `robot`, over TensorTile topics."""

    def __init__(
        self,
        side: str,
        robot: str = "robot",
        graph: Graph | None = None,
        namespace: str = DEFAULT_BASE,
        queue_size: int | None = None,
        max_bytes: int | None = None,
        buff_size: int = 64 << 20,
        stall_s: float = 2.0,
        max_queue_bytes: int | None = None,
    ) -> None:
        if side not in (ROBOT, SERVER):
            raise ValueError(f"side must be '{ROBOT}' or '{SERVER}'")
        up, down = tile_topics(robot, namespace)
        out_topic, in_topic = (up, down) if side == ROBOT else (down, up)
        shapes = {n.index: n.shape for n in graph.nodes} if graph is not None else None
        self.max_bytes = int(max_bytes) if max_bytes is not None else graph_tile_limit(graph)
        self._validator = TileValidator(None, shapes, self.max_bytes)
        self._drop_log = LogThrottle(10.0)
        self._q: queue.Queue[object] = queue.Queue()
        self._closed = False
        self.dropped = 0
        self.unsent = 0  # tiles given to send() while nobody subscribed (never on the link)
        self._lock = threading.Lock()
        # queue_size None (default): publish() writes the tile into each subscriber's TCP connection before it
        # returns, so send() returning means the bytes left (what the stats count) and a failed request's
        # tiles still in the engine's sender queue can be dropped instead of clogging the link. The engine's
        # sender thread is the only caller, so blocking there never blocks computation. (With a queue_size,
        # rospy queues the bytes and returns at once: it would drop the oldest tiles beyond it.)
        # The subscriber queue is unbounded (the callback only validates and enqueues): a dropped tile would
        # stall a request.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # rospy warns about queue_size=None (synchronous)
            self._pub = rospy.Publisher(out_topic, TensorTile, queue_size=queue_size, tcp_nodelay=True)
        # one writer per subscriber connection (only with synchronous publish: rospy's queued publish wraps its own)
        queue_bytes = max_queue_bytes if max_queue_bytes is not None else max(4 * self.max_bytes, 64 << 20)
        shared = WriterSet.of(self._pub)  # another transport of this process publishes the same topic
        self.writers = shared or WriterSet(self._pub.resolved_name, queue_bytes, stall_s, log=rospy.logwarn)
        if queue_size is None and shared is None:
            self.writers.install(self._pub)
        self._sub = rospy.Subscriber(
            in_topic, TensorTile, self._on_msg, queue_size=None, tcp_nodelay=True, buff_size=buff_size
        )
        self.out_topic, self.in_topic = self._pub.resolved_name, self._sub.resolved_name  # for log lines

    def _on_msg(self, msg: TensorTile) -> None:
        try:
            tile = msg_to_tile(msg, self._validator)
        except TileError as e:
            with self._lock:
                self.dropped += 1
            n = self._drop_log.hit(f"{e.field}")
            if n:
                rospy.logerr(
                    "dropped tile on %s (request %s node %s; %d dropped for %s since the last line, %d in all): %s",
                    self.in_topic,
                    msg.request_id,
                    msg.node_id,
                    n,
                    e.field,
                    self.dropped,
                    clip(e, 300),
                )
            return
        self._q.put(tile)

    def send(self, tile: Tile) -> None:
        if self._closed:
            raise TransportClosed("transport closed")
        try:
            msg = self._to_msg(tile)
        except TileError as e:
            if self._drop_log.hit(f"send {e.field}"):
                rospy.logerr("cannot send tile of node %s: %s", tile.node_id, clip(e, 300))
            return
        if self._pub.get_num_connections() == 0:  # rospy would drop it silently: it is not sent
            with self._lock:
                self.unsent += 1
            return
        started = time.time()
        before = self.writers.snapshot()
        self._pub.publish(msg)
        if self.writers.wait_written(before) == 0 and before:  # every subscriber was dropped: nothing left
            with self._lock:
                self.unsent += 1
            return
        self._on_sent(tile, started, time.time())

    def _to_msg(self, tile: Tile) -> TensorTile:
        """Hook: the message that carries `tile` (a subclass adds its MAC)."""
        return tile_to_msg(tile)

    def _on_sent(self, tile: Tile, started: float, finished: float) -> None:
        """Hook: `tile` was written to the subscribers' connections between `started` and `finished` (epoch s)."""

    def recv(self, timeout: float | None = None) -> Tile | None:
        if self._closed:
            raise TransportClosed("transport closed")
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._q.put(_CLOSED)
            raise TransportClosed("transport closed")
        return item  # type: ignore[return-value]

    def wait_for_peer(self, timeout: float = 10.0) -> bool:
        """True once the other side subscribes to our tiles (bounded wait)."""
        tick = threading.Event()
        for _ in range(max(1, int(timeout / 0.05))):
            if self._pub.get_num_connections() > 0:
                return True
            tick.wait(0.05)
        return self._pub.get_num_connections() > 0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pub.unregister()
            self._sub.unregister()
            self._q.put(_CLOSED)
