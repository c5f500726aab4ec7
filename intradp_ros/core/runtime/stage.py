"""The stage: one side's execution of one request under one plan.

Wavefront execution over the schedule: a step (one band of one node) runs as soon as the steps it reads
are done and the tiles it reads have arrived, lowest priority first, so the side stays busy while tiles
stream in; each step's tiles are handed to the sender the moment they exist (computation never waits for
a send). Pieces are combined by narrowing (no copy) when one piece covers the rows, by one concatenation
otherwise. Activations are released after their last reader on this side.

Fail fast: a bad tile, a peer's abort, a sender failure or `abort(reason)` fails the request at once with
its cause; only a tile that never comes ends in a timeout, and that message names the missing tiles.
"""

from __future__ import annotations

import copy
import heapq
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from intradp_ros.core.graph import Graph, Node, Range, build_outputs
from intradp_ros.core.log_throttle import LogThrottle
from intradp_ros.core.plan import ROBOT, Plan
from intradp_ros.core.runtime.schedule import Schedule, check_progress, plan_schedule
from intradp_ros.core.runtime.wire import (
    ABORT_BAD_TILE,
    ABORT_FAILED,
    ABORT_LOCAL,
    ABORT_LOST_TILE,
    ABORT_OPERATOR,
    TileKey,
    check_tile,
    describe_abort,
    tile_key,
)
from intradp_ros.core.sparse import SparseRows
from intradp_ros.core.sparse import merge as merge_sparse
from intradp_ros.core.sparse import rows as sparse_rows
from intradp_ros.core.tile import FLAG_ABORT, FLAG_START, Tile, TileError

log = logging.getLogger(__name__)
_FAILS = LogThrottle(10.0)  # per-request failure lines: first at once, then one per 10 s with counts

# send(request_id, plan_id, node, start, stop, value, flags): hand one tile (or a flag) to the sender
SendFn = Callable[[int, int, Node | None, int, int, Any, int], None]


class ExecutionError(RuntimeError):
    """A request could not be completed (bad tile, peer abort, sender failure, lost tile)."""


def default_server_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------- per-device graph
_DEVICE_LOCK = threading.Lock()


def graph_on(graph: Graph, device: torch.device) -> tuple[Graph, dict[str, torch.Tensor]]:
    """The graph with its constants (and any module objects it calls) on `device`; cached on the graph."""
    device = torch.device(device)
    with _DEVICE_LOCK:
        cache: dict[str, tuple[Graph, dict[str, torch.Tensor]]] = graph.__dict__.setdefault("_device_cache", {})
        hit = cache.get(str(device))
        if hit is not None:
            return hit
        consts = {k: v.to(device) for k, v in graph.constants.items()}
        g = graph
        if device.type != "cpu" and any(_module_of(n.rowmap.fn) is not None for n in graph.nodes if not n.is_input):
            g = copy.copy(graph)
            g.nodes = []
            for n in graph.nodes:
                m = None if n.is_input else _module_of(n.rowmap.fn)
                if m is not None:
                    n = copy.copy(n)
                    n.rowmap = copy.copy(n.rowmap)
                    n.rowmap.fn = (
                        copy.deepcopy(n.rowmap.fn).to(device)
                        if isinstance(n.rowmap.fn, nn.Module)
                        else _repick(n.rowmap.fn, copy.deepcopy(m).to(device))
                    )
                g.nodes.append(n)
        cache[str(device)] = (g, consts)
        return g, consts


def _module_of(fn: Any) -> nn.Module | None:
    if isinstance(fn, nn.Module):
        return fn
    inner = getattr(fn, "fn", None)
    return inner if isinstance(inner, nn.Module) else None


def _repick(pick: Any, module: nn.Module) -> Any:
    p = copy.copy(pick)
    p.fn = module
    return p


# ----------------------------------------------------------------------------------------- row store
class RowStore:
    """The rows of one node held on one side: pieces (start, stop, tensor) from computation and tiles."""

    __slots__ = ("axis", "pieces")

    def __init__(self, axis: int | None) -> None:
        self.axis = axis
        self.pieces: list[tuple[int, int, Any]] = []  # tensors here, SparseRows in SparseRowStore

    def add(self, start: int, stop: int, t: torch.Tensor) -> None:
        self.pieces.append((start, stop, t))

    def get(self, lo: int, hi: int) -> torch.Tensor | None:
        """Rows [lo, hi) as a view when one piece holds them, one concatenation when several do, or
        None while some row is missing."""
        ax = self.axis
        for s, e, t in self.pieces:
            if s <= lo and hi <= e:
                piece: torch.Tensor = t
                if ax is None or (s == lo and e == hi):
                    return piece
                return piece.narrow(ax, lo - s, hi - lo)
        parts = []
        cur = lo
        for s, e, t in sorted(self.pieces, key=lambda p: p[0]):
            if s <= cur < e:
                stop = min(e, hi)
                parts.append(t if (s == cur and e == stop) else t.narrow(ax, cur - s, stop - cur))
                cur = stop
                if cur >= hi:
                    return torch.cat(parts, dim=ax or 0)
        return None


class SparseRowStore(RowStore):
    """Rows of a sparse node (SparseRows pieces): narrowed by the rows of their positions, merged by position."""

    __slots__ = ()

    def get(self, lo: int, hi: int) -> SparseRows | None:  # type: ignore[override]
        ax = self.axis or 0
        parts = []
        cur = lo
        for s, e, t in sorted(self.pieces, key=lambda p: p[0]):
            if s <= cur < e:
                stop = min(e, hi)
                parts.append(t if (s, e) == (cur, stop) else sparse_rows(t, ax, cur, stop))
                cur = stop
                if cur >= hi:
                    return merge_sparse(parts)
        return None


def new_store(node: Node) -> RowStore:
    return SparseRowStore(node.axis) if node.is_sparse else RowStore(node.axis)


def narrow_rows(node: Node, t: Any, start: int, lo: int, hi: int) -> Any:
    """Rows [lo, hi) of a value holding rows [start, ...) of `node` (dense: a view; sparse: the survivors)."""
    if node.is_sparse:
        return sparse_rows(t, node.axis or 0, lo, hi)
    if node.axis is None:
        return t
    return t.narrow(node.axis, lo - start, hi - lo)


# ----------------------------------------------------------------------------------------- one side
@dataclass
class RequestStats:
    """Where the time of one request went on one side."""

    compute_s: float = 0.0
    wait_s: float = 0.0
    total_s: float = 0.0
    tiles_in: int = 0
    bytes_in: int = 0
    tiles_out: int = 0
    bytes_out: int = 0
    steps: int = 0
    first_compute_s: float = -1.0  # when this side's first computing step started (s after the stage began)


class Stage:
    """Runs one side of one request under one plan (the same code on the robot and on the server).

    Public surface: `deliver(tile)` (any thread), `abort(reason)` (any thread), `run(inputs)`, `stats`,
    `request_id`, `plan`, `side`; subclasses may override `on_wait(start, end)` to record idle intervals."""

    def __init__(
        self,
        graph: Graph,
        plan: Plan,
        side: str,
        request_id: int,
        send: SendFn,
        device: torch.device,
        timeout: float = 30.0,
    ) -> None:
        if plan.graph is not graph and plan.graph.fingerprint != graph.fingerprint:
            raise ExecutionError("plan was made for another graph")
        self.graph, self.plan, self.side, self.request_id = graph, plan, side, request_id
        self.device = torch.device(device)
        self.g, self.constants = graph_on(graph, self.device)
        if side == ROBOT:  # a plan whose sides would wait for each other fails here, not after the tile timeout
            check_progress(plan)
        self.schedule: Schedule = plan_schedule(plan, side)
        self._send = send
        self.timeout = timeout
        self.cv = threading.Condition()
        self.stores: dict[int, RowStore] = {}  # partial rows and received tiles
        self.whole: dict[int, Any] = {}  # nodes computed whole, in one band, on this side
        self.received: set[TileKey] = set()
        self._arrived: list[TileKey] = []  # received since the run loop last looked
        self.errors: list[str] = []
        # the first failure: (cause code, node, start, stop), sent to the peer in the abort tile
        self.failure: tuple[int, Node | None, int, int] | None = None
        self._peer_told = False  # the peer already knows (it aborted first, or the sender told it)
        self.stats = RequestStats()

    # ---- control (any thread)
    def abort(self, reason: str) -> None:
        """Fail this request at once with `reason` (the run raises ExecutionError naming it)."""
        self.fail(reason, ABORT_LOCAL)

    def fail(
        self,
        reason: str,
        cause: int = ABORT_FAILED,
        node: Node | None = None,
        start: int = 0,
        stop: int = 0,
        peer_told: bool = False,
    ) -> None:
        """Record a failure (any thread): the run stops at once and tells the peer `cause` at `node` rows."""
        with self.cv:
            self.errors.append(reason)
            if self.failure is None:
                self.failure = (cause, node, start, stop)
                self._peer_told = peer_told
            self.cv.notify_all()

    def deliver(self, tile: Tile) -> None:
        """Validate and store one incoming tile (any thread). Problems fail the request, never merge."""
        if tile.flags & FLAG_ABORT:
            peer = "server" if self.side == ROBOT else "robot"
            msg = f"the {peer} aborted request {tile.request_id}: {describe_abort(self.g, tile)}"
            if n := _FAILS.hit("aborted"):
                log.error("request %d (%s): %s (%d such lines)", self.request_id, self.side, msg, n)
            self.fail(msg, peer_told=True)
            return
        try:
            key, piece = check_tile(
                self.g, tile, self.request_id, self.plan.plan_id, self.plan.name, self.schedule.expected, self.device
            )
        except TileError as e:
            if n := _FAILS.hit(f"bad tile {e.field}"):
                log.error("request %d (%s): %s (%d such lines)", self.request_id, self.side, e, n)
            bad = self.g.nodes[tile.node_id] if 0 <= tile.node_id < len(self.g.nodes) else None
            self.fail(str(e), ABORT_BAD_TILE, bad, tile.row_start, tile.row_stop)
            return
        with self.cv:
            if key in self.received:
                msg = f"duplicate tile node {key[0]} rows [{key[1]}, {key[2]})"
                if n := _FAILS.hit("duplicate"):
                    log.error("request %d (%s): %s (%d such lines)", self.request_id, self.side, msg, n)
                self.errors.append(msg)
                if self.failure is None:
                    self.failure = (ABORT_BAD_TILE, self.g.nodes[key[0]], key[1], key[2])
            else:
                self.received.add(key)
                self._arrived.append(key)
                store = self.stores.get(tile.node_id)
                if store is None:
                    store = self.stores[tile.node_id] = new_store(self.g.nodes[tile.node_id])
                store.add(key[1], key[2], piece)
                self.stats.tiles_in += 1
                self.stats.bytes_in += tile.nbytes
            self.cv.notify_all()

    def _key(self, tile: Tile) -> TileKey:
        return tile_key(self.g, tile)

    def on_wait(self, start: float, end: float) -> None:
        """Hook: this side was idle (waiting for tiles) from `start` to `end` (time.time())."""

    # ---- fetching rows (everything the step reads is present: deps done, tiles received)
    def _rows(self, u: int, need: Range | None) -> Any:
        node = self.g.nodes[u]
        if need is None:
            return torch.empty(node.row_shape(0, 0), dtype=node.dtype, device=self.device)
        lo, hi = need
        t = self.whole.get(u)
        if t is not None:
            if node.axis is None or (lo == 0 and hi == node.extent):
                return t
            return narrow_rows(node, t, 0, lo, hi)
        with self.cv:
            store = self.stores.get(u)
            t = store.get(lo, hi) if store is not None else None
        if t is None:
            have = [(s, e) for s, e, _ in store.pieces] if store is not None else []
            raise ExecutionError(
                f"internal: {self.side} lacks rows [{lo}, {hi}) of node {u} '{node.name}' (has {have})"
            )
        return t

    def _wait_for_tiles(self, blocked: tuple[str, tuple[Node | None, int, int]]) -> list[TileKey]:
        """Block until tiles arrive (returns their keys) or fail: an error, or `timeout` without any tile."""
        t0 = time.perf_counter()
        deadline = t0 + self.timeout
        with self.cv:
            while True:
                if self.errors:
                    raise ExecutionError("; ".join(self.errors))
                if self._arrived:
                    got, self._arrived = self._arrived, []
                    break
                left = deadline - time.perf_counter()
                if left <= 0:
                    msg = f"tile lost: {self.side} waited {self.timeout:.1f}s for {blocked[0]}"
                    self.errors.append(msg)
                    if self.failure is None:
                        self.failure = (ABORT_LOST_TILE,) + blocked[1]
                    raise ExecutionError(msg)
                self.cv.wait(left)
        waited = time.perf_counter() - t0
        self.stats.wait_s += waited
        end = time.time()
        self.on_wait(end - waited, end)
        return got

    # ---- the run
    def run(self, inputs: Sequence[torch.Tensor] = ()) -> Any:
        """Compute this side's bands as their rows become available; on the robot return the model outputs."""
        t_start = time.perf_counter()
        g, sched, stats = self.g, self.schedule, self.stats
        steps = sched.steps
        input_pos = {idx: i for i, idx in enumerate(g.input_indices)}
        if self.side == ROBOT and self.plan.server_needs_start():
            # The server half starts on the request's first tile; this plan sends it none (its server rows
            # need no input, e.g. rows made of padding only), so announce the request.
            self._send(self.request_id, self.plan.plan_id, None, 0, 0, None, FLAG_START)
        try:
            # readiness: unmet deps/tiles per step; who waits on each step and on each tile
            missing = [len(st.deps) + len(st.waits) for st in steps]
            dependents: list[list[int]] = [[] for _ in steps]
            tile_readers: dict[TileKey, list[int]] = {}
            for i, st in enumerate(steps):
                for d in st.deps:
                    dependents[d].append(i)
                for k in st.waits:
                    tile_readers.setdefault(k, []).append(i)
            readers = dict(sched.readers)
            ready = [(st.priority, i) for i, st in enumerate(steps) if missing[i] == 0]
            heapq.heapify(ready)
            seen: set[TileKey] = set()

            def arrived(keys: list[TileKey]) -> None:
                for k in keys:
                    if k in seen:
                        continue
                    seen.add(k)
                    for i in tile_readers.get(k, ()):
                        missing[i] -= 1
                        if missing[i] == 0:
                            heapq.heappush(ready, (steps[i].priority, i))

            with self.cv:
                early, self._arrived = self._arrived, []
            arrived(early)
            done = 0
            while done < len(steps):
                if not ready:
                    arrived(self._wait_for_tiles(self._blocked(steps, missing)))
                    continue
                if self.errors:
                    with self.cv:
                        raise ExecutionError("; ".join(self.errors))
                _, i = heapq.heappop(ready)
                try:
                    self._run_step(steps[i], inputs, input_pos, t_start)
                except Exception as e:  # a failing band names itself, here and at the peer
                    st = steps[i]
                    n, (a, b) = st.node, st.rows
                    msg = (
                        f"{self.side}: node {n.index} '{n.name}' ({n.op}) band {st.band + 1}/{st.bands} "
                        f"rows [{a}, {b}) raised {type(e).__name__}: {e}"
                    )
                    self.fail(msg, ABORT_OPERATOR, n, a, b)
                    raise ExecutionError(msg) from e
                done += 1
                for j in dependents[i]:
                    missing[j] -= 1
                    if missing[j] == 0:
                        heapq.heappush(ready, (steps[j].priority, j))
                for u in set(steps[i].node.inputs):
                    readers[u] -= 1
                    if readers[u] == 0 and u not in sched.keep:
                        self.whole.pop(u, None)
                        if u in self.stores:
                            with self.cv:
                                self.stores.pop(u, None)
                if self._arrived:
                    with self.cv:
                        new, self._arrived = self._arrived, []
                    arrived(new)
            result = None
            if self.side == ROBOT:
                want = set(sched.output_waits)
                while not want <= self.received:
                    self._wait_for_tiles(self._missing_tiles(sorted(want - self.received)))
                vals = {o: self._rows(o, (0, g.nodes[o].extent)) for o in g.output_indices}
                result = build_outputs(g.outputs, _Lookup(vals))
            with self.cv:
                if self.errors:
                    raise ExecutionError("; ".join(self.errors))
            return result
        except Exception as e:
            with self.cv:
                if self.failure is None:
                    self.failure = (ABORT_FAILED, None, 0, 0)
                    self.errors.append(f"{type(e).__name__}: {e}")
                cause, node, a, b = self.failure
                told = self._peer_told
            if not told:  # the peer learns at once, with the cause and where
                self._send(self.request_id, self.plan.plan_id, node, a, b, cause, FLAG_ABORT)
            if isinstance(e, ExecutionError):
                raise
            raise ExecutionError(f"{self.side} failed request {self.request_id}: {type(e).__name__}: {e}") from e
        finally:
            stats.total_s = time.perf_counter() - t_start
            with self.cv:
                self.stores.clear()
            self.whole.clear()

    def _blocked(self, steps: list[Any], missing: list[int]) -> tuple[str, tuple[Node | None, int, int]]:
        """What the side is waiting for (the first blocked steps' missing tiles), for a timeout message."""
        return self._missing_tiles([k for i, st in enumerate(steps) if missing[i] > 0 for k in st.waits])

    def _missing_tiles(self, keys: list[TileKey]) -> tuple[str, tuple[Node | None, int, int]]:
        gone: list[TileKey] = []
        for k in keys:
            if k not in self.received and k not in gone:
                gone.append(k)
            if len(gone) >= 4:
                break
        names = ", ".join(f"node {k[0]} '{self.g.nodes[k[0]].name}' rows [{k[1]}, {k[2]})" for k in gone)
        first = (self.g.nodes[gone[0][0]], gone[0][1], gone[0][2]) if gone else (None, 0, 0)
        return (f"tiles {names}" if names else "tiles"), first

    def _run_step(self, step: Any, inputs: Sequence[torch.Tensor], input_pos: dict[int, int], t_start: float) -> None:
        node = step.node
        a, b = step.rows
        stats = self.stats
        clock = time.perf_counter
        if node.is_input:
            out = inputs[input_pos[node.index]]
            if out.device != self.device:
                out = out.to(self.device)
            if node.axis is not None and (a, b) != (0, node.extent):
                out = narrow_rows(node, out, 0, a, b)
        else:
            if stats.first_compute_s < 0:
                stats.first_compute_s = clock() - t_start
            if step.local_whole:  # hot path: whole inputs are here
                pieces = [self.whole[u] for u in node.inputs]
                t0 = clock()
                rmap = node.rowmap
                out = (
                    rmap.run_inplace(pieces, self.constants)
                    if step.inplace
                    else rmap.call_whole(pieces, self.constants)
                )
            else:
                pieces = [self._rows(u, need) for u, need in zip(node.inputs, step.needs)]
                t0 = clock()
                out = node.rowmap.run(a, b, pieces, self.constants)
            stats.compute_s += clock() - t0
            del pieces
        stats.steps += 1
        if a == 0 and b == node.extent:
            self.whole[node.index] = out
        elif self.schedule.readers.get(node.index, 0) or node.index in self.schedule.keep:
            with self.cv:  # the receiver thread adds tiles concurrently
                store = self.stores.get(node.index)
                if store is None:
                    store = self.stores[node.index] = new_store(node)
                store.add(a, b, out)
        for s, e in step.sends:
            part = out if (s, e) == (a, b) else narrow_rows(node, out, a, s, e)
            self._send(self.request_id, self.plan.plan_id, node, s, e, part, 0)
            stats.tiles_out += 1
            stats.bytes_out += part.nbytes if node.is_sparse else (e - s) * node.bytes_per_row


# the name the rest of the code base has used for a stage
SideExecutor = Stage


class _Lookup:
    def __init__(self, vals: dict[int, Any]) -> None:
        self.vals = vals

    def __getitem__(self, i: int) -> Any:
        return self.vals[i]
