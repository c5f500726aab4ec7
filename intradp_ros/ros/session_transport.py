"""RosTransport plus what the system nodes need to account for every tile: when each tile was sent and
received (per request, for InferenceStats), whether the peer is connected, and executor halves that record
the robot's idle intervals, can abort the running request, and report the server half of each request.

With a `TileAuth` (a key file is configured, docs/security.md) every outgoing tile carries its MAC and every
incoming tile's MAC is checked first, before the ledger, validation or the executor see it: a tile that fails is
dropped and counted (`forged`, by cause in `auth_drops`), logged at most once per 10 s per cause with the count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import rospy

from intradp_ros.core.auth import AuthError, TileAuth
from intradp_ros.core.graph import Graph
from intradp_ros.core.health import DropCounter
from intradp_ros.core.plan import Plan
from intradp_ros.core.runtime.halves import DEFAULT_MAX_IN_FLIGHT, ClientHalf, ServerHalf
from intradp_ros.core.runtime.stage import ExecutionError, Stage
from intradp_ros.core.tile import FLAGS_WITHOUT_PAYLOAD, Tile
from intradp_ros.core.tile_ledger import KEEP_REQUESTS, ReceivedTile, SentTile, TileLedger
from intradp_ros.msg import TensorTile
from intradp_ros.ros.tile_conversion import check_mac, tile_to_msg
from intradp_ros.ros.transport import RosTransport


class RecordingTransport(RosTransport):
    """A RosTransport with a TileLedger (intradp_ros.core.tile_ledger): per request id, every tile it wrote
    out (node_id, row_start, write start, write end, nbytes) and every tile it received (node_id, row_start,
    sender's stamp, received_at, nbytes); times in seconds since the epoch. A tile counts as sent only once
    its bytes went into a subscriber's connection; payload tiles of a cancelled (failed) request are
    dropped before sending."""

    def __init__(
        self, side: str, robot: str, graph: Graph | None = None, auth: TileAuth | None = None, **kwargs: Any
    ) -> None:
        self.ledger = TileLedger(KEEP_REQUESTS)
        self.skipped = 0  # payload tiles of cancelled requests never sent
        self.auth = auth
        self.auth_drops = DropCounter()  # tiles that failed their MAC, by cause
        super().__init__(side, robot, graph, **kwargs)

    @property
    def forged(self) -> int:
        """Tiles dropped because their MAC did not verify (forged, corrupted, of another session, or early) or
        because they replayed an authentic tile of this session."""
        return self.auth_drops.count()

    def _authentic(self, msg: TensorTile) -> bool:
        if self.auth is None:
            return True
        try:
            check_mac(msg, self.auth)
            return True
        except AuthError as e:
            text = str(e)
            cause = "no_session_key" if "no session key" in text else "replayed" if "replayed" in text else "bad_mac"
            if self.auth_drops.record(cause):
                rospy.logerr(
                    "dropped unauthenticated tile on %s (request %s node %s): %s (%d such tiles so far)",
                    self.in_topic,
                    msg.request_id,
                    msg.node_id,
                    e,
                    self.auth_drops.count(cause),
                )
            return False

    def _to_msg(self, tile: Tile) -> TensorTile:
        return tile_to_msg(tile, auth=self.auth)

    def _on_msg(self, msg: TensorTile) -> None:
        if not self._authentic(msg):  # before anything else reads the message
            return
        now = time.time()
        try:
            stamp = msg.header.stamp.to_sec()
        except AttributeError:
            stamp = 0.0
        if not msg.flags & FLAGS_WITHOUT_PAYLOAD:
            self.ledger.received(int(msg.request_id), int(msg.node_id), int(msg.row_start), stamp, now, len(msg.data))
        super()._on_msg(msg)

    def send(self, tile: Tile) -> None:
        if not self.ledger.should_send(tile):
            self.skipped += 1
            return
        super().send(tile)

    def _on_sent(self, tile: Tile, started: float, finished: float) -> None:
        self.ledger.sent(tile, started, finished)

    def cancel(self, request_id: int) -> None:
        """The request failed: drop its payload tiles still waiting for the sender thread."""
        self.ledger.cancel(request_id)

    def take_records(self, request_id: int) -> tuple[list[SentTile], list[ReceivedTile]]:
        """(sent, received) records of one request, removed from the transport."""
        return self.ledger.take(request_id)

    def peer_connected(self) -> bool:
        """Both tile topics have their peer (our publisher a subscriber, our subscriber a publisher)."""
        try:
            return self._pub.get_num_connections() > 0 and self._sub.get_num_connections() > 0
        except AttributeError:
            return False


class RecordingExecutor(Stage):
    """Stage that records the wall-clock intervals it spent idle waiting for tiles (its `on_wait` hook)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle: list[tuple[float, float]] = []

    def on_wait(self, start: float, end: float) -> None:
        self.idle.append((start, end))


class RobotClientHalf(ClientHalf):
    """ClientHalf with idle-interval recording and request ids unique across restarts; when a request
    fails, its tiles still queued for sending are dropped (the transport's ledger cancels it) so a dead
    request stops using the link. Built only on ClientHalf's public hooks."""

    stage_type = RecordingExecutor

    def __init__(
        self, graph: Graph, transport: RecordingTransport, device: Any = "cpu", timeout: float = 30.0, robot: str = ""
    ) -> None:
        self._id_lock = threading.Lock()
        self._next_rid = int(time.time() * 1000) * 1000  # ids never repeat after a client restart
        self.last_idle: list[tuple[float, float]] = []
        self.last_request_id = 0
        super().__init__(graph, transport, device, timeout, robot)

    def next_request_id(self) -> int:
        with self._id_lock:
            rid = self._next_rid
            self._next_rid += 1
            return rid

    def next_local_id(self) -> int:
        """An id for a frame run locally, from the same sequence as distributed requests."""
        return self.next_request_id()

    def on_started(self, stage: Stage) -> None:
        self.last_request_id = stage.request_id

    def on_finished(self, stage: Stage, error: str) -> None:
        self.last_idle = getattr(stage, "idle", [])
        if error:
            ledger = getattr(self.transport, "ledger", None)
            if isinstance(ledger, TileLedger):
                ledger.cancel(stage.request_id)


class ReportingServerHalf(ServerHalf):
    """ServerHalf that calls `on_done(stage, error)` when each request's server half ends (its public hook)."""

    def __init__(
        self,
        graph: Graph,
        transport: RecordingTransport,
        plans: Sequence[Plan],
        device: Any,
        timeout: float,
        on_done: Callable[[Stage, str], None],
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        super().__init__(graph, transport, plans, device, timeout, on_done=on_done, max_in_flight=max_in_flight)


__all__ = ["RecordingTransport", "RecordingExecutor", "RobotClientHalf", "ReportingServerHalf", "ExecutionError"]
