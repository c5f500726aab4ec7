"""Operator rules: one table from operator name to its kind and exact row arithmetic.

`analyze(ctx)` looks the operator up in `RULES` and returns its kind (`elementwise`, `block`, `row`,
`global`), the split axis of its output and a `RowMap` (rowmaps.py) that maps output rows to input
rows and computes row ranges. An operator that is not in the table, or that mixes the split axis,
is global: computed whole on one side (correct, never silently wrong), with the reason recorded.

To support a new operator, add a function `(ctx) -> Analysis` to `RULES` under its name (the
`__name__` of the function/method called, or the module class name lower-cased).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from intradp_ros.core import rowmaps as rm
from intradp_ros.core.graph import ConstRef, Node, NodeRef, iter_refs
from intradp_ros.core.vocabulary import OpKind


@dataclass
class Ctx:
    """What a rule sees: the call (placeholders for tensors), the input nodes per NodeRef position,
    the constants and the output value from the example run."""

    op: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    ins: list[Node]
    constants: dict[str, torch.Tensor]
    value: Any

    def arg(self, i: int, name: str, default: Any = None) -> Any:
        if name in self.kwargs:
            return self.kwargs[name]
        if i < len(self.args):
            return self.args[i]
        return default

    def tensor(self, ref: Any) -> torch.Tensor | None:
        if isinstance(ref, ConstRef):
            return self.constants[ref.key]
        return None

    @property
    def in_extents(self) -> list[int]:
        return [n.extent for n in self.ins]

    @property
    def x(self) -> Node | None:
        """The node behind the first argument, if it is a graph tensor."""
        a0 = self.args[0] if self.args else None
        return self.ins[a0.pos] if isinstance(a0, NodeRef) else None


@dataclass
class Analysis:
    kind: str
    axis: int | None
    rowmap: rm.RowMap
    reason: str = ""


def fresh_axis(value: Any) -> int | None:
    """Split axis for a tensor whose rows are not inherited: dim 2 (rows of NCHW / NCDHW) when it exists."""
    if isinstance(value, torch.Tensor) and value.dim() >= 3 and value.shape[2] > 1:
        return 2
    return None


def extent_of(value: Any, axis: int | None) -> int:
    if axis is None:
        return 1
    shape = getattr(value, "mask_shape", None)  # SparseRows: rows are the mask's
    return int((shape if shape is not None else value.shape)[axis])


def whole(c: Ctx, kind: str, reason: str = "", axis: Any = "fresh") -> Analysis:
    """Computed whole. `axis=None` asks for an unsplit output; if the output does have rows of its own
    (e.g. a reshape of a vector into a map), they start here: the node is global so later ops can split."""
    ax = fresh_axis(c.value) if axis == "fresh" else axis
    if axis is None and kind != OpKind.GLOBAL and fresh_axis(c.value) is not None:
        ax, kind = fresh_axis(c.value), OpKind.GLOBAL
        reason = reason or "its inputs have no split axis; output rows start here"
    return Analysis(kind, ax, rm.Whole(c.fn, c.args, c.kwargs, c.in_extents, extent_of(c.value, ax)), reason)


def glob(c: Ctx, reason: str) -> Analysis:
    return whole(c, OpKind.GLOBAL, reason)


def any_split(c: Ctx) -> bool:
    return any(n.axis is not None for n in c.ins)


# ------------------------------------------------------------------------------------- same-rows ops
DimMap = Callable[[int, int, int], int | None]  # (position, input axis, input rank) -> output dim


def right_aligned(c: Ctx) -> DimMap:
    out_rank = c.value.dim()
    return lambda pos, axis, rank: axis + out_rank - rank


def same_rows(c: Ctx, kind: str, dim_map: DimMap, broadcast: bool, what: str = "") -> Analysis:
    """Output row i from row i of the split inputs (mapped to the output dim by `dim_map`)."""
    v = c.value
    if not isinstance(v, torch.Tensor):
        return glob(c, "output is not a tensor")
    out_axis: int | None = None
    aligned: list[bool] = []
    for pos, n in enumerate(c.ins):
        if n.axis is None:
            aligned.append(False)
            continue
        k = dim_map(pos, n.axis, len(n.shape))
        if k is None:
            return glob(c, what or f"{c.op} mixes the split axis")
        if out_axis is not None and k != out_axis:
            return glob(c, f"{c.op}: inputs are split along different output dims")
        out_axis = k
        aligned.append(True)
    if out_axis is None:
        return whole(c, kind, axis=None)
    e = int(v.shape[out_axis])
    for pos, n in enumerate(c.ins):
        if aligned[pos] and n.extent != e:
            return glob(c, f"{c.op}: input rows ({n.extent}) do not map one-to-one onto output rows ({e})")
    if e <= 1:
        return whole(c, kind, axis=None)
    slices: dict[Any, int] = {}
    if broadcast:
        refs = [r for r in iter_refs((c.args, c.kwargs), NodeRef) if not aligned[r.pos]] + list(
            iter_refs((c.args, c.kwargs), ConstRef)
        )
        for ref in refs:
            t = c.constants[ref.key] if isinstance(ref, ConstRef) else None
            shape = tuple(t.shape) if t is not None else c.ins[ref.pos].shape
            d = out_axis - (v.dim() - len(shape))
            if d >= 0 and shape[d] == e:
                slices[ref] = d
            elif d >= 0 and shape[d] != 1:
                return glob(c, f"{c.op}: an operand's dim {d} ({shape[d]}) neither matches nor broadcasts")
    return Analysis(kind, out_axis, rm.SameRows(c.fn, c.args, c.kwargs, c.in_extents, e, aligned, slices))


def elementwise(c: Ctx) -> Analysis:
    return same_rows(c, OpKind.ELEMENTWISE, right_aligned(c), True)


def unary_same(c: Ctx) -> Analysis:
    """Single-tensor ops that keep the shape (activations, casts, inference norms)."""
    if not isinstance(c.value, torch.Tensor):
        return glob(c, "output is not a tensor")
    return same_rows(c, OpKind.ELEMENTWISE, right_aligned(c), True)


def training_flag(c: Ctx, i: int, name: str, default: bool) -> Analysis:
    if bool(c.arg(i, name, default)):
        return glob(c, f"{c.op} in training mode is random / uses batch statistics")
    return unary_same(c)


def batch_norm(c: Ctx) -> Analysis:
    if bool(c.arg(5, "training", False)):
        return glob(c, "batch_norm in training mode uses batch statistics over all rows")
    x = c.x
    if x is not None and x.axis == 1:
        return glob(c, "batch_norm along the split axis (channels)")
    return same_rows(c, OpKind.ELEMENTWISE, right_aligned(c), False)


def layer_norm(c: Ctx) -> Analysis:
    ns = c.arg(1, "normalized_shape")
    ns = [ns] if isinstance(ns, int) else list(ns)
    x = c.x
    if x is not None and x.axis is not None and x.axis >= len(x.shape) - len(ns):
        return glob(c, "layer_norm normalises over the split axis")
    return same_rows(c, OpKind.ROW, lambda p, a, r: a, False)


def linear(c: Ctx) -> Analysis:
    x = c.x
    if x is not None and x.axis is not None and x.axis == len(x.shape) - 1:
        return glob(c, "linear contracts the split axis")
    if any(n.axis is not None for n in c.ins[1:]):
        return glob(c, "linear with split weights")
    return same_rows(c, OpKind.ROW, lambda p, a, r: a if p == 0 else None, False)


def matmul(c: Ctx) -> Analysis:
    v = c.value
    a_ref, b_ref = c.arg(0, "input"), c.arg(1, "other", c.arg(1, "mat2"))
    if c.op in ("rmatmul",):
        a_ref, b_ref = b_ref, a_ref
    na = c.ins[a_ref.pos] if isinstance(a_ref, NodeRef) else None
    nb = c.ins[b_ref.pos] if isinstance(b_ref, NodeRef) else None
    if not isinstance(v, torch.Tensor) or v.dim() < 2:
        return glob(c, "matmul to a vector")
    if na is not None and na.axis is not None and (nb is None or nb.axis is None):
        if len(na.shape) < 2 or na.axis == len(na.shape) - 1:
            return glob(c, "matmul contracts the split axis")
        return same_rows(c, OpKind.ROW, lambda p, a, r: (a + v.dim() - r) if p == a_ref.pos else None, False)
    if nb is not None and nb.axis is not None and (na is None or na.axis is None):
        if len(nb.shape) < 2 or nb.axis == len(nb.shape) - 2:
            return glob(c, "matmul contracts the split axis")
        return same_rows(c, OpKind.ROW, lambda p, a, r: (a + v.dim() - r) if p == b_ref.pos else None, False)
    if na is None and nb is None or not any_split(c):
        return whole(c, OpKind.ROW, axis=None)
    return glob(c, "matmul of two split operands (attention-like) mixes rows")


def _dims(d: Any, rank: int) -> list[int]:
    if d is None:
        return list(range(rank))
    ds = [d] if isinstance(d, int) else list(d)
    return [x % rank for x in ds]


def reduction(dim_pos: int, kw: str = "dim") -> Callable[[Ctx], Analysis]:
    """sum/mean/amax/... over `dim`: row-wise when the split axis is not reduced."""

    def rule(c: Ctx) -> Analysis:
        x = c.x
        if x is None or x.axis is None:
            return whole(c, OpKind.ROW, axis=None) if x is not None else glob(c, "unsupported call form")
        if len(c.ins) > 1 and (c.arg(dim_pos, kw) is None or isinstance(c.arg(1, "other"), NodeRef)):
            return elementwise(c)  # torch.max(a, b) and friends: element-wise
        d = c.arg(dim_pos, kw)
        if d is None or (isinstance(d, (list, tuple)) and len(d) == 0):
            return glob(c, f"{c.op} over all dims includes the split axis")
        rank = len(x.shape)
        dims = _dims(d, rank)
        if x.axis in dims:
            return glob(c, f"{c.op} reduces over the split axis")
        keep = (
            bool(c.arg(dim_pos + 1, "keepdim", False))
            if c.op not in ("softmax", "log_softmax", "normalize", "cumsum", "cumprod")
            else True
        )
        out = x.axis if keep else x.axis - sum(1 for k in dims if k < x.axis)
        return same_rows(c, OpKind.ROW, lambda p, a, r: out if p == 0 else None, False)

    return rule


def cat(c: Ctx) -> Analysis:
    dim = c.arg(1, "dim", 0)
    if not isinstance(c.value, torch.Tensor):
        return glob(c, "output is not a tensor")
    d = dim % c.value.dim()
    for n in c.ins:
        if n.axis is not None and n.axis + c.value.dim() - len(n.shape) == d:
            return glob(c, "concatenation along the split axis")
    return same_rows(c, OpKind.ELEMENTWISE, right_aligned(c), True)


def stack(c: Ctx) -> Analysis:
    d = c.arg(1, "dim", 0) % c.value.dim()
    return same_rows(c, OpKind.ELEMENTWISE, lambda p, a, r: a + (1 if a >= d else 0), True)


def pick_dim(dim_pos: int, removes: bool = False) -> Callable[[Ctx], Analysis]:
    """chunk/split/unbind picked by index: fine unless cut along the split axis."""

    def rule(c: Ctx) -> Analysis:
        x = c.x
        if x is None or x.axis is None:
            return whole(c, OpKind.ELEMENTWISE, axis=None)
        d = c.arg(dim_pos, "dim", 0) % len(x.shape)
        if d == x.axis:
            return glob(c, f"{c.op} cuts along the split axis")
        out = x.axis - (1 if removes and d < x.axis else 0)
        return same_rows(c, OpKind.ELEMENTWISE, lambda p, a, r: out if p == 0 else None, False)

    return rule


def moves_axis(c: Ctx) -> Analysis:
    """permute/transpose/movedim/T: follow the axis with a meta tensor of distinct strides."""
    x = c.x
    if x is None or x.axis is None:
        return whole(c, OpKind.ELEMENTWISE, axis=None)
    rank = len(x.shape)
    strides = [1 << i for i in range(rank)]
    probe = torch.empty_strided(x.shape, strides, device="meta")
    rest = rm.bind(c.args[1:], [], {})
    kwargs = {k: v for k, v in c.kwargs.items()}
    try:
        out = c.fn(probe, *rest, **kwargs)
        k = list(out.stride()).index(strides[x.axis])
    except Exception as e:  # noqa: BLE001 - anything unexpected: be global, stay correct
        return glob(c, f"{c.op}: could not follow the split axis ({e})")
    return same_rows(c, OpKind.ELEMENTWISE, lambda p, a, r: k if p == 0 else None, False)


def reshape(c: Ctx) -> Analysis:
    """view/reshape/flatten/unflatten/squeeze/unsqueeze: keeps the split axis when some output dim has
    the same extent and the same product of leading dims (elements keep their row)."""
    x = c.x
    v = c.value
    if x is None or not isinstance(v, torch.Tensor):
        return glob(c, "unsupported call form")
    if x.axis is None:
        return whole(c, OpKind.ELEMENTWISE, axis=None)
    lead = rm.prod(x.shape[: x.axis])
    for j in range(v.dim()):
        if rm.prod(v.shape[:j]) == lead and v.shape[j] == x.shape[x.axis]:
            return Analysis(
                OpKind.ELEMENTWISE,
                j,
                rm.Reshape(tuple(v.shape), j, x.extent, x.extent, fn=c.fn, args=c.args, kwargs=c.kwargs),
            )
    return glob(c, f"{c.op} merges or splits the split axis with other dims")


def expand(c: Ctx) -> Analysis:
    x = c.x
    v = c.value
    if x is None or x.axis is None:
        return whole(c, OpKind.ELEMENTWISE, axis=None)
    j = x.axis + v.dim() - len(x.shape)
    if v.shape[j] != x.extent:
        return glob(c, "expand along the split axis")
    return Analysis(
        OpKind.ELEMENTWISE,
        j,
        rm.Reshape(tuple(v.shape), j, x.extent, x.extent, expand=True, fn=c.fn, args=c.args, kwargs=c.kwargs),
    )


def getitem(c: Ctx) -> Analysis:
    """Tensor indexing with ints, slices, None and Ellipsis; tensors as indices are global."""
    x = c.x
    v = c.value
    if x is None or not isinstance(v, torch.Tensor):
        return glob(c, "unsupported indexing")
    if x.axis is None:
        return whole(c, OpKind.ELEMENTWISE, axis=None)
    idx = c.args[1]
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) or isinstance(i, bool) for i in idx):
        return glob(c, "advanced (tensor/bool/list) indexing")
    rank = len(x.shape)
    consumed = sum(1 for i in idx if i is not Ellipsis and i is not None)
    in_d = out_d = 0
    for comp, i in enumerate(idx):
        if i is None:
            out_d += 1
        elif i is Ellipsis:
            n = rank - consumed
            if in_d <= x.axis < in_d + n:
                out = out_d + x.axis - in_d

                def dim_map(p: int, a: int, r: int, out: int = out) -> int | None:
                    return out if p == 0 else None

                return same_rows(c, OpKind.ELEMENTWISE, dim_map, False)
            in_d += n
            out_d += n
        elif isinstance(i, int):
            if in_d == x.axis:
                return glob(c, "selects a single row of the split axis")
            in_d += 1
        else:
            if in_d == x.axis:
                start, stop, step = i.indices(x.extent)
                e = len(range(start, stop, step))
                if e == x.extent:

                    def keep_axis(p: int, a: int, r: int, o: int = out_d) -> int | None:
                        return o if p == 0 else None

                    return same_rows(c, OpKind.ELEMENTWISE, keep_axis, False)
                if e <= 1:
                    return whole(c, OpKind.BLOCK, axis=None)
                kind = OpKind.BLOCK if step > 1 else OpKind.ELEMENTWISE
                return Analysis(
                    kind, out_d, rm.SliceRows(c.fn, c.args, c.kwargs, c.in_extents, e, idx, comp, start, step)
                )
            in_d += 1
            out_d += 1
    out = out_d + (x.axis - in_d)
    return same_rows(c, OpKind.ELEMENTWISE, lambda p, a, r: out if p == 0 else None, False)


# ------------------------------------------------------------------------------------- block ops
def _ntuple(v: Any, n: int) -> list[int]:
    if isinstance(v, (list, tuple)):
        return [int(x) for x in v] if len(v) == n else [int(v[0])] * n
    return [int(v)] * n


def _spatial(c: Ctx, n: int) -> tuple[Node, int, int] | None:
    """(input node, index of the split axis among the n spatial dims, input rank) or None."""
    x = c.x
    if x is None or x.axis is None:
        return None
    rank = len(x.shape)
    j = x.axis - (rank - n)
    return (x, j, rank) if j >= 0 else None


def conv(n: int) -> Callable[[Ctx], Analysis]:
    convf = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]

    def rule(c: Ctx) -> Analysis:
        w_ref = c.arg(1, "weight")
        if not isinstance(w_ref, ConstRef) or any(p > 0 and m.axis is not None for p, m in enumerate(c.ins)):
            return (
                glob(c, "convolution with computed (split) weights")
                if any_split(c)
                else whole(c, OpKind.BLOCK, axis=None)
            )
        sp = _spatial(c, n)
        if c.x is not None and c.x.axis is None:
            return whole(c, OpKind.BLOCK, axis=None)
        if sp is None:
            return glob(c, "convolution mixes channels (split axis is not spatial)")
        x, j, rank = sp
        w = c.constants[w_ref.key]
        k = list(w.shape[2:])
        stride = _ntuple(c.arg(3, "stride", 1), n)
        dil = _ntuple(c.arg(5, "dilation", 1), n)
        pad = c.arg(4, "padding", 0)
        if pad == "valid":
            pads = [(0, 0)] * n
        elif pad == "same":
            pads = [((d * (kk - 1)) // 2, d * (kk - 1) - (d * (kk - 1)) // 2) for d, kk in zip(dil, k)]
        else:
            pads = [(p, p) for p in _ntuple(pad, n)]
        groups = int(c.arg(6, "groups", 1))
        e = int(c.value.shape[x.axis])
        return Analysis(
            OpKind.BLOCK,
            x.axis,
            rm.ConvRows(
                c.fn,
                c.args,
                c.kwargs,
                c.in_extents,
                e,
                convf,
                w_ref,
                c.arg(2, "bias"),
                stride,
                pads,
                dil,
                groups,
                k,
                j,
                rank,
            ),
        )

    return rule


def conv_transpose(n: int) -> Callable[[Ctx], Analysis]:
    f = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[n]

    def rule(c: Ctx) -> Analysis:
        w_ref = c.arg(1, "weight")
        if c.x is not None and c.x.axis is None:
            return whole(c, OpKind.BLOCK, axis=None)
        if not isinstance(w_ref, ConstRef) or any(p > 0 and m.axis is not None for p, m in enumerate(c.ins)):
            return glob(c, "transposed convolution with computed weights")
        sp = _spatial(c, n)
        if sp is None:
            return glob(c, "transposed convolution mixes channels (split axis is not spatial)")
        x, j, rank = sp
        w = c.constants[w_ref.key]
        k = list(w.shape[2:])
        stride = _ntuple(c.arg(3, "stride", 1), n)
        padding = _ntuple(c.arg(4, "padding", 0), n)
        opad = _ntuple(c.arg(5, "output_padding", 0), n)
        groups = int(c.arg(6, "groups", 1))
        dil = _ntuple(c.arg(7, "dilation", 1), n)
        e = int(c.value.shape[x.axis])
        return Analysis(
            OpKind.BLOCK,
            x.axis,
            rm.ConvTransposeRows(
                c.fn,
                c.args,
                c.kwargs,
                c.in_extents,
                e,
                f,
                w_ref,
                c.arg(2, "bias"),
                stride,
                padding,
                opad,
                dil,
                groups,
                k,
                j,
                rank,
                tuple(c.value.shape),
            ),
        )

    return rule


def pool(n: int, kind: str) -> Callable[[Ctx], Analysis]:
    # max_pool*d are torch's boolean_dispatch objects, typed as plain functions: the table is cast once.
    f = cast(
        Callable[..., torch.Tensor],
        {
            ("max", 1): F.max_pool1d,
            ("max", 2): F.max_pool2d,
            ("max", 3): F.max_pool3d,
            ("avg", 1): F.avg_pool1d,
            ("avg", 2): F.avg_pool2d,
            ("avg", 3): F.avg_pool3d,
        }[(kind, n)],
    )

    def rule(c: Ctx) -> Analysis:
        if c.x is not None and c.x.axis is None:
            return whole(c, OpKind.BLOCK, axis=None)
        sp = _spatial(c, n)
        if sp is None:
            return glob(c, "pooling along a non-spatial split axis")
        x, j, rank = sp
        k = _ntuple(c.arg(1, "kernel_size"), n)
        s = c.arg(2, "stride", None)
        stride = k if s is None or (isinstance(s, (list, tuple)) and len(s) == 0) else _ntuple(s, n)
        pad = _ntuple(c.arg(3, "padding", 0), n)
        if kind == "max":
            if bool(c.arg(6, "return_indices", False)):
                return glob(c, "max pooling returning indices")
            dil = _ntuple(c.arg(4, "dilation", 1), n)
            extra = {"ceil_mode": bool(c.arg(5, "ceil_mode", False))}
        else:
            dil = [1] * n
            extra = {
                "ceil_mode": bool(c.arg(4, "ceil_mode", False)),
                "count_include_pad": bool(c.arg(5, "count_include_pad", True)),
            }
            dv = c.arg(6, "divisor_override", None)
            if dv is not None:
                extra["divisor_override"] = dv
        e = int(c.value.shape[x.axis])
        return Analysis(
            OpKind.BLOCK,
            x.axis,
            rm.PoolRows(c.fn, c.args, c.kwargs, c.in_extents, e, f, k, stride, pad, dil, extra, j, rank),
        )

    return rule


def interpolate(c: Ctx) -> Analysis:
    x = c.x
    if x is None or x.axis is None:
        return whole(c, OpKind.BLOCK, axis=None)
    rank = len(x.shape)
    n = rank - 2
    j = x.axis - 2
    if j < 0:
        return glob(c, "interpolation along a non-spatial split axis")
    mode = c.arg(3, "mode", "nearest")
    if mode not in ("nearest", "nearest-exact", "linear", "bilinear", "trilinear"):
        return glob(c, f"interpolation mode '{mode}' has no row rule yet")
    if bool(c.arg(6, "antialias", False)):
        return glob(c, "antialiased interpolation has no row rule yet")
    size = c.arg(1, "size")
    sf = c.arg(2, "scale_factor")
    ac = c.arg(4, "align_corners")
    rec = c.arg(5, "recompute_scale_factor")
    size_l = None if size is None else _ntuple(size, n)
    sf_l = None if sf is None else [float(s) for s in (sf if isinstance(sf, (list, tuple)) else [sf] * n)]
    e = int(c.value.shape[x.axis])
    in_spatial = list(x.shape[2:])
    rmap = rm.InterpRows(
        c.fn,
        c.args,
        c.kwargs,
        c.in_extents,
        e,
        mode,
        bool(ac) if mode not in ("nearest", "nearest-exact") else None,
        size_l,
        sf_l,
        rec,
        j,
        rank,
        in_spatial,
    )
    return Analysis(OpKind.BLOCK, x.axis, rmap)


def pixel_shuffle(shuffle: bool) -> Callable[[Ctx], Analysis]:
    def rule(c: Ctx) -> Analysis:
        x = c.x
        if x is None or x.axis is None:
            return whole(c, OpKind.BLOCK, axis=None)
        rank = len(x.shape)
        if x.axis < rank - 2:
            return glob(c, f"{c.op} mixes channels with the split axis")
        r = int(c.arg(1, "upscale_factor" if shuffle else "downscale_factor"))
        e = int(c.value.shape[x.axis])
        return Analysis(
            OpKind.BLOCK, x.axis, rm.PixelShuffleRows(c.fn, c.args, c.kwargs, c.in_extents, e, r, shuffle, x.axis)
        )

    return rule


def pad(c: Ctx) -> Analysis:
    x = c.x
    if x is None or x.axis is None:
        return whole(c, OpKind.BLOCK, axis=None)
    spec = [int(p) for p in c.arg(1, "pad")]
    mode = c.arg(2, "mode", "constant")
    value = c.arg(3, "value", None)
    value = 0.0 if value is None else value
    rank = len(x.shape)
    from_end = rank - 1 - x.axis
    pos = 2 * from_end
    if pos + 1 >= len(spec):
        return same_rows(c, OpKind.ELEMENTWISE, lambda p, a, r: a if p == 0 else None, False)
    pb = spec[pos]  # rows added before; those added after (spec[pos + 1]) need no index shift
    h = x.extent
    e = int(c.value.shape[x.axis])
    m = np.arange(e) - pb
    if mode == "constant":
        src = np.where((m >= 0) & (m < h), m, -1)
    elif mode == "reflect":
        src = np.abs(m)
        src = np.where(src >= h, 2 * (h - 1) - src, src)
    elif mode == "replicate":
        src = np.clip(m, 0, h - 1)
    elif mode == "circular":
        src = np.mod(m, h)
    else:
        return glob(c, f"padding mode '{mode}' has no row rule")
    return Analysis(
        OpKind.BLOCK, x.axis, rm.PadRows(c.fn, c.args, c.kwargs, c.in_extents, e, src, spec, pos, mode, value, x.axis)
    )


def sparse_select_rule(c: Ctx) -> Analysis:
    """Survivors of a per-position filter (core/sparse.py): row-wise when mask and values share the split axis."""
    from intradp_ros.core.sparse import SparseRows

    m, v = c.arg(0, "mask"), c.arg(1, "values")
    val = c.value
    if not isinstance(val, SparseRows):
        return glob(c, "sparse_select did not return SparseRows")
    if not (isinstance(m, NodeRef) and isinstance(v, NodeRef)) or m.pos == v.pos:
        return whole(c, OpKind.GLOBAL, "sparse_select of a constant or of one tensor twice", axis=0)
    mn, vn = c.ins[m.pos], c.ins[v.pos]
    if mn.axis is None or vn.axis != mn.axis or mn.axis >= len(val.mask_shape) or len(c.ins) != 2:
        return whole(c, OpKind.GLOBAL, "mask and values are not split along one mask axis", axis=0)
    return Analysis(
        OpKind.ROW,
        mn.axis,
        rm.SparseSelectRows(
            c.fn,
            c.args,
            c.kwargs,
            c.in_extents,
            int(val.mask_shape[mn.axis]),
            mn.axis,
            val.mask_shape,
            val.density,
            m.pos,
            v.pos,
        ),
    )


def identity_rule(c: Ctx) -> Analysis:
    return same_rows(c, OpKind.ELEMENTWISE, lambda p, a, r: a if p == 0 else None, False)


def global_rule(reason: str) -> Callable[[Ctx], Analysis]:
    return lambda c: glob(c, reason)


# ------------------------------------------------------------------------------------- the table
UNARY = [
    "relu",
    "relu6",
    "silu",
    "gelu",
    "sigmoid",
    "tanh",
    "hardswish",
    "hardsigmoid",
    "hardtanh",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "mish",
    "softplus",
    "softsign",
    "logsigmoid",
    "tanhshrink",
    "hardshrink",
    "softshrink",
    "threshold",
    "neg",
    "abs",
    "exp",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "square",
    "reciprocal",
    "sign",
    "erf",
    "floor",
    "ceil",
    "round",
    "trunc",
    "frac",
    "clamp",
    "clip",
    "clamp_min",
    "clamp_max",
    "nan_to_num",
    "float",
    "half",
    "double",
    "bfloat16",
    "int",
    "long",
    "byte",
    "bool",
    "char",
    "short",
    "to",
    "type",
    "type_as",
    "contiguous",
    "clone",
    "detach",
    "pos",
    "invert",
    "logical_not",
    "identity",
    "sigmoid_",
    "silu_",
    "prelu",
    "rrelu",
    "glu_channels",
]
BROADCAST = [
    "add",
    "sub",
    "mul",
    "div",
    "truediv",
    "floordiv",
    "true_divide",
    "floor_divide",
    "pow",
    "radd",
    "rsub",
    "rmul",
    "rtruediv",
    "rfloordiv",
    "rpow",
    "maximum",
    "minimum",
    "fmax",
    "fmin",
    "where",
    "masked_fill",
    "addcmul",
    "addcdiv",
    "lerp",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "xor",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "logical_and",
    "logical_or",
    "logical_xor",
    "remainder",
    "fmod",
    "atan2",
    "hypot",
    "copysign",
    "mod",
    "rand_",
    "ror",
    "rxor",
    "subtract",
    "multiply",
    "divide",
]

RULES: dict[str, Callable[[Ctx], Analysis]] = {}
RULES.update({name: unary_same for name in UNARY})
RULES.update({name: elementwise for name in BROADCAST})
RULES.update(
    {
        "batch_norm": batch_norm,
        "dropout": lambda c: training_flag(c, 2, "training", True),
        "dropout1d": lambda c: training_flag(c, 2, "training", True),
        "dropout2d": lambda c: training_flag(c, 2, "training", True),
        "dropout3d": lambda c: training_flag(c, 2, "training", True),
        "alpha_dropout": lambda c: training_flag(c, 2, "training", False),
        "feature_alpha_dropout": lambda c: training_flag(c, 2, "training", False),
        "stochastic_depth": lambda c: training_flag(c, 3, "training", True),
        "layer_norm": layer_norm,
        "linear": linear,
        "matmul": matmul,
        "mm": matmul,
        "bmm": matmul,
        "rmatmul": matmul,
        "softmax": reduction(1),
        "log_softmax": reduction(1),
        "normalize": reduction(2),
        "cumsum": reduction(1),
        "cumprod": reduction(1),
        "sum": reduction(1),
        "mean": reduction(1),
        "amax": reduction(1),
        "amin": reduction(1),
        "prod": reduction(1),
        "std": reduction(1),
        "var": reduction(1),
        "logsumexp": reduction(1),
        "argmax": reduction(1),
        "argmin": reduction(1),
        "max": reduction(1),
        "min": reduction(1),
        "all": reduction(1),
        "any": reduction(1),
        "norm": reduction(2),
        "cat": cat,
        "concat": cat,
        "concatenate": cat,
        "stack": stack,
        "chunk": pick_dim(2),
        "split": pick_dim(2),
        "tensor_split": pick_dim(2),
        "unbind": pick_dim(1, removes=True),
        "permute": moves_axis,
        "transpose": moves_axis,
        "swapaxes": moves_axis,
        "swapdims": moves_axis,
        "movedim": moves_axis,
        "moveaxis": moves_axis,
        "t": moves_axis,
        "T": moves_axis,
        "mT": moves_axis,
        "view": reshape,
        "reshape": reshape,
        "flatten": reshape,
        "unflatten": reshape,
        "squeeze": reshape,
        "unsqueeze": reshape,
        "view_as": reshape,
        "reshape_as": reshape,
        "expand": expand,
        "expand_as": expand,
        "getitem": getitem,
        "conv1d": conv(1),
        "conv2d": conv(2),
        "conv3d": conv(3),
        "conv_transpose1d": conv_transpose(1),
        "conv_transpose2d": conv_transpose(2),
        "conv_transpose3d": conv_transpose(3),
        "max_pool1d": pool(1, "max"),
        "max_pool2d": pool(2, "max"),
        "max_pool3d": pool(3, "max"),
        "avg_pool1d": pool(1, "avg"),
        "avg_pool2d": pool(2, "avg"),
        "avg_pool3d": pool(3, "avg"),
        "interpolate": interpolate,
        "upsample": interpolate,
        "pixel_shuffle": pixel_shuffle(True),
        "pixel_unshuffle": pixel_shuffle(False),
        "pad": pad,
        "sparse_select": sparse_select_rule,
    }
)
for _n in (
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
):
    RULES[_n] = global_rule("adaptive pooling mixes all rows")
# torch.nn activation modules called as modules are named by their class (lower case)
for _n in (
    "leakyrelu",
    "softsign",
    "logsigmoid",
    "tanhshrink",
    "softshrink",
    "hardshrink",
    "threshold",
    "rrelu",
    "celu",
    "selu",
    "gelu",
    "silu",
    "mish",
    "hardswish",
    "hardsigmoid",
    "relu6",
    "sigmoid",
    "tanh",
):
    RULES[_n] = unary_same
RULES["scaled_dot_product_attention"] = global_rule("attention mixes all positions")
RULES["multi_head_attention_forward"] = global_rule("attention mixes all positions")
RULES["multiheadattention"] = global_rule("attention mixes all positions")
RULES["einsum"] = global_rule("einsum has no row rule (treated as global)")
RULES["group_norm"] = global_rule("group_norm normalises over all rows")
RULES["instance_norm"] = global_rule("instance_norm normalises over all rows")


def analyze(c: Ctx) -> Analysis:
    """Kind, split axis and row map of one operator call (unknown operators are global)."""
    rule = RULES.get(c.op)
    if rule is None:
        if not any_split(c):
            return whole(c, OpKind.GLOBAL, f"unknown operator '{c.op}' (treated as global)")
        return glob(c, f"unknown operator '{c.op}' (treated as global: correct, not parallel)")
    return rule(c)


__all__ = ["Ctx", "Analysis", "RULES", "analyze", "fresh_axis"]
