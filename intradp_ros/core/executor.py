"""The executor: one per side, the same code on the robot and on the server.

For its side of a plan, an executor walks the graph in topological order and computes each node's
assigned row range as one batched call. Every tile the plan sends is handed to a sender thread the
moment it exists (computation never waits for a send); incoming tiles are validated and stored as they
arrive, and a node waits only for the rows it needs. Pieces are combined by narrowing (no copy) when
one piece covers the rows, by one concatenation otherwise. Activations are dropped after their last
consumer on that side.

A lost, duplicated, unexpected or malformed tile is detected (the executor waits for what it needs up
to a timeout, then fails naming the missing rows; a duplicate or unexpected tile fails the request):
never merged into a wrong result.

`ClientHalf` (robot) and `ServerHalf` (server) wrap executors around one Transport; `run_pair` connects
both through an in-process transport.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from intradp_ros.core.codec import (
    DENSE_CODECS,
    SPARSE_CODECS,
    UNCOMPRESSED,
    choose_codec,
    choose_sparse_codec,
)  # [wire codecs]
from intradp_ros.core.codecs.camera import camera_payload  # [wire codecs]
from intradp_ros.core.graph import Graph, Node, Range, build_outputs
from intradp_ros.core.plan import DOWN, ROBOT, SERVER, UP, Plan
from intradp_ros.core.sparse import SparseRows, merge as merge_sparse, row_of as sparse_rows_of, rows as sparse_rows
from intradp_ros.core.tile import (
    CODEC_CAMERA,
    CODEC_SPARSE,
    FLAG_ABORT,
    FLAG_START,
    FLAGS_WITHOUT_PAYLOAD,
    Tile,
    TileError,
)
from intradp_ros.core.transport import Transport, TransportClosed, inprocess_pair

log = logging.getLogger(__name__)

AXIS_WHOLE = 255  # Tile.axis for a 0-d tensor; other unsplit tensors travel as all rows along axis 0


def wire_rows(node: Node, start: int, stop: int) -> tuple[int, int, int]:
    """(axis, row_start, row_stop) on the wire for plan rows [start, stop) of `node`. A node without a
    split axis has one plan row, the whole tensor: it travels as all rows of its axis 0."""
    if node.axis is not None:
        return node.axis, start, stop
    if len(node.shape) == 0:
        return AXIS_WHOLE, 0, 1
    return 0, 0, int(node.shape[0])


NUMPY_DTYPES = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.float64: "float64",
    torch.uint8: "uint8",
    torch.int8: "int8",
    torch.int16: "int16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.bool: "bool",
}


class ExecutionError(RuntimeError):
    """A request could not be completed (lost/duplicate/bad tile, peer abort, timeout)."""


def default_server_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------- per-device graph
_DEVICE_LOCK = threading.Lock()


def graph_on(graph: Graph, device: torch.device) -> tuple[Graph, dict[str, torch.Tensor]]:
    """The graph with its constants (and any module objects it calls) on `device`; cached on the graph."""
    device = torch.device(device)
    with _DEVICE_LOCK:
        cache = graph.__dict__.setdefault("_device_cache", {})
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


def _module_of(fn: Any) -> Optional[nn.Module]:
    if isinstance(fn, nn.Module):
        return fn
    inner = getattr(fn, "fn", None)
    return inner if isinstance(inner, nn.Module) else None


def _repick(pick: Any, module: nn.Module) -> Any:
    p = copy.copy(pick)
    p.fn = module
    return p


# ----------------------------------------------------------------------------------------- schedules
# Producers whose output is a fresh tensor (never a view or alias of another activation): an in-place
# consumer may overwrite it when it is that output's only reader.
FRESH_OPS = {
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "batch_norm",
    "layer_norm",
    "linear",
    "add",
    "sub",
    "mul",
    "div",
    "truediv",
    "cat",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "interpolate",
    "matmul",
    "relu",
    "silu",
    "gelu",
    "hardswish",
    "sigmoid",
    "hardsigmoid",
    "relu6",
    "leaky_relu",
}


@dataclass
class Step:
    node: Node
    rows: Range
    needs: list[Optional[Range]]
    sends: list[Range]
    free: list[int]
    inplace: bool = False
    local_whole: bool = False  # full range and every input held whole on this side: the plain call applies


@dataclass
class Schedule:
    """What one side does for a plan: steps in order, and the tiles it expects to receive."""

    side: str
    steps: list[Step]
    expected: set[tuple[int, int, int]]
    keep: set[int]


def build_schedule(plan: Plan, side: str) -> Schedule:
    g = plan.graph
    mine = plan.ranges(side)
    out_dir = UP if side == ROBOT else DOWN
    sends: dict[int, list[Range]] = {}
    expected: set[tuple[int, int, int]] = set()
    for t in plan.transfers():
        if t.direction == out_dir:
            sends.setdefault(t.node, []).append((t.start, t.stop))
        else:
            expected.add((t.node, t.start, t.stop))
    keep = set(g.output_indices) if side == ROBOT else set()
    steps: list[Step] = []
    last_use: dict[int, int] = {}
    for n in g.nodes:
        r = mine[n.index]
        if r[1] <= r[0]:
            continue
        needs = [] if n.is_input else g.input_rows(n, r)
        steps.append(Step(n, r, needs, sends.get(n.index, []), []))
        for u in n.inputs:
            last_use[u] = len(steps) - 1
    for u, i in last_use.items():
        if u not in keep:
            steps[i].free.append(u)
    computed_whole = {st.node.index for st in steps if st.rows == (0, st.node.extent)}
    for st in steps:
        st.local_whole = (
            not st.node.is_input and st.rows == (0, st.node.extent) and all(u in computed_whole for u in st.node.inputs)
        )
    for st in steps:
        n = st.node
        rmap = n.rowmap
        if n.is_input or rmap.inplace_call is None or st.rows != (0, n.extent) or not rmap.whole_ok:
            continue
        u = n.inputs[0]
        un = g.nodes[u]
        st.inplace = (
            st.local_whole
            and n.inputs.count(u) == 1
            and g.consumers(u) == [n.index]
            and u not in keep
            and un.op in FRESH_OPS
            and u in computed_whole
            and u not in sends
            and all(x[0] == 0 and x[1] == un.extent for x in [mine[u]])
            and not any(key[0] == u for key in expected)
            and u in st.free
        )
    return Schedule(side, steps, expected, keep)


def plan_schedule(plan: Plan, side: str) -> Schedule:
    cache = plan.__dict__.setdefault("_schedules", {})
    if side not in cache:
        cache[side] = build_schedule(plan, side)
    return cache[side]


# ----------------------------------------------------------------------------------------- row store
class RowStore:
    """The rows of one node held on one side: pieces (start, stop, tensor) from computation and tiles."""

    __slots__ = ("axis", "pieces")

    def __init__(self, axis: Optional[int]) -> None:
        self.axis = axis
        self.pieces: list[tuple[int, int, Any]] = []

    def add(self, start: int, stop: int, t: torch.Tensor) -> None:
        self.pieces.append((start, stop, t))

    def get(self, lo: int, hi: int) -> Optional[torch.Tensor]:
        """Rows [lo, hi) as a view when one piece holds them, one concatenation when several do, or
        None while some row is missing."""
        ax = self.axis
        for s, e, t in self.pieces:
            if s <= lo and hi <= e:
                if ax is None or (s == lo and e == hi):
                    return t
                return t.narrow(ax, lo - s, hi - lo)
        parts = []
        cur = lo
        for s, e, t in sorted(self.pieces, key=lambda p: p[0]):
            if s <= cur < e:
                stop = min(e, hi)
                parts.append(t.narrow(ax, cur - s, stop - cur))
                cur = stop
                if cur >= hi:
                    return torch.cat(parts, dim=ax)
        return None


class SparseRowStore(RowStore):
    """Rows of a sparse node (SparseRows pieces): narrowed by the rows of their positions, merged by position."""

    __slots__ = ()

    def get(self, lo: int, hi: int) -> Optional[SparseRows]:
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


class SideExecutor:
    """Runs one side of one request under one plan."""

    def __init__(
        self,
        graph: Graph,
        plan: Plan,
        side: str,
        request_id: int,
        send: Callable[[int, int, Node, int, int, Any, int], None],
        device: torch.device,
        timeout: float = 30.0,
    ) -> None:
        if plan.graph is not graph and plan.graph.fingerprint != graph.fingerprint:
            raise ExecutionError("plan was made for another graph")
        self.graph, self.plan, self.side, self.request_id = graph, plan, side, request_id
        self.device = torch.device(device)
        self.g, self.constants = graph_on(graph, self.device)
        self.schedule = plan_schedule(plan, side)
        self._send = send
        self.timeout = timeout
        self.cv = threading.Condition()
        self.stores: dict[int, RowStore] = {}  # partial rows and received tiles
        self.whole: dict[int, torch.Tensor] = {}  # outputs computed whole on this side
        self.received: set[tuple[int, int, int]] = set()
        self.errors: list[str] = []
        self.stats = RequestStats()

    # ---- incoming
    def deliver(self, tile: Tile) -> None:
        """Validate and store one incoming tile (any thread). Problems fail the request, never merge."""
        try:
            if tile.flags & FLAG_ABORT:
                raise ExecutionError(f"peer aborted request {tile.request_id}")
            piece = self._check(tile)
        except (TileError, ExecutionError) as e:
            log.error("request %d (%s): %s", self.request_id, self.side, e)
            with self.cv:
                self.errors.append(str(e))
                self.cv.notify_all()
            return
        with self.cv:
            key = self._key(tile)
            if key in self.received:
                self.errors.append(f"duplicate tile node {key[0]} rows [{key[1]}, {key[2]})")
                log.error("request %d (%s): %s", self.request_id, self.side, self.errors[-1])
            else:
                self.received.add(key)
                store = self.stores.get(tile.node_id)
                if store is None:
                    store = self.stores[tile.node_id] = new_store(self.g.nodes[tile.node_id])
                store.add(key[1], key[2], piece)
                self.stats.tiles_in += 1
                self.stats.bytes_in += tile.nbytes
            self.cv.notify_all()

    def _check(self, tile: Tile) -> torch.Tensor:
        if tile.request_id != self.request_id:
            raise TileError("request_id", f"{tile.request_id} is not the running request {self.request_id}")
        if tile.plan_id != self.plan.plan_id:
            raise TileError("plan_id", f"{tile.plan_id} is not the request's plan {self.plan.plan_id}")
        if not 0 <= tile.node_id < len(self.g.nodes):
            raise TileError("node_id", f"{tile.node_id} not in graph ({len(self.g.nodes)} nodes)")
        key = self._key(tile)
        if key not in self.schedule.expected:
            raise TileError(
                "row_start", f"unexpected tile node {key[0]} rows [{key[1]}, {key[2]}) under plan {self.plan.name}"
            )
        node = self.g.nodes[tile.node_id]
        want = wire_rows(node, key[1], key[2]) if node.axis is not None else wire_rows(node, 0, 1)
        if (tile.axis, tile.row_start, tile.row_stop) != want:
            raise TileError(
                "axis",
                f"axis/rows {tile.axis} [{tile.row_start}, {tile.row_stop}) do not match node "
                f"{node.index} (expected {want})",
            )
        if node.is_sparse:
            return self._check_sparse(tile, node, key)
        if tile.codec not in DENSE_CODECS:  # [wire codecs] any dense codec arrives decoded by the transport
            raise TileError("codec", f"codec {tile.codec} is not one of node {node.index}'s")
        data = tile.data
        if not isinstance(data, np.ndarray):
            raise TileError("data", "not a numpy array")
        want = NUMPY_DTYPES.get(node.dtype)
        if data.dtype.name != want:
            raise TileError("dtype", f"{data.dtype.name} != {want}")
        shape = node.row_shape(key[1], key[2])
        if tuple(data.shape) != tuple(shape):
            raise TileError("shape", f"{tuple(data.shape)} != {tuple(shape)}")
        if not data.flags.writeable:
            data = data.copy()
        t = torch.from_numpy(data)
        return t.to(self.device, non_blocking=False) if self.device.type != "cpu" else t

    def _check_sparse(self, tile: Tile, node: Node, key: tuple[int, int, int]) -> SparseRows:
        """A sparse tile: entries of the node's dtype and feature shape, one position each, ascending, every
        position inside the node's mask and inside the tile's rows."""
        if tile.codec not in SPARSE_CODECS or tile.index is None:  # [wire codecs]
            raise TileError("codec", f"node {node.index} is sparse: codec {CODEC_SPARSE} with positions expected")
        data, index = tile.data, tile.index
        if not isinstance(data, np.ndarray) or not isinstance(index, np.ndarray):
            raise TileError("data", "not numpy arrays")
        if data.dtype.name != NUMPY_DTYPES.get(node.dtype):
            raise TileError("dtype", f"{data.dtype.name} != {NUMPY_DTYPES.get(node.dtype)}")
        mask_shape = tuple(node.shape[: node.sparse_rank])
        feat = tuple(node.shape[node.sparse_rank :])
        if data.ndim != 1 + len(feat) or tuple(data.shape[1:]) != feat or index.shape != (data.shape[0],):
            raise TileError("shape", f"entries {data.shape} / positions {index.shape} do not fit [n, *{list(feat)}]")
        idx = torch.from_numpy(index.astype(np.int64, copy=True))
        if idx.numel():
            total = int(np.prod(mask_shape))
            if bool((idx[1:] <= idx[:-1]).any()) or int(idx[0]) < 0 or int(idx[-1]) >= total:
                raise TileError("data", "sparse positions are not ascending inside the node's mask")
            sr = SparseRows(idx, torch.empty(0), mask_shape)
            r = sparse_rows_of(sr, node.axis or 0)
            if int(r.min()) < key[1] or int(r.max()) >= key[2]:
                raise TileError("data", f"sparse positions outside rows [{key[1]}, {key[2]})")
        vals = torch.from_numpy(data if data.flags.writeable else data.copy())
        out = SparseRows(idx, vals, mask_shape, node.density)
        return out.to(self.device) if self.device.type != "cpu" else out

    def _key(self, tile: Tile) -> tuple[int, int, int]:
        """(node, plan rows) of a tile: unsplit nodes' whole-tensor tiles are plan rows [0, 1)."""
        if 0 <= tile.node_id < len(self.g.nodes) and self.g.nodes[tile.node_id].axis is None:
            return (tile.node_id, 0, 1)
        return (tile.node_id, tile.row_start, tile.row_stop)

    # ---- fetching rows
    def _rows(self, u: int, need: Optional[Range]) -> torch.Tensor:
        node = self.g.nodes[u]
        if need is None:
            return torch.empty(node.row_shape(0, 0), dtype=node.dtype, device=self.device)
        lo, hi = need
        t = self.whole.get(u)
        if t is not None:
            if node.axis is None or (lo == 0 and hi == node.extent):
                return t
            return narrow_rows(node, t, 0, lo, hi)
        store = self.stores.get(u)
        if store is not None:
            t = store.get(lo, hi)
            if t is not None:
                return t
        deadline = time.perf_counter() + self.timeout
        t0 = time.perf_counter()
        with self.cv:
            while True:
                if self.errors:
                    raise ExecutionError("; ".join(self.errors))
                store = self.stores.get(u)
                t = store.get(lo, hi) if store is not None else None
                if t is not None:
                    self.stats.wait_s += time.perf_counter() - t0
                    return t
                left = deadline - time.perf_counter()
                if left <= 0:
                    have = [(s, e) for s, e, _ in store.pieces] if store is not None else []
                    raise ExecutionError(
                        f"tile lost: {self.side} waited {self.timeout:.1f}s for rows [{lo}, {hi}) "
                        f"of node {u} '{node.name}' (has {have})"
                    )
                self.cv.wait(left)

    # ---- the run
    def run(self, inputs: Sequence[torch.Tensor] = ()) -> Any:
        """Compute this side's rows; on the robot return the model outputs."""
        t_start = time.perf_counter()
        g = self.g
        consts = self.constants
        whole = self.whole
        stats = self.stats
        clock = time.perf_counter
        input_pos = {idx: i for i, idx in enumerate(g.input_indices)}
        if self.side == ROBOT and self.plan.server_needs_start():
            # The server half starts on the request's first tile; this plan sends it none (its server rows
            # need no input, e.g. rows made of padding only), so announce the request.
            self._send(self.request_id, self.plan.plan_id, None, 0, 0, None, FLAG_START)
        try:
            for step in self.schedule.steps:
                node = step.node
                a, b = step.rows
                if step.local_whole:  # hot path: whole inputs are here
                    pieces = [whole[u] for u in node.inputs]
                    t0 = clock()
                    out = (
                        node.rowmap.run_inplace(pieces, consts)
                        if step.inplace
                        else node.rowmap.call_whole(pieces, consts)
                    )
                    stats.compute_s += clock() - t0
                    del pieces
                elif node.is_input:
                    out = inputs[input_pos[node.index]]
                    if out.device != self.device:
                        out = out.to(self.device)
                    if node.axis is not None and (a, b) != (0, node.extent):
                        out = narrow_rows(node, out, 0, a, b)
                else:
                    pieces = [self._rows(u, need) for u, need in zip(node.inputs, step.needs)]
                    t0 = clock()
                    out = node.rowmap.run(a, b, pieces, consts)
                    stats.compute_s += clock() - t0
                    del pieces
                if a == 0 and b == node.extent:
                    whole[node.index] = out
                else:
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
                for u in step.free:
                    whole.pop(u, None)
                    if u in self.stores:
                        with self.cv:
                            self.stores.pop(u, None)
            result = None
            if self.side == ROBOT:
                vals: dict[int, torch.Tensor] = {}
                for o in g.output_indices:
                    vals[o] = self._rows(o, (0, g.nodes[o].extent))
                result = build_outputs(g.outputs, _Lookup(vals))
            with self.cv:
                if self.errors:
                    raise ExecutionError("; ".join(self.errors))
            return result
        except Exception:
            self._send(self.request_id, self.plan.plan_id, None, 0, 0, None, FLAG_ABORT)
            raise
        finally:
            stats.total_s = time.perf_counter() - t_start
            self.stores.clear()
            whole.clear()


class _Lookup:
    def __init__(self, vals: dict[int, Any]) -> None:
        self.vals = vals

    def __getitem__(self, i: int) -> Any:
        return self.vals[i]


# ----------------------------------------------------------------------------------------- halves
class _Sender:
    """The sender thread of one half: turns queued tensors into Tiles (CPU numpy) and sends them in order."""

    def __init__(self, transport: Transport, robot: str = "", codecs: Collection[int] = UNCOMPRESSED) -> None:
        self.transport = transport
        self.robot = robot
        self.codecs = frozenset(codecs)  # [wire codecs] the codecs choose_codec may pick for this sender
        self.q: "queue.Queue[Any]" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="intradp-sender", daemon=True)
        self.thread.start()

    def __call__(
        self, request_id: int, plan_id: int, node: Optional[Node], start: int, stop: int, t: Any, flags: int
    ) -> None:
        self.q.put((request_id, plan_id, node, start, stop, t, flags))

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            request_id, plan_id, node, start, stop, t, flags = item
            if flags & FLAGS_WITHOUT_PAYLOAD:
                tile = Tile(request_id, plan_id, 0, 0, 0, 0, np.zeros(0, np.uint8), flags=flags, robot=self.robot)
            elif isinstance(t, SparseRows):
                axis, w0, w1 = wire_rows(node, start, stop)
                tile = Tile(
                    request_id,
                    plan_id,
                    node.index,
                    axis,
                    w0,
                    w1,
                    t.values.detach().cpu().contiguous().numpy(),
                    choose_sparse_codec(self.codecs),  # [wire codecs]
                    flags,
                    self.robot,
                    index=t.index.cpu().numpy(),
                )
            else:
                data = t.detach()
                if data.device.type != "cpu":
                    data = data.cpu()
                arr = data.contiguous().numpy()
                axis, w0, w1 = wire_rows(node, start, stop)
                codec = choose_codec(node, arr, self.codecs, source=t)  # [wire codecs]
                encoded = camera_payload(t) if codec == CODEC_CAMERA else None  # [wire codecs]
                tile = Tile(
                    request_id, plan_id, node.index, axis, w0, w1, arr, codec, flags, self.robot, encoded=encoded
                )
            try:
                self.transport.send(tile)
            except TransportClosed:
                return
            except Exception as e:  # noqa: BLE001 - a failing link must not kill the sender thread
                log.error("sending tile of node %s failed: %s", tile.node_id, e)

    def close(self, timeout: float = 5.0) -> None:
        self.q.put(None)
        self.thread.join(timeout)


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

    def __init__(
        self, graph: Graph, transport: Transport, device: Any = "cpu", timeout: float = 30.0, robot: str = ""
    ) -> None:
        self.graph, self.transport, self.device, self.timeout = graph, transport, torch.device(device), timeout
        self.sender = _Sender(transport, robot)
        self._current: Optional[SideExecutor] = None
        self._lock = threading.Lock()
        self._next_id = 1
        self._stop = False
        self.last_stats: Optional[RequestStats] = None
        self._rx = threading.Thread(target=self._recv_loop, name="intradp-client-rx", daemon=True)
        self._rx.start()

    def _recv_loop(self) -> None:
        for tile in incoming_tiles(self.transport, lambda: self._stop):
            with self._lock:
                ex = self._current
            if ex is None or tile.request_id != ex.request_id:
                log.warning("client: dropped tile of request %d (not running)", tile.request_id)
                continue
            ex.deliver(tile)

    # The executor class of a request; subclasses (the ROS client's recording executor) swap it.
    executor_type: type = SideExecutor

    def infer(self, plan: Plan, *inputs: torch.Tensor) -> Any:
        """One distributed inference under `plan`; returns what the model returns."""
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            ex = self.executor_type(self.graph, plan, ROBOT, rid, self.sender, self.device, self.timeout)
            self._current = ex
        self._started(ex)
        try:
            with torch.no_grad():
                return ex.run(inputs)
        finally:
            with self._lock:
                self._current = None
            self._finished(ex)

    def _started(self, ex: SideExecutor) -> None:
        """Hook: a request is about to run."""

    def _finished(self, ex: SideExecutor) -> None:
        """Hook: a request ended (successfully or not)."""
        self.last_stats = ex.stats

    def close(self) -> None:
        self._stop = True
        self.sender.close()
        self.transport.close()
        self._rx.join(2.0)


class ServerHalf:
    """The server half: starts an executor when the first tile of a new request arrives (its plan id
    names the plan), feeds it the request's tiles, and drops tiles of unknown plans or past requests."""

    def __init__(
        self,
        graph: Graph,
        transport: Transport,
        plans: Sequence[Plan] = (),
        device: Any = None,
        timeout: float = 30.0,
        allow_tf32: bool = False,
    ) -> None:
        self.graph, self.transport, self.timeout = graph, transport, timeout
        self.device = torch.device(device) if device is not None else default_server_device()
        if self.device.type == "cuda" and not allow_tf32 and torch.backends.cudnn.allow_tf32:
            # cuDNN convolutions default to TF32 (~1e-3 relative error); the server's rows must match the
            # robot's float32 rows, so the server process computes in full float32 unless told otherwise.
            torch.backends.cudnn.allow_tf32 = False
            log.info("server: cuDNN TF32 disabled for float32-exact rows (allow_tf32=True to keep it)")
        self.plans: dict[int, Plan] = {}
        for p in plans:
            self.add_plan(p)
        self.sender = _Sender(transport)
        self._active: dict[int, SideExecutor] = {}
        self._done: set[int] = set()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._stop = False
        self.completed = 0
        self.failed = 0
        self.last_stats: Optional[RequestStats] = None
        graph_on(graph, self.device)  # move constants once, before the first request
        self._rx = threading.Thread(target=self._recv_loop, name="intradp-server-rx", daemon=True)
        self._rx.start()

    def add_plan(self, plan: Plan) -> None:
        if plan.graph.fingerprint != self.graph.fingerprint:
            raise ExecutionError(f"plan {plan.name} was made for another graph")
        self.plans[plan.plan_id] = plan

    def _recv_loop(self) -> None:
        for tile in incoming_tiles(self.transport, lambda: self._stop):
            with self._lock:
                ex = self._active.get(tile.request_id)
                if ex is None:
                    if tile.request_id in self._done or tile.flags & FLAG_ABORT:
                        log.warning("server: dropped tile of finished request %d", tile.request_id)
                        continue
                    plan = self.plans.get(tile.plan_id)
                    if plan is None:
                        log.error("server: dropped tile with unknown plan id %d", tile.plan_id)
                        self.sender(tile.request_id, tile.plan_id, None, 0, 0, None, FLAG_ABORT)
                        self._done.add(tile.request_id)
                        continue
                    ex = SideExecutor(self.graph, plan, SERVER, tile.request_id, self.sender, self.device, self.timeout)
                    self._active[tile.request_id] = ex
                    w = threading.Thread(
                        target=self._work, args=(ex,), name=f"intradp-server-{tile.request_id}", daemon=True
                    )
                    self._workers = [t for t in self._workers if t.is_alive()] + [w]
                    w.start()
            if not tile.flags & FLAG_START:
                ex.deliver(tile)

    def _work(self, ex: SideExecutor) -> None:
        try:
            with torch.no_grad():
                ex.run()
            self.completed += 1
            self.last_stats = ex.stats
        except Exception as e:  # noqa: BLE001 - a failed request must not stop the server
            self.failed += 1
            log.error("server: request %d failed: %s", ex.request_id, e)
        finally:
            with self._lock:
                self._active.pop(ex.request_id, None)
                self._done.add(ex.request_id)
                if len(self._done) > 10000:
                    self._done = set(sorted(self._done)[-1000:])

    def close(self) -> None:
        self._stop = True
        self.sender.close()
        self.transport.close()
        self._rx.join(2.0)
        for w in self._workers:
            w.join(2.0)


def run_pair(
    g: Graph,
    plan: Plan,
    *inputs: torch.Tensor,
    bandwidth_bytes_per_s: Optional[float] = None,
    server_device: Any = None,
    timeout: float = 30.0,
) -> Any:
    """Run the robot half and the server half of `plan` concurrently, connected by an in-process
    transport (optionally throttled), through the executor code the ROS nodes use."""
    robot_end, server_end = inprocess_pair(bandwidth_bytes_per_s)
    server = ServerHalf(g, server_end, [plan], device=server_device, timeout=timeout)
    client = ClientHalf(g, robot_end, device=inputs[0].device if inputs else "cpu", timeout=timeout)
    try:
        return client.infer(plan, *inputs)
    finally:
        client.close()
        server.close()
