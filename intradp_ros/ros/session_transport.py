"""RosTransport plus what the system nodes need to account for every tile: when each tile was sent and
received (per request, for InferenceStats), whether the peer is connected, and executor halves that record
the robot's idle intervals, can abort the running request, and report the server half of each request.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from intradp_ros.core.executor import ClientHalf, ExecutionError, ServerHalf, SideExecutor
from intradp_ros.core.graph import Graph
from intradp_ros.core.plan import Plan
from intradp_ros.core.tile import FLAGS_WITHOUT_PAYLOAD, Tile
from intradp_ros.core.tile_ledger import KEEP_REQUESTS, ReceivedTile, SentTile, TileLedger
from intradp_ros.msg import TensorTile
from intradp_ros.ros.transport import RosTransport


class RecordingTransport(RosTransport):
    """A RosTransport with a TileLedger (intradp_ros.core.tile_ledger): per request id, every tile it wrote
    out (node_id, row_start, write start, write end, nbytes) and every tile it received (node_id, row_start,
    sender's stamp, received_at, nbytes); times in seconds since the epoch. A tile counts as sent only once
    its bytes went into a subscriber's connection; payload tiles of a cancelled (failed) request are
    dropped before sending."""

    def __init__(self, side: str, robot: str, graph: Optional[Graph] = None, **kwargs: Any) -> None:
        self.ledger = TileLedger(KEEP_REQUESTS)
        self.skipped = 0  # payload tiles of cancelled requests never sent
        super().__init__(side, robot, graph, **kwargs)

    def _on_msg(self, msg: TensorTile) -> None:
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

    def take_records(self, request_id: int) -> Tuple[List[SentTile], List[ReceivedTile]]:
        """(sent, received) records of one request, removed from the transport."""
        return self.ledger.take(request_id)

    def peer_connected(self) -> bool:
        """Both tile topics have their peer (our publisher a subscriber, our subscriber a publisher)."""
        try:
            return self._pub.get_num_connections() > 0 and self._sub.get_num_connections() > 0
        except AttributeError:
            return False


class RecordingExecutor(SideExecutor):
    """SideExecutor that records the wall-clock intervals it spent idle waiting for rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle: List[Tuple[float, float]] = []

    def _rows(self, u: int, need: Any) -> torch.Tensor:
        w0 = self.stats.wait_s
        try:
            return super()._rows(u, need)
        finally:
            waited = self.stats.wait_s - w0
            if waited > 0:
                end = time.time()
                self.idle.append((end - waited, end))


class RobotClientHalf(ClientHalf):
    """ClientHalf with idle-interval recording, request ids unique across restarts, and abort()."""

    def __init__(
        self, graph: Graph, transport: RecordingTransport, device: Any = "cpu", timeout: float = 30.0, robot: str = ""
    ) -> None:
        super().__init__(graph, transport, device, timeout, robot)
        self._next_id = int(time.time() * 1000) * 1000  # ids never repeat after a client restart
        self.last_idle: List[Tuple[float, float]] = []
        self.last_request_id = 0

    def next_local_id(self) -> int:
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            return rid

    executor_type = RecordingExecutor

    def infer(self, plan: Plan, *inputs: torch.Tensor) -> Any:
        """ClientHalf.infer; when the request fails, its tiles still queued for sending are dropped (the
        transport's ledger cancels it) so a dead request stops using the link."""
        try:
            return super().infer(plan, *inputs)
        except Exception:
            ledger = getattr(self.transport, "ledger", None)
            if isinstance(ledger, TileLedger):
                ledger.cancel(self.last_request_id)
            raise

    def _started(self, ex: SideExecutor) -> None:
        self.last_request_id = ex.request_id

    def _finished(self, ex: SideExecutor) -> None:
        super()._finished(ex)
        self.last_idle = ex.idle

    def abort(self, reason: str) -> bool:
        """Fail the running request now (e.g. the peer disconnected); True if one was running."""
        with self._lock:
            ex = self._current
        if ex is None:
            return False
        with ex.cv:
            ex.errors.append(reason)
            ex.cv.notify_all()
        return True


class ReportingServerHalf(ServerHalf):
    """ServerHalf that calls `on_done(executor, error)` when each request's server half ends."""

    def __init__(
        self,
        graph: Graph,
        transport: RecordingTransport,
        plans: Sequence[Plan],
        device: Any,
        timeout: float,
        on_done: Callable[[SideExecutor, str], None],
    ) -> None:
        self.on_done = on_done
        super().__init__(graph, transport, plans, device, timeout)

    def _work(self, ex: SideExecutor) -> None:
        outcome: Dict[str, str] = {}
        run = ex.run

        def recorded_run(*args: Any) -> Any:
            try:
                return run(*args)
            except Exception as e:  # noqa: BLE001 - recorded, then handled by ServerHalf._work
                outcome["error"] = str(e) or type(e).__name__
                raise

        ex.run = recorded_run  # type: ignore[method-assign]
        super()._work(ex)
        try:
            self.on_done(ex, outcome.get("error", ""))
        except Exception as e:  # noqa: BLE001 - a report must never stop the server
            import logging

            logging.getLogger(__name__).error("server report of request %d failed: %s", ex.request_id, e)


__all__ = ["RecordingTransport", "RecordingExecutor", "RobotClientHalf", "ReportingServerHalf", "ExecutionError"]
