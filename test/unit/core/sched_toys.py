"""Small hand-built graphs for the scheduler tests (no dependence on graph capture).

`toy_graph(ops, x)` builds a Graph from functional calls through the engine's own operator rules
(`rules.analyze`), so row arithmetic is the real one; `uniform_profile(g, ...)` makes synthetic profiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from intradp_ros.core import rowmaps as rm
from intradp_ros.core.graph import ConstRef, Graph, Node, NodeRef, OutRef
from intradp_ros.core.profiler import NodeProfile, Profile
from intradp_ros.core.rules import Ctx, analyze, fresh_axis


def toy_graph(
    ops: Sequence[tuple[str, Any, tuple[int, ...], tuple, dict]],
    x: torch.Tensor,
    constants: dict[str, torch.Tensor] | None = None,
    outputs: Sequence[int] | None = None,
) -> Graph:
    """ops: (op name, fn, input node indices, args with NodeRef/ConstRef placeholders, kwargs)."""
    consts = dict(constants or {})
    ax = fresh_axis(x)
    e = 1 if ax is None else int(x.shape[ax])
    nodes = [
        Node(0, "x", "input", "elementwise", (), tuple(x.shape), x.dtype, ax, e, rowmap=rm.RowMap(None, (), {}, [], e))
    ]
    values: list[Any] = [x]
    for name, fn, ins, args, kwargs in ops:
        pieces = [values[i] for i in ins]
        value = fn(*rm.bind(args, pieces, consts), **rm.bind(kwargs, pieces, consts))
        op = fn.__name__
        c = Ctx(op, fn, args, kwargs, [nodes[i] for i in ins], consts, value)
        a = analyze(c)
        nodes.append(
            Node(
                len(nodes),
                name,
                op,
                a.kind,
                tuple(ins),
                tuple(value.shape),
                value.dtype,
                a.axis,
                a.rowmap.extent,
                a.reason,
                fn,
                args,
                kwargs,
                a.rowmap,
            )
        )
        values.append(value)
    outs = list(outputs) if outputs is not None else [len(nodes) - 1]
    out_struct = OutRef(outs[0]) if len(outs) == 1 else tuple(OutRef(o) for o in outs)
    return Graph(nodes, consts, out_struct, (0,))


def conv_chain(n_convs: int = 3, h: int = 16, c: int = 4, seed: int = 0) -> tuple[Graph, torch.Tensor]:
    """x -> conv3x3 -> relu -> ... (n_convs convolutions), rows = image rows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, h, h, generator=g)
    consts, ops = {}, []
    prev = 0
    for i in range(n_convs):
        consts[f"w{i}"] = torch.randn(c, c, 3, 3, generator=g) * 0.2
        ops.append((f"conv{i}", F.conv2d, (prev,), (NodeRef(0), ConstRef(f"w{i}")), {"padding": 1}))
        prev = len(ops)
        ops.append((f"relu{i}", F.relu, (prev,), (NodeRef(0),), {}))
        prev = len(ops)
    return toy_graph(ops, x, consts), x


def uniform_profile(
    g: Graph, per_row_s: Sequence[float] | float, fixed_s: float = 0.0, overhead_s: float = 0.0, name: str = "toy"
) -> Profile:
    """Profile with t(r) = fixed_s + per_row_s[v] * r for every non-input node."""
    per = [per_row_s] * len(g.nodes) if isinstance(per_row_s, (int, float)) else list(per_row_s)
    nodes = [
        NodeProfile([n.extent], [0.0], 0.0, 0.0)
        if n.is_input
        else NodeProfile([n.extent], [fixed_s + per[n.index] * n.extent], fixed_s, per[n.index])
        for n in g.nodes
    ]
    return Profile(
        g.fingerprint,
        {"name": name},
        nodes,
        [n.bytes_per_row for n in g.nodes],
        overhead_s,
        [n.extent for n in g.nodes],
    )
