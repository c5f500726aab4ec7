"""The halves: the client (robot) and server request life cycle around one transport.

Public hooks (what ROS code builds on; nothing private is overridden):
- ClientHalf: `stage_type` (the Stage class of a request), `next_request_id()` (override for ids unique across
  restarts), `on_started(stage)`, `on_finished(stage, error)`, `abort(reason)`, `timeout` (default) and
  `infer(..., timeout=)` (per request), `current_request_id`, `last_stats`.
- ServerHalf: `on_done(stage, error)` (constructor argument or override), `stage_type`, `timeout`, `completed`,
  `failed`, `last_stats`.

A failure anywhere ends the request on both sides at once: a stage that fails sends FLAG_ABORT; a sender
that cannot turn a value into a tile or cannot send it fails the request it belongs to (on this side, with
the cause) and sends FLAG_ABORT to the peer.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

import numpy as np
import torch

from intradp_ros.core.codec import UNCOMPRESSED
from intradp_ros.core.graph import Graph, Node
from intradp_ros.core.log_throttle import LogThrottle
from intradp_ros.core.plan import DOWN, ROBOT, SERVER, UP, Plan
from intradp_ros.core.runtime.stage import ExecutionError, RequestStats, Stage, default_server_device, graph_on
from intradp_ros.core.runtime.wire import ABORT_REFUSED, ABORT_SEND, make_tile
from intradp_ros.core.tile import FLAG_ABORT, FLAG_START, FLAGS_WITHOUT_PAYLOAD, Tile
from intradp_ros.core.transport import Transport, TransportClosed, inprocess_pair
from intradp_ros.core.vocabulary import Direction

log = logging.getLogger(__name__)
_DROPS = LogThrottle(10.0)  # per-tile drop lines: the first at once, then one per 10 s with the count

DEFAULT_MAX_IN_FLIGHT = 2  # requests of one robot the server runs at once (a frame plus one being aborted)


class Sender:
    """The sender thread of one half: turns queued values into Tiles (CPU numpy) and sends them in order.

    A value that cannot become a tile, or a send that fails, calls `on_error(request_id, message, node, start,
    stop)` once per
    request, sends FLAG_ABORT for it, and drops the request's later tiles; the thread keeps running."""

    def __init__(
        self,
        transport: Transport,
        robot: str = "",
        on_error: Callable[[int, str, Node | None, int, int], None] | None = None,
        codecs: Collection[int] = UNCOMPRESSED,
        direction: str = UP,
    ) -> None:
        self.transport = transport
        self.robot = robot
        self.on_error = on_error
        # the codecs this sender may pick (core/codec.choose_codec); today's uncompressed wire unless widened
        self.codecs = frozenset(codecs)
        # which way its tiles go, and per plan id the plan's codec per node that way (`use_plan`)
        self.direction = Direction(direction)
        self._planned: dict[int, dict[int, int]] = {}
        self.q: queue.Queue[Any] = queue.Queue()
        self._failed: set[int] = set()
        self.thread = threading.Thread(target=self._loop, name="intradp-sender", daemon=True)
        self.thread.start()

    def use_plan(self, plan: Plan) -> None:
        """Send `plan`'s tiles in the codecs it chose for this direction (plans without codecs: the sender's own
        rules, today's uncompressed wire)."""
        per_node = {v: c for (v, d), c in plan.codecs.items() if d == self.direction}
        if per_node or plan.plan_id in self._planned:
            self._planned[plan.plan_id] = per_node

    def __call__(
        self, request_id: int, plan_id: int, node: Node | None, start: int, stop: int, t: Any, flags: int
    ) -> None:
        self.q.put((request_id, plan_id, node, start, stop, t, flags))

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            request_id, plan_id, node, start, stop, t, flags = item
            if request_id in self._failed and not flags & FLAG_ABORT:
                continue
            try:
                if flags & FLAGS_WITHOUT_PAYLOAD:  # an abort names its cause (t) and where (node, rows)
                    where = node.index if node is not None else 0
                    cause = int(t) if isinstance(t, int) else 0
                    tile = Tile(
                        request_id,
                        plan_id,
                        where,
                        cause,
                        start,
                        stop,
                        np.zeros(0, np.uint8),
                        flags=flags,
                        robot=self.robot,
                    )
                else:
                    planned = self._planned.get(plan_id, {}).get(node.index) if node is not None else None
                    tile = make_tile(request_id, plan_id, node, start, stop, t, flags, self.robot, self.codecs, planned)
                self.transport.send(tile)
            except TransportClosed:
                return
            except Exception as e:  # noqa: BLE001 - a failure fails its request, never the sender thread
                what = f"node {node.index} '{node.name}' rows [{start}, {stop})" if node is not None else "a flag tile"
                msg = f"sending {what} of request {request_id} failed: {type(e).__name__}: {e}"
                log.error(msg)
                if request_id in self._failed:
                    continue
                self._failed.add(request_id)
                if len(self._failed) > 1000:
                    self._failed = set(sorted(self._failed)[-100:])
                if self.on_error is not None:
                    self.on_error(request_id, msg, node, start, stop)
                if not flags & FLAG_ABORT:
                    try:
                        where = node.index if node is not None else 0
                        abort = Tile(
                            request_id, plan_id, where, ABORT_SEND, start, stop, np.zeros(0, np.uint8), flags=FLAG_ABORT
                        )
                        self.transport.send(abort)
                    except Exception as e2:  # noqa: BLE001 - the link itself is gone: the peer times out
                        log.error("abort of request %d not sent: %s", request_id, e2)

    def close(self, timeout: float = 5.0) -> None:
        self.q.put(None)
        self.thread.join(timeout)


_Sender = Sender  # older name


def incoming_tiles(transport: Transport, stopped: Callable[[], bool]) -> Iterator[Tile]:
    """Tiles from `transport` until it closes or `stopped()`; wakes every 0.2 s to check (both halves' receivers)."""
    while not stopped():
        try:
            tile = transport.recv(timeout=0.2)
        except TransportClosed:
            return
        if tile is not None:
            yield tile


class ClientHalf:
    """The robot half: runs requests and routes incoming tiles to the running one."""

    stage_type: type = Stage  # the Stage class of a request (a recording subclass, for instance)

    def __init__(
        self, graph: Graph, transport: Transport, device: Any = "cpu", timeout: float = 30.0, robot: str = ""
    ) -> None:
        self.graph, self.transport, self.device, self.timeout = graph, transport, torch.device(device), timeout
        self.sender = Sender(transport, robot, on_error=self._send_failed, direction=UP)
        self._current: Stage | None = None
        self._lock = threading.Lock()
        self._next_id = 1
        self._stop = False
        self.last_stats: RequestStats | None = None
        self._rx = threading.Thread(target=self._recv_loop, name="intradp-client-rx", daemon=True)
        self._rx.start()

    # ---- public hooks
    def next_request_id(self) -> int:
        """A fresh request id (override for ids unique across restarts)."""
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            return rid

    def on_started(self, stage: Stage) -> None:
        """Hook: a request is about to run."""

    def on_finished(self, stage: Stage, error: str) -> None:
        """Hook: a request ended; `error` is empty on success."""

    def abort(self, reason: str) -> bool:
        """Fail the running request now with `reason` (e.g. the peer disconnected); True if one was running."""
        with self._lock:
            st = self._current
        if st is None:
            return False
        st.abort(reason)
        return True

    @property
    def current_request_id(self) -> int | None:
        with self._lock:
            return self._current.request_id if self._current is not None else None

    # ---- life cycle
    def _send_failed(self, request_id: int, message: str, node: Node | None, start: int, stop: int) -> None:
        with self._lock:
            st = self._current
        if st is not None and st.request_id == request_id:
            st.fail(message, ABORT_SEND, node, start, stop, peer_told=True)

    def _recv_loop(self) -> None:
        for tile in incoming_tiles(self.transport, lambda: self._stop):
            with self._lock:
                st = self._current
            if st is None or tile.request_id != st.request_id:
                n = _DROPS.hit("client not running")
                if n:
                    log.warning("client: dropped tile of request %d (not running; %d such drops)", tile.request_id, n)
                continue
            st.deliver(tile)

    def infer(self, plan: Plan, *inputs: torch.Tensor, timeout: float | None = None) -> Any:
        """One distributed inference under `plan`; returns what the model returns. `timeout`: seconds this
        request waits for a missing tile (default: the half's `timeout`)."""
        rid = self.next_request_id()
        wait = self.timeout if timeout is None else float(timeout)
        self.sender.use_plan(plan)
        st = self.stage_type(self.graph, plan, ROBOT, rid, self.sender, self.device, wait)
        with self._lock:
            self._current = st
        self.on_started(st)
        error = ""
        try:
            with torch.no_grad():
                return st.run(inputs)
        except Exception as e:
            error = str(e) if isinstance(e, ExecutionError) else f"{type(e).__name__}: {e}"
            raise
        finally:
            with self._lock:
                self._current = None
            self.last_stats = st.stats
            self.on_finished(st, error)

    def close(self) -> None:
        self._stop = True
        self.sender.close()
        self.transport.close()
        self._rx.join(2.0)


class ServerHalf:
    """The server half: starts a stage when the first tile of a new request arrives (its plan id names the
    plan), feeds it the request's tiles, and drops tiles of unknown plans or past requests.

    Bounded work per robot: a request is announced by its first tile and its id must be above every id this
    session announced before (a replayed or made-up older id is refused and counted in `refused_stale`); at most
    `max_in_flight` requests run at once, on a fixed pool of that many worker threads (never a thread per
    request); a request beyond that is refused with an ABORT_REFUSED tile to the robot and counted in
    `refused_busy`. `new_session()` (a new handshake) restarts the id sequence."""

    stage_type: type = Stage

    def __init__(
        self,
        graph: Graph,
        transport: Transport,
        plans: Sequence[Plan] = (),
        device: Any = None,
        timeout: float = 30.0,
        allow_tf32: bool = False,
        on_done: Callable[[Stage, str], None] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if int(max_in_flight) < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.graph, self.transport, self.timeout = graph, transport, timeout
        self.device = torch.device(device) if device is not None else default_server_device()
        if self.device.type == "cuda" and not allow_tf32 and torch.backends.cudnn.allow_tf32:
            # cuDNN convolutions default to TF32 (~1e-3 relative error); the server's rows must match the
            # robot's float32 rows, so the server process computes in full float32 unless told otherwise.
            torch.backends.cudnn.allow_tf32 = False
            log.info("server: cuDNN TF32 disabled for float32-exact rows (allow_tf32=True to keep it)")
        self._on_done = on_done
        self.plans: dict[int, Plan] = {}
        self.sender = Sender(transport, on_error=self._send_failed, direction=DOWN)
        for p in plans:
            self.add_plan(p)
        self._active: dict[int, Stage] = {}
        self._done: set[int] = set()
        self._lock = threading.Lock()
        self.max_in_flight = int(max_in_flight)
        self._pool = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="intradp-server-worker")
        self._running: list[Future[None]] = []
        self._last_id: int | None = None  # newest request id announced in this session
        self._stop = False
        self.completed = 0
        self.failed = 0
        self.refused_busy = 0  # requests refused: max_in_flight already running
        self.refused_stale = 0  # tiles of ids never announced (not above the newest one announced)
        self.last_stats: RequestStats | None = None
        graph_on(graph, self.device)  # move constants once, before the first request
        self._rx = threading.Thread(target=self._recv_loop, name="intradp-server-rx", daemon=True)
        self._rx.start()

    def add_plan(self, plan: Plan) -> None:
        if plan.graph.fingerprint != self.graph.fingerprint:
            raise ExecutionError(f"plan {plan.name} was made for another graph")
        self.plans[plan.plan_id] = plan
        self.sender.use_plan(plan)

    def new_session(self) -> None:
        """A new session of the robot began (a new handshake): its request ids start a new sequence."""
        with self._lock:
            self._last_id = None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._active)

    def on_done(self, stage: Stage, error: str) -> None:
        """Hook: the server half of a request ended; `error` is empty on success."""
        if self._on_done is not None:
            self._on_done(stage, error)

    def _send_failed(self, request_id: int, message: str, node: Node | None, start: int, stop: int) -> None:
        with self._lock:
            st = self._active.get(request_id)
        if st is not None:
            st.fail(message, ABORT_SEND, node, start, stop, peer_told=True)

    def _admit(self, tile: Tile) -> Stage | None:
        """The stage of a new request announced by `tile`, or None (refused, counted); holds `_lock`."""
        rid = tile.request_id
        if rid in self._done or tile.flags & FLAG_ABORT:
            n = _DROPS.hit("server finished")
            if n:
                log.warning("server: dropped tile of finished request %d (%d such drops)", rid, n)
            return None
        if self._last_id is not None and rid <= self._last_id:
            self.refused_stale += 1
            if self.refused_stale == 1 or self.refused_stale % 100 == 0:
                log.error(
                    "server: refused a tile of request %d: not announced in this session (ids must increase; newest "
                    "%d; %d refused so far)",
                    rid,
                    self._last_id,
                    self.refused_stale,
                )
            return None
        self._last_id = rid
        plan = self.plans.get(tile.plan_id)
        if plan is None:
            n = _DROPS.hit("server unknown plan")
            if n:
                log.error("server: dropped tile with unknown plan id %d (%d such drops)", tile.plan_id, n)
            self.sender(rid, tile.plan_id, None, 0, 0, None, FLAG_ABORT)
            self._remember_done(rid)
            return None
        if len(self._active) >= self.max_in_flight:
            self.refused_busy += 1
            if self.refused_busy == 1 or self.refused_busy % 100 == 0:
                log.error(
                    "server: refused request %d: %d requests of this robot already in flight (max_in_flight %d; %d "
                    "refused so far)",
                    rid,
                    len(self._active),
                    self.max_in_flight,
                    self.refused_busy,
                )
            self.sender(rid, tile.plan_id, None, 0, 0, ABORT_REFUSED, FLAG_ABORT)
            self._remember_done(rid)
            return None
        st: Stage = self.stage_type(self.graph, plan, SERVER, rid, self.sender, self.device, self.timeout)
        self._active[rid] = st
        self._running = [f for f in self._running if not f.done()] + [self._pool.submit(self._work, st)]
        return st

    def _remember_done(self, rid: int) -> None:
        self._done.add(rid)
        if len(self._done) > 10000:
            self._done = set(sorted(self._done)[-1000:])

    def _recv_loop(self) -> None:
        for tile in incoming_tiles(self.transport, lambda: self._stop):
            with self._lock:
                st = self._active.get(tile.request_id)
                if st is None:
                    st = self._admit(tile)
                    if st is None:
                        continue
            if not tile.flags & FLAG_START:
                st.deliver(tile)

    def _work(self, st: Stage) -> None:
        error = ""
        try:
            with torch.no_grad():
                st.run()
            self.completed += 1
            self.last_stats = st.stats
        except Exception as e:  # noqa: BLE001 - a failed request must not stop the server
            self.failed += 1
            error = str(e) if isinstance(e, ExecutionError) else f"{type(e).__name__}: {e}"
            if n := _DROPS.hit("server request failed"):
                log.error("server: request %d failed (%d such lines): %s", st.request_id, n, e)
        finally:
            with self._lock:
                self._active.pop(st.request_id, None)
                self._remember_done(st.request_id)
        try:
            self.on_done(st, error)
        except Exception as e:  # noqa: BLE001 - a report must never stop the server
            log.error("server report of request %d failed: %s", st.request_id, e)

    def close(self) -> None:
        self._stop = True
        with self._lock:
            running = list(self._active.values())
        for st in running:
            st.abort("server closing")
        self.sender.close()
        self.transport.close()
        self._rx.join(2.0)
        _done, stuck = wait_for(list(self._running), timeout=2.0)  # aborted stages end at their next step
        self._pool.shutdown(wait=not stuck, cancel_futures=True)  # idle workers exit now; a stuck one is left behind


def run_pair(
    g: Graph,
    plan: Plan,
    *inputs: torch.Tensor,
    bandwidth_bytes_per_s: float | None = None,
    server_device: Any = None,
    timeout: float = 30.0,
    wire: bool | None = None,
) -> Any:
    """Run the robot half and the server half of `plan` concurrently, connected by an in-process
    transport (optionally throttled), through the runtime code the ROS nodes use. `wire`: every tile through
    the wire codec (bytes and back), default when the plan carries codecs, so they are exercised."""
    robot_end, server_end = inprocess_pair(bandwidth_bytes_per_s, wire=bool(plan.codecs) if wire is None else wire)
    server = ServerHalf(g, server_end, [plan], device=server_device, timeout=timeout)
    client = ClientHalf(g, robot_end, device=inputs[0].device if inputs else "cpu", timeout=timeout)
    try:
        return client.infer(plan, *inputs)
    finally:
        client.close()
        server.close()
