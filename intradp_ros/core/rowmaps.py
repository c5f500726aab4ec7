"""Row maps: for one operator, which input rows an output row range needs, and how to compute it.

Every map is exact (no approximation of receptive fields): `need(a, b)` returns, per tensor input of
the node, the smallest contiguous range of that input's rows (along its split axis) that output rows
[a, b) depend on, or None when they depend on none; `run(a, b, pieces, constants)` computes rows
[a, b) from exactly those pieces (each piece holds the needed rows, or the whole tensor for an input
without a split axis). `run(0, extent, ...)` on whole inputs is the plain operator call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from intradp_ros.core.graph import ConstRef, NodeRef, Range

Need = list[Range | None]


def bind(
    obj: Any,
    pieces: Sequence[Any],
    constants: dict[str, torch.Tensor],
    slices: dict[Any, int] | None = None,
    a: int = 0,
    b: int = 0,
) -> Any:
    """Substitute NodeRef/ConstRef placeholders by tensors; narrow those named in `slices` to rows [a, b)."""
    if isinstance(obj, NodeRef):
        t = pieces[obj.pos]
        if slices and obj in slices:
            t = t.narrow(slices[obj], a, b - a)
        return t
    if isinstance(obj, ConstRef):
        t = constants[obj.key]
        if slices and obj in slices:
            t = t.narrow(slices[obj], a, b - a)
        return t
    if isinstance(obj, tuple):
        return tuple(bind(o, pieces, constants, slices, a, b) for o in obj)
    if isinstance(obj, list):
        return [bind(o, pieces, constants, slices, a, b) for o in obj]
    if isinstance(obj, dict):
        return {k: bind(v, pieces, constants, slices, a, b) for k, v in obj.items()}
    return obj


def _has_ref(o: Any) -> bool:
    if isinstance(o, (NodeRef, ConstRef)):
        return True
    if isinstance(o, (tuple, list)):
        return any(_has_ref(i) for i in o)
    if isinstance(o, dict):
        return any(_has_ref(v) for v in o.values())
    return False


def _flat_slots(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[int, Any]] | None:
    """Top-level placeholder positions of `args`, or None when placeholders sit inside containers."""
    slots = []
    for i, a in enumerate(args):
        if isinstance(a, (NodeRef, ConstRef)):
            slots.append((i, a))
        elif _has_ref(a):
            return None
    return slots


class RowMap:
    """Base: an operator call `fn(*args, **kwargs)` with placeholders, plus its row arithmetic."""

    inplace_call: tuple[Callable[..., Any], dict[str, Any]] | None = None  # (fn, kwargs) writing into args[0]

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
    ):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.in_extents = list(in_extents)
        self.extent = extent

    @property
    def whole_ok(self) -> bool:
        """True when the full output needs every input whole, so the plain call applies to full ranges
        (a strided slice starting at row 1, a crop or a stride that skips the last rows need less)."""
        ok = self.__dict__.get("_whole_ok")
        if ok is None:
            ok = self.need(0, self.extent) == [(0, e) for e in self.in_extents]
            self.__dict__["_whole_ok"] = ok
        return ok

    def call_whole(self, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        """The plain operator call on whole inputs (the hot path of device-only runs: flat argument
        lists are bound by precomputed slots instead of a recursive walk)."""
        flat = self.__dict__.get("_flat", False)
        if flat is False:
            flat = self.__dict__["_flat"] = _flat_slots(self.args, self.kwargs)
        if flat is None:
            return self.fn(*bind(self.args, pieces, constants), **bind(self.kwargs, pieces, constants))
        args = list(self.args)
        for i, ref in flat:
            args[i] = pieces[ref.pos] if isinstance(ref, NodeRef) else constants[ref.key]
        if self.kwargs:
            return self.fn(*args, **bind(self.kwargs, pieces, constants))
        return self.fn(*args)

    def run_inplace(self, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        """The whole call, written into the first input (only when the executor proved no one else
        reads it)."""
        if self.inplace_call is None:
            raise RuntimeError("run_inplace on an operator without an in-place form")
        fn, kwargs = self.inplace_call
        return fn(*bind(self.args, pieces, constants), **bind(kwargs, pieces, constants))

    def need(self, a: int, b: int) -> Need:
        return [(0, e) for e in self.in_extents]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        return self.call_whole(pieces, constants)


class Whole(RowMap):
    """Global operator or tensor without a split axis: needs every row of every input, computed whole."""


class SameRows(RowMap):
    """Output row i needs row i of every split input (element-wise, row-wise, axis-moving ops).

    `aligned[pos]` says whether input `pos` is split along the output's axis (else it is needed whole);
    `slices` names placeholders (whole inputs, constants) that have the axis at full extent in dim d and
    are narrowed to the computed rows (e.g. a decode grid buffer of shape [1, 3, H, W, 2]).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        aligned: Sequence[bool],
        slices: dict[Any, int],
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.aligned = list(aligned)
        self.slices = slices

    def need(self, a: int, b: int) -> Need:
        return [(a, b) if al else (0, e) for al, e in zip(self.aligned, self.in_extents)]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        s = self.slices
        return self.fn(*bind(self.args, pieces, constants, s, a, b), **bind(self.kwargs, pieces, constants, s, a, b))


class Reshape(SameRows):
    """A view that keeps the split axis whole (view/reshape/flatten/squeeze/unsqueeze/expand/x[:, None])."""

    def __init__(
        self,
        out_shape: Sequence[int],
        out_axis: int,
        in_extent: int,
        extent: int,
        expand: bool = False,
        *,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(fn, args, kwargs or {}, [in_extent], extent, [True], {})
        self.out_shape = list(out_shape)
        self.out_axis = out_axis
        self.expand = expand

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        shape = list(self.out_shape)
        shape[self.out_axis] = b - a
        x = pieces[0]
        return x.expand(shape) if self.expand else x.reshape(shape)


def _window_need(a: int, b: int, k: int, s: int, d: int, pb: int, size: int) -> Range | None:
    """Hull of the input rows that window taps of output rows [a, b) touch (padding excluded)."""
    lo = a * s - pb
    hi = (b - 1) * s - pb + (k - 1) * d + 1
    if lo >= 0 and hi <= size:
        return (lo, hi)
    taps = (np.arange(a, b)[:, None] * s - pb + np.arange(k)[None, :] * d).ravel()
    taps = taps[(taps >= 0) & (taps < size)]
    return (int(taps.min()), int(taps.max()) + 1) if taps.size else None


class ConvRows(RowMap):
    """Convolution (1d/2d/3d, stride, zero padding incl. asymmetric 'same', dilation, groups).

    Rows [a, b) need input rows [a*s - p, (b-1)*s - p + (k-1)*d + 1) clipped to the input; missing rows
    at the edges are the zero padding, added explicitly; other dims keep the operator's own padding.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        conv: Callable[..., Any],
        weight: Any,
        bias: Any,
        stride: Sequence[int],
        pads: Sequence[tuple[int, int]],
        dilation: Sequence[int],
        groups: int,
        k: Sequence[int],
        sdim: int,
        rank: int,
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.conv, self.weight, self.bias = conv, weight, bias
        self.stride, self.pads, self.dilation, self.groups, self.k = (
            list(stride),
            list(pads),
            list(dilation),
            groups,
            list(k),
        )
        self.sdim, self.rank = sdim, rank  # index of the split axis among spatial dims; input rank
        self.symmetric_others = all(p[0] == p[1] for i, p in enumerate(self.pads) if i != sdim)

    def need(self, a: int, b: int) -> Need:
        j = self.sdim
        r = _window_need(a, b, self.k[j], self.stride[j], self.dilation[j], self.pads[j][0], self.in_extents[0])
        return [r] + [(0, e) for e in self.in_extents[1:]]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        j = self.sdim
        s, d, k, pb = self.stride[j], self.dilation[j], self.k[j], self.pads[j][0]
        lo = a * s - pb
        hi = (b - 1) * s - pb + (k - 1) * d + 1
        x = pieces[0]
        rows = x.shape[self.rank - len(self.k) + j]
        got = self.need(a, b)[0]
        top = (got[0] - lo) if got is not None else hi - lo
        bot = (hi - lo) - top - rows
        nsp = len(self.pads)
        pad_spec: list[int] = []
        op_pad: list[int] = []
        explicit = False
        for i in range(nsp - 1, -1, -1):  # F.pad lists pads from the last dim backwards
            if i == j:
                pad_spec += [top, bot]
                explicit = explicit or top > 0 or bot > 0
            elif self.symmetric_others:
                pad_spec += [0, 0]
            else:
                pad_spec += list(self.pads[i])
                explicit = True
        for i in range(nsp):
            op_pad.append(0 if (i == j or not self.symmetric_others) else self.pads[i][0])
        if explicit:
            x = F.pad(x, pad_spec)
        w = bind(self.weight, pieces, constants)
        bias = bind(self.bias, pieces, constants)
        return self.conv(x, w, bias, self.stride, op_pad, self.dilation, self.groups)


class PoolRows(RowMap):
    """Max/avg pooling (padding, dilation, ceil_mode, count_include_pad, divisor_override).

    Interior tiles run on their exact rows with no padding along the split axis. Edge tiles run with the
    operator's own parameters on rows that start at a multiple of the stride (dummy rows fill the gap up
    to the first needed row and only feed output rows that are cropped away), so implicit -inf padding,
    ceil_mode windows and divisors are the operator's own.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        pool: Callable[..., Any],
        k: Sequence[int],
        stride: Sequence[int],
        pad: Sequence[int],
        dilation: Sequence[int],
        extra: dict[str, Any],
        sdim: int,
        rank: int,
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.pool, self.k, self.stride, self.pad, self.dilation = pool, list(k), list(stride), list(pad), list(dilation)
        self.extra = extra  # ceil_mode, count_include_pad, divisor_override (as the functional names them)
        self.sdim, self.rank = sdim, rank

    def _call(self, x: torch.Tensor, pad: Sequence[int]) -> torch.Tensor:
        out: torch.Tensor
        if self.dilation is not None and any(d != 1 for d in self.dilation):
            out = self.pool(x, self.k, self.stride, list(pad), self.dilation, **self.extra)
        else:
            out = self.pool(x, self.k, self.stride, list(pad), **self.extra)
        return out

    def need(self, a: int, b: int) -> Need:
        j = self.sdim
        return [_window_need(a, b, self.k[j], self.stride[j], self.dilation[j], self.pad[j], self.in_extents[0])]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        j = self.sdim
        s, d, k, p = self.stride[j], self.dilation[j], self.k[j], self.pad[j]
        size = self.in_extents[0]
        lo = a * s - p
        hi = (b - 1) * s - p + (k - 1) * d + 1
        x = pieces[0]
        axis = self.rank - len(self.k) + j
        if lo >= 0 and hi <= size:
            pad = list(self.pad)
            pad[j] = 0
            return self._call(x, pad)
        lo_c = max(lo, 0)
        t = lo_c // s
        got = self.need(a, b)[0]
        if got is None:
            # These output rows read padding only (dilated taps can skip every real row): no input row changes
            # them, so the operator's own call on a dummy of the full extent gives them exactly.
            shape = list(x.shape)
            shape[axis] = size
            return self._call(x.new_zeros(shape), self.pad).narrow(axis, a, b - a)
        gap_top = got[0] - t * s
        gap_bot = min(hi, size) - got[1]
        if gap_top or gap_bot:
            parts = []
            for gap in (gap_top, gap_bot):
                shape = list(x.shape)
                shape[axis] = gap
                parts.append(x.new_zeros(shape))
            x = torch.cat([parts[0], x, parts[1]], dim=axis)
        y = self._call(x, self.pad)
        return y.narrow(axis, a - t, b - a)


class ConvTransposeRows(RowMap):
    """Transposed convolution (stride, padding, output_padding, dilation, groups).

    Output row o receives input row i when i*s - p + m*d == o for a kernel tap m; rows [a, b) need input
    rows [ceil((a + p - (k-1)*d) / s), floor((b - 1 + p) / s) + 1). The piece is convolved with no padding
    along the split axis, the wanted rows are cropped (rows no input reaches hold only the bias).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        convt: Callable[..., Any],
        weight: Any,
        bias: Any,
        stride: Sequence[int],
        padding: Sequence[int],
        output_padding: Sequence[int],
        dilation: Sequence[int],
        groups: int,
        k: Sequence[int],
        sdim: int,
        rank: int,
        out_shape: Sequence[int] = (),
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.out_shape = list(out_shape)
        self.convt, self.weight, self.bias = convt, weight, bias
        self.stride, self.padding, self.output_padding = list(stride), list(padding), list(output_padding)
        self.dilation, self.groups, self.k, self.sdim, self.rank = list(dilation), groups, list(k), sdim, rank

    def _in_range(self, a: int, b: int) -> Range | None:
        """Hull of the input rows i with i*s - p + m*d in [a, b) for some tap m (exact, by enumeration)."""
        j = self.sdim
        s, p, d, k = self.stride[j], self.padding[j], self.dilation[j], self.k[j]
        num = (np.arange(a, b)[:, None] + p - np.arange(k)[None, :] * d).ravel()
        num = num[(num >= 0) & (num % s == 0)] // s
        num = num[num < self.in_extents[0]]
        return (int(num.min()), int(num.max()) + 1) if num.size else None

    def need(self, a: int, b: int) -> Need:
        return [self._in_range(a, b)] + [(0, e) for e in self.in_extents[1:]]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        j = self.sdim
        s, p = self.stride[j], self.padding[j]
        axis = self.rank - len(self.k) + j
        w = bind(self.weight, pieces, constants)
        bias = bind(self.bias, pieces, constants)
        rng = self._in_range(a, b)
        x = pieces[0]
        if rng is not None:
            pad = list(self.padding)
            pad[j] = 0
            opad = list(self.output_padding)
            opad[j] = 0
            sub = self.convt(x, w, None, self.stride, pad, opad, self.groups, self.dilation)
            off = rng[0] * s - p  # original row of sub's row 0
            src_lo, src_hi = max(0, a - off), min(sub.shape[axis], b - off)
        if rng is not None and src_lo == a - off and src_hi == b - off:
            y = sub.narrow(axis, src_lo, b - a)
        else:  # some rows get no input tap: they hold only the bias
            shape = list(self.out_shape)
            shape[axis] = b - a
            y = x.new_zeros(shape)
            if rng is not None and src_lo < src_hi:
                y.narrow(axis, src_lo + off - a, src_hi - src_lo).copy_(sub.narrow(axis, src_lo, src_hi - src_lo))
        if bias is not None:
            y = y + bias.reshape([1, -1] + [1] * (y.dim() - 2))
        return y


class InterpRows(RowMap):
    """Nearest / nearest-exact / (bi)linear interpolation, both align_corners, size or scale_factor.

    Source rows are computed with PyTorch's own index arithmetic (float32); the other spatial dims are
    interpolated by the operator itself with the split dim left unchanged (an exact identity), then the
    split dim is gathered (nearest) or blended (linear) in the operator's order.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        mode: str,
        align_corners: bool | None,
        size: list[int] | None,
        scale: list[float] | None,
        recompute: bool | None,
        sdim: int,
        rank: int,
        in_spatial: Sequence[int],
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.mode, self.align_corners, self.size, self.scale, self.recompute = (
            mode,
            align_corners,
            size,
            scale,
            recompute,
        )
        self.sdim, self.rank, self.in_spatial = sdim, rank, list(in_spatial)
        n_in, n_out = in_extents[0], extent
        sf = None if (scale is None or recompute) else scale[sdim]
        dst = np.arange(n_out, dtype=np.float32)
        if mode in ("nearest", "nearest-exact"):
            sc = np.float32(1.0 / sf) if sf else np.float32(np.float32(n_in) / np.float32(n_out))
            if mode == "nearest":
                src = np.floor(dst * sc) if n_out != 2 * n_in else np.floor(dst / 2)
            else:
                src = np.floor((dst + np.float32(0.5)) * sc)
            if n_out == n_in:
                src = dst
            self.i0 = np.minimum(src.astype(np.int64), n_in - 1)
            self.i1 = self.i0
            self.lam = None
        else:
            if align_corners:
                sc = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0)
                src = dst * sc
            else:
                sc = np.float32(1.0 / sf) if sf else np.float32(np.float32(n_in) / np.float32(n_out))
                src = np.maximum(sc * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
            i0 = np.floor(src).astype(np.int64)
            i0 = np.minimum(i0, n_in - 1)
            self.i0 = i0
            self.lam = (src - i0).astype(np.float32)
            self.i1 = np.where((i0 < n_in - 1) & (self.lam != 0), i0 + 1, i0)  # weight 0: row not read

    def need(self, a: int, b: int) -> Need:
        return [(int(self.i0[a]), int(self.i1[a:b].max()) + 1)]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        x = pieces[0]
        axis = self.rank - len(self.in_spatial) + self.sdim
        lo = int(self.i0[a])
        rows = x.shape[axis]
        others_change = False
        if self.size is not None:
            size = list(self.size)
            size[self.sdim] = rows
            others_change = any(
                sz != isz for i, (sz, isz) in enumerate(zip(self.size, self.in_spatial)) if i != self.sdim
            )
            kw: dict[str, Any] = dict(size=size)
        else:
            assert self.scale is not None  # interpolate has either a size or a scale factor
            scale = list(self.scale)
            scale[self.sdim] = 1.0
            others_change = any(sc != 1.0 for i, sc in enumerate(self.scale) if i != self.sdim)
            kw = dict(scale_factor=scale, recompute_scale_factor=self.recompute)
        if others_change:
            if self.mode in ("nearest", "nearest-exact"):
                x = F.interpolate(x, mode=self.mode, **kw)
            else:
                x = F.interpolate(x, mode=self.mode, align_corners=self.align_corners, **kw)
        idx0 = torch.as_tensor(self.i0[a:b] - lo, device=x.device)
        x0 = x.index_select(axis, idx0)
        if self.lam is None:
            return x0
        idx1 = torch.as_tensor(self.i1[a:b] - lo, device=x.device)
        x1 = x.index_select(axis, idx1)
        shape = [1] * x.dim()
        shape[axis] = b - a
        l1 = torch.as_tensor(self.lam[a:b], device=x.device, dtype=x.dtype).reshape(shape)
        return (1 - l1) * x0 + l1 * x1


class PadRows(RowMap):
    """F.pad (constant, reflect, replicate, circular; negative pads crop): output row i is input row
    `src[i]`, or the fill value where `src[i] < 0` (constant mode)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        src: np.ndarray,
        pad: Sequence[int],
        split_pos: int,
        mode: str,
        value: float,
        axis: int,
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.src, self.pad, self.split_pos, self.mode, self.value, self.axis = (
            src,
            list(pad),
            split_pos,
            mode,
            value,
            axis,
        )

    def need(self, a: int, b: int) -> Need:
        s = self.src[a:b]
        s = s[s >= 0]
        return [(int(s.min()), int(s.max()) + 1)] if s.size else [None]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        x = pieces[0]
        src = self.src[a:b]
        spec = list(self.pad)
        if self.mode == "constant":
            valid = np.flatnonzero(src >= 0)
            top = int(valid[0]) if valid.size else b - a
            bot = (b - a) - (int(valid[-1]) + 1) if valid.size else 0
            spec[self.split_pos : self.split_pos + 2] = [top, bot]
            return F.pad(x, spec, mode="constant", value=self.value)
        spec[self.split_pos : self.split_pos + 2] = [0, 0]
        if any(spec):
            x = F.pad(x, spec, mode=self.mode)
        lo = int(src.min())
        return x.index_select(self.axis, torch.as_tensor(src - lo, device=x.device))


class SliceRows(RowMap):
    """Indexing with a (strided) slice along the split axis, e.g. a Focus x[..., ::2, ::2]: output row i
    is input row start + i*step."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        index: tuple[Any, ...],
        comp: int,
        start: int,
        step: int,
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.index, self.comp, self.start, self.step = index, comp, start, step

    def need(self, a: int, b: int) -> Need:
        return [(self.start + a * self.step, self.start + (b - 1) * self.step + 1)]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        idx = list(self.index)
        idx[self.comp] = slice(None, None, self.step)
        return pieces[0][tuple(idx)]


class PixelShuffleRows(RowMap):
    """pixel_shuffle(r): output row i is input row i // r; pixel_unshuffle(r): rows [i*r, i*r + r)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        r: int,
        shuffle: bool,
        axis: int,
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.r, self.shuffle, self.axis = r, shuffle, axis

    def need(self, a: int, b: int) -> Need:
        r = self.r
        return [(a // r, (b - 1) // r + 1)] if self.shuffle else [(a * r, b * r)]

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        if a == 0 and b == self.extent and self.whole_ok:
            return self.call_whole(pieces, constants)
        y = self.call_whole(pieces, constants)
        if self.shuffle:
            return y.narrow(self.axis, a - (a // self.r) * self.r, b - a)
        return y


def prod(xs: Sequence[int]) -> int:
    return math.prod(int(v) for v in xs)


class SparseSelectRows(RowMap):
    """`sparse_select(mask, values)` by rows: output rows [a, b) are the survivors among rows [a, b) of the mask
    and the values (both split along the same axis), with positions in the full mask (core/sparse.py)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        in_extents: Sequence[int],
        extent: int,
        axis: int,
        mask_shape: Sequence[int],
        density: float | None,
        mask_pos: int,
        values_pos: int,
    ):
        super().__init__(fn, args, kwargs, in_extents, extent)
        self.axis = axis
        self.mask_shape = tuple(int(d) for d in mask_shape)
        self.density = density
        self.mask_pos, self.values_pos = mask_pos, values_pos

    def need(self, a: int, b: int) -> Need:
        return [(a, b)] * len(self.in_extents)

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict[str, torch.Tensor]) -> Any:
        from intradp_ros.core.sparse import select_rows

        return select_rows(pieces[self.mask_pos], pieces[self.values_pos], self.axis, a, self.mask_shape, self.density)
