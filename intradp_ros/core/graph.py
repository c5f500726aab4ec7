"""The operator DAG that plans, the scheduler and the executors share.

A `Graph` is a list of `Node`s in topological order. Every node produces one tensor, has a split axis
(the "rows" a plan cuts; `None` when the tensor cannot be cut, then it has one row: the whole tensor)
and a `RowMap` (from `rules.py`) that knows exactly which input rows an output row range needs and how
to compute that range. Graph inputs are nodes too (`op == "input"`, kind `elementwise`): they are what
the robot holds, and what a server-only plan sends as raw rows.

Build graphs with `intradp_ros.core.capture(model, *example_inputs)`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from intradp_ros.core.vocabulary import OpKind

KINDS = tuple(OpKind)
LOCAL_KINDS = (OpKind.ELEMENTWISE, OpKind.BLOCK, OpKind.ROW)  # row-splittable: computed in tiles

Range = tuple[int, int]


@dataclass(frozen=True)
class NodeRef:
    """Placeholder in a node's args for its `pos`-th tensor input (`node.inputs[pos]`)."""

    pos: int


@dataclass(frozen=True)
class ConstRef:
    """Placeholder in a node's args for `graph.constants[key]` (weights, buffers, folded tensors)."""

    key: str


@dataclass(frozen=True)
class OutRef:
    """Placeholder in `graph.outputs` for the output of node `index`."""

    index: int


@dataclass
class Node:
    """One operator: what it computes, on which rows, and what it needs.

    Fields the scheduler relies on: `index`, `name`, `kind`, `inputs` (node indices, one per tensor
    argument, duplicates allowed), `shape`, `dtype`, `axis`, `extent`, `bytes_per_row`; `reason` says
    why a global node is global.
    """

    index: int
    name: str
    op: str
    kind: str
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype
    axis: int | None
    extent: int
    reason: str = ""
    fn: Callable[..., Any] | None = field(default=None, repr=False)
    args: tuple[Any, ...] = field(default=(), repr=False)
    kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    rowmap: Any = field(default=None, repr=False)
    sparse_rank: int = 0  # > 0: the value is SparseRows over a mask of this rank (core/sparse.py)
    density: float | None = None  # sparse nodes: expected survivor share (cost model hint)
    binary: bool = False  # graph input of 0/1 values: travels bit-packed (CODEC_BITPACK)

    @property
    def is_sparse(self) -> bool:
        return self.sparse_rank > 0

    @property
    def nbytes(self) -> int:
        n = 1
        for s in self.shape:
            n *= int(s)
        return n * _itemsize(self.dtype)

    @property
    def bytes_per_row(self) -> int:
        """Bytes of one row along the split axis (the whole tensor when it has no split axis); for a sparse
        node the expected bytes of its survivors (density x positions x entry size)."""
        if self.is_sparse:
            from intradp_ros.core.sparse import DEFAULT_DENSITY, bytes_per_row

            density = self.density if self.density is not None else DEFAULT_DENSITY
            return bytes_per_row(
                self.shape[: self.sparse_rank],
                self.shape[self.sparse_rank :],
                _itemsize(self.dtype),
                self.axis or 0,
                density,
            )
        if self.binary:
            return -(-self.nbytes // (8 * _itemsize(self.dtype) * max(self.extent, 1)))
        return self.nbytes // max(self.extent, 1)

    @property
    def wire_nbytes(self) -> int:
        """Bytes the whole output costs on the link (packed / expected survivors where it does not travel dense)."""
        return self.bytes_per_row * max(self.extent, 1) if (self.is_sparse or self.binary) else self.nbytes

    @property
    def is_input(self) -> bool:
        return self.op == "input"

    @property
    def is_local(self) -> bool:
        return self.kind in LOCAL_KINDS

    def row_shape(self, start: int, stop: int) -> tuple[int, ...]:
        """Shape of rows [start, stop) of this node's output."""
        if self.axis is None:
            return self.shape
        s = list(self.shape)
        s[self.axis] = stop - start
        return tuple(s)


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass
class Graph:
    """Operator DAG in topological order with shapes, dtypes, split axes and row maps."""

    nodes: list[Node]
    constants: dict[str, torch.Tensor]
    outputs: Any  # nested tuple/list/dict of OutRef / python values
    input_indices: tuple[int, ...]  # node indices of the graph inputs, in call order
    method: str = "fx"  # how it was captured: "fx" or "dispatch"
    _fingerprint: str = field(default="", repr=False)
    _consumers: list[list[int]] | None = field(default=None, repr=False)
    _input_rows_memo: dict[tuple[int, int, int], tuple[Range | None, ...]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    def input_rows(self, node: int | Node, rows: Range) -> list[Range | None]:
        """For output rows [start, stop) of `node`: the exact rows needed of each input (one entry per
        `node.inputs` position; None where no row of that input is needed)."""
        n = self.nodes[node] if isinstance(node, int) else node
        start, stop = int(rows[0]), int(rows[1])
        # Memoised: row maps are pure, and the solver asks the same questions hundreds of thousands of times.
        key = (n.index, start, stop)
        hit = self._input_rows_memo.get(key)
        if hit is None:
            if not 0 <= start < stop <= n.extent:
                raise ValueError(f"rows [{start}, {stop}) outside node {n.index} '{n.name}' (extent {n.extent})")
            hit = self._input_rows_memo[key] = tuple(n.rowmap.need(start, stop))
        return list(hit)

    @property
    def output_indices(self) -> list[int]:
        """Node indices whose values appear in the model's output (in order of appearance, unique)."""
        found: list[int] = []
        for ref in iter_refs(self.outputs, OutRef):
            if ref.index not in found:
                found.append(ref.index)
        return found

    def consumers(self, index: int) -> list[int]:
        """Indices of the nodes that read node `index`."""
        if self._consumers is None:
            cons: list[list[int]] = [[] for _ in self.nodes]
            for n in self.nodes:
                for u in set(n.inputs):
                    cons[u].append(n.index)
            self._consumers = cons
        return self._consumers[index]

    @property
    def fingerprint(self) -> str:
        """Hash of the structure (ops, inputs, shapes, dtypes, axes, kinds): plans name the graph they fit."""
        if not self._fingerprint:
            desc = [[n.op, list(n.inputs), list(n.shape), str(n.dtype), n.axis, n.kind] for n in self.nodes]
            text = json.dumps({"nodes": desc, "outputs": self.output_indices}, separators=(",", ":"))
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._fingerprint

    def counts(self) -> dict[str, int]:
        """Operator counts per kind (graph inputs excluded)."""
        out: dict[str, int] = {k: 0 for k in KINDS}
        for n in self.nodes:
            if not n.is_input:
                out[n.kind] += 1
        return out

    def run_local(self, *inputs: torch.Tensor) -> Any:
        """Evaluate the whole graph on one device (reference path, used to check captures)."""
        values: list[torch.Tensor | None] = [None] * len(self.nodes)
        for pos, idx in enumerate(self.input_indices):
            values[idx] = inputs[pos]
        for n in self.nodes:
            if n.is_input:
                continue
            needs = n.rowmap.need(0, n.extent)
            args = [_rows_of(values[u], self.nodes[u], r) for u, r in zip(n.inputs, needs)]
            values[n.index] = n.rowmap.run(0, n.extent, args, self.constants)
        return build_outputs(self.outputs, values)


def _rows_of(t: Any, node: Node, rows: Range | None) -> Any:
    """Rows `rows` of a whole tensor `t` (node's output), as the executors hand them to row maps."""
    if node.axis is None or (node.is_sparse and rows == (0, node.extent)):
        return t
    if node.is_sparse:
        from intradp_ros.core.sparse import rows as sparse_rows

        lo, hi = rows if rows is not None else (0, 0)
        return sparse_rows(t, node.axis, lo, hi)
    if rows is None:
        return t.narrow(node.axis, 0, 0)
    if rows == (0, node.extent):
        return t
    return t.narrow(node.axis, rows[0], rows[1] - rows[0])


def iter_refs(obj: Any, cls: type) -> Any:
    """Yield every instance of `cls` inside a nested tuple/list/dict structure."""
    if isinstance(obj, cls):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from iter_refs(o, cls)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from iter_refs(o, cls)


class IndexedValues(Protocol):
    """Node values by node index: a sequence, or a lookup over the output nodes only."""

    def __getitem__(self, index: int, /) -> Any: ...


def build_outputs(structure: Any, values: IndexedValues) -> Any:
    """Replace every OutRef in `structure` by its node's value (keeps tuple/list/dict shape)."""
    if isinstance(structure, OutRef):
        return values[structure.index]
    if isinstance(structure, tuple):
        items = [build_outputs(o, values) for o in structure]
        return type(structure)(*items) if hasattr(structure, "_fields") else tuple(items)
    if isinstance(structure, list):
        return [build_outputs(o, values) for o in structure]
    if isinstance(structure, dict):
        return {k: build_outputs(v, values) for k, v in structure.items()}
    return structure
