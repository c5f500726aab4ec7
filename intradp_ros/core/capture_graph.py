"""capture(model, *example_inputs) -> Graph: the operator DAG, with shapes, dtypes and row rules.

Two front ends feed one builder:
- torch.fx symbolic tracing where the model traces (standard torch.nn modules are turned into their
  functional calls so conv/pool/norm parameters are visible to the rules);
- otherwise a recorder of tensor operations at __torch_function__ dispatch while the model runs on the
  example inputs (for models with shape-dependent Python control flow, loops over detection levels,
  ...). Tensors are identified by object (a weak identity map), never by id().
Data-dependent control flow (a tensor's value turned into a Python bool/number/list) is refused with
a CaptureError in both. Shapes are static: shape queries fold into constants. The captured graph is
checked against the model's own output on the example inputs before it is returned.
"""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from intradp_ros.core.graph import ConstRef, Graph, Node, NodeRef, OutRef, build_outputs, iter_refs
from intradp_ros.core.rowmaps import RowMap
from intradp_ros.core.rules import Ctx, analyze, fresh_axis
from intradp_ros.core.sparse import SparseRows
from intradp_ros.core.vocabulary import OpKind

log = logging.getLogger(__name__)


class CaptureError(RuntimeError):
    """The model cannot be captured faithfully (data-dependent control flow, in-place writes, ...)."""


@dataclass(frozen=True)
class _G:
    """Front-end marker for 'output of graph node idx' inside call arguments."""

    idx: int


class _Pick:
    """Calls `fn` and returns element `i` of its tuple/list result (chunk/split/max(dim) outputs)."""

    def __init__(self, fn: Callable[..., Any], i: int) -> None:
        self.fn, self.i = fn, i
        self.__name__ = getattr(fn, "__name__", "pick")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)[self.i]


class _InputRows(RowMap):
    """Graph inputs: rows are loaded, never computed."""

    def __init__(self, extent: int) -> None:
        super().__init__(lambda: None, (), {}, [], extent)

    def need(self, a: int, b: int) -> list[Any]:
        return []


SHAPE_QUERIES = {
    "size",
    "dim",
    "ndim",
    "numel",
    "shape",
    "dtype",
    "device",
    "is_cuda",
    "len",
    "ndimension",
    "is_contiguous",
    "is_floating_point",
    "is_complex",
    "element_size",
    "requires_grad",
    "layout",
    "get_device",
    "nelement",
    "stride",
    "storage_offset",
    "is_sparse",
    "names",
    "grad_fn",
    "is_leaf",
}
DATA_DEPENDENT = {
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "__complex__",
    "item",
    "tolist",
    "numpy",
    "nonzero",
    "masked_select",
    "unique",
    "unique_consecutive",
    "argwhere",
    "equal",
    "allclose",
    "is_nonzero",
    "bincount",
    "histc",
}  # raw names: tensor data becomes Python values or shapes
INPLACE_OPERATORS = {
    "iadd": operator.add,
    "isub": operator.sub,
    "imul": operator.mul,
    "itruediv": operator.truediv,
    "ifloordiv": operator.floordiv,
    "ipow": operator.pow,
    "iand": operator.and_,
    "ior": operator.or_,
    "ixor": operator.xor,
    "imatmul": operator.matmul,
    "imod": operator.mod,
}


def op_name(fn: Any) -> str:
    """Canonical operator name: the called function's or method's name without dunders."""
    if isinstance(fn, nn.Module):
        return type(fn).__name__.lower()
    name = getattr(fn, "__name__", None)
    if name == "__get__" and hasattr(fn, "__self__"):  # tensor properties such as .T, .mT
        name = getattr(fn.__self__, "__name__", name)
    if name is None:
        name = type(fn).__name__
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    if name in ("and_", "or_", "not_", "xor_"):
        name = name[:-1]
    return name


def out_of_place(fn: Any, name: str, kwargs: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """Replace in-place variants (x += y, relu_(), inplace=True) by their out-of-place forms, so tiles
    that are views of stored activations are never written."""
    if name in INPLACE_OPERATORS:
        return INPLACE_OPERATORS[name], name[1:], kwargs
    if name.endswith("_") and not name.startswith("_") and hasattr(torch.Tensor, name[:-1]):
        return getattr(torch.Tensor, name[:-1]), name[:-1], kwargs
    if kwargs.get("inplace"):
        kwargs = dict(kwargs, inplace=False)
    return fn, name, kwargs


def inplace_variant(fn: Any, name: str, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """The in-place form of an operator the model wrote in place (x += y, relu_(), inplace=True), kept so
    the executor can use it where no one else reads the input (saves an allocation per activation)."""
    if name in INPLACE_OPERATORS:
        return fn, kwargs
    if name.endswith("_") and not name.startswith("_") and hasattr(torch.Tensor, name[:-1]):
        return fn, kwargs
    if isinstance(fn, nn.Module) and getattr(fn, "inplace", False):
        return fn, kwargs
    if kwargs.get("inplace") is True:
        return fn, kwargs
    return None


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


_identity.__name__ = "identity"


Call = tuple[Any, tuple[Any, ...], dict[str, Any]]  # (function, args, kwargs) of one functional step


def _conv(m: Any, x: Any) -> list[Call]:
    f = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(m.kernel_size)]
    if m.padding_mode != "zeros":
        return [
            (F.pad, (x, list(m._reversed_padding_repeated_twice), m.padding_mode), {}),
            (f, (_PREV, m.weight, m.bias, m.stride, 0, m.dilation, m.groups), {}),
        ]
    return [(f, (x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups), {})]


def _conv_transpose(m: Any, x: Any) -> list[Call]:
    f = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[len(m.kernel_size)]
    return [(f, (x, m.weight, m.bias, m.stride, m.padding, m.output_padding, m.groups, m.dilation), {})]


def _batch_norm(m: Any, x: Any) -> list[Call] | None:
    if m.training or m.running_mean is None:
        return None  # batch statistics: the module call itself (global)
    return [(F.batch_norm, (x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps), {})]


def _max_pool(m: Any, x: Any) -> list[Call]:
    f = {nn.MaxPool1d: F.max_pool1d, nn.MaxPool2d: F.max_pool2d, nn.MaxPool3d: F.max_pool3d}[type(m)]
    return [(f, (x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices), {})]


def _avg_pool(m: Any, x: Any) -> list[Call]:
    if isinstance(m, nn.AvgPool1d):
        return [(F.avg_pool1d, (x, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad), {})]
    f = F.avg_pool2d if isinstance(m, nn.AvgPool2d) else F.avg_pool3d
    return [(f, (x, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override), {})]


def _upsample(m: Any, x: Any) -> list[Call]:
    kwargs = dict(
        size=m.size,
        scale_factor=m.scale_factor,
        mode=m.mode,
        align_corners=m.align_corners,
        recompute_scale_factor=getattr(m, "recompute_scale_factor", None),
    )
    return [(F.interpolate, (x,), kwargs)]


def _dropout(m: Any, x: Any) -> list[Call] | None:
    if m.training and not isinstance(m, nn.Identity):
        return None  # random in training: the module call itself
    return [(_identity, (x,), {})]


def _adaptive_avg_pool(m: Any, x: Any) -> list[Call]:
    f = {
        nn.AdaptiveAvgPool1d: F.adaptive_avg_pool1d,
        nn.AdaptiveAvgPool2d: F.adaptive_avg_pool2d,
        nn.AdaptiveAvgPool3d: F.adaptive_avg_pool3d,
    }[type(m)]
    return [(f, (x, m.output_size), {})]


_DROPOUTS = tuple(
    getattr(nn, name)
    for name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Identity")
    if hasattr(nn, name)
)

# Standard modules -> their functional form, first match wins (like the RULES table of operator rules). A
# normaliser returns None where the module must stay a call of itself (training-mode statistics, dropout).
# `exact_args`: only a call with the single input argument is normalised (extra arguments change the meaning).
MODULE_NORMALIZERS: list[tuple[tuple[type, ...], Callable[[Any, Any], list[Call] | None], bool]] = [
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), _conv, False),
    ((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), _conv_transpose, True),
    ((nn.modules.batchnorm._BatchNorm,), _batch_norm, False),
    ((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), _max_pool, False),
    ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), _avg_pool, False),
    ((nn.Upsample,), _upsample, False),
    ((nn.Linear,), lambda m, x: [(F.linear, (x, m.weight, m.bias), {})], False),
    ((nn.LayerNorm,), lambda m, x: [(F.layer_norm, (x, m.normalized_shape, m.weight, m.bias, m.eps), {})], False),
    ((nn.Flatten,), lambda m, x: [(torch.flatten, (x, m.start_dim, m.end_dim), {})], False),
    ((nn.Unflatten,), lambda m, x: [(torch.Tensor.unflatten, (x, m.dim, m.unflattened_size), {})], False),
    (_DROPOUTS, _dropout, False),
    ((nn.PixelShuffle,), lambda m, x: [(F.pixel_shuffle, (x, m.upscale_factor), {})], False),
    ((nn.PixelUnshuffle,), lambda m, x: [(F.pixel_unshuffle, (x, m.downscale_factor), {})], False),
    (
        (nn.modules.padding._ConstantPadNd,),
        lambda m, x: [(F.pad, (x, list(m.padding), "constant", m.value), {})],
        False,
    ),
    ((nn.modules.padding._ReflectionPadNd,), lambda m, x: [(F.pad, (x, list(m.padding), "reflect"), {})], False),
    ((nn.modules.padding._ReplicationPadNd,), lambda m, x: [(F.pad, (x, list(m.padding), "replicate"), {})], False),
    ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), _adaptive_avg_pool, False),
    ((nn.Softmax,), lambda m, x: [(F.softmax, (x, m.dim), {})], False),
    ((nn.LogSoftmax,), lambda m, x: [(F.log_softmax, (x, m.dim), {})], False),
]


def normalize_module(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Call]:
    """A standard module call as functional call(s) whose parameters the rules can read. Each step's
    first argument is the previous step's result ('prev' marker `_PREV`). Unknown modules stay calls
    of the module itself (global unless a rule knows them by class name)."""
    x = args[0] if args else None
    for types, normalize, exact_args in MODULE_NORMALIZERS:
        if isinstance(m, types):
            if exact_args and (len(args) != 1 or kwargs):
                break
            steps = normalize(m, x)
            if steps is None:
                return [(m, args, kwargs)]
            return steps
    if getattr(m, "inplace", False):
        m = copy.copy(m)
        setattr(m, "inplace", False)  # noqa: B010 - nn.Module's __setattr__ types attributes as tensors/modules
    return [(m, args, kwargs)]


_PREV = object()


class Builder:
    """Accumulates nodes and constants from either front end, and runs the rules on each new node."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.constants: dict[str, torch.Tensor] = {}
        self._const_ids = WeakIdKeyDictionary()
        self.input_indices: list[int] = []
        self.param_names = WeakIdKeyDictionary()

    def name_params(self, model: nn.Module) -> None:
        """Let constants be keyed by their state-dict names (readable plans, explain output)."""
        for k, t in list(model.named_parameters(remove_duplicate=False)) + list(
            model.named_buffers(remove_duplicate=False)
        ):
            if self.param_names.get(t) is None:
                self.param_names[t] = k

    def add_input(self, name: str, value: torch.Tensor) -> _G:
        axis = fresh_axis(value)
        extent = 1 if axis is None else int(value.shape[axis])
        node = Node(
            len(self.nodes),
            name,
            "input",
            OpKind.ELEMENTWISE,
            (),
            tuple(value.shape),
            value.dtype,
            axis,
            extent,
            rowmap=_InputRows(extent),
        )
        self.nodes.append(node)
        self.input_indices.append(node.index)
        return _G(node.index)

    def const(self, t: torch.Tensor, hint: str) -> ConstRef:
        """A ConstRef for tensor `t` (the same object always gets the same key)."""
        key = self._const_ids.get(t)
        if key is None:
            hint = self.param_names.get(t) or hint
            key = hint if hint and hint not in self.constants else f"{hint or 'const'}#{len(self.constants)}"
            self.constants[key] = t.detach()
            self._const_ids[t] = key
        return ConstRef(key)

    def add_call(
        self,
        fn: Any,
        op: str,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        value: torch.Tensor | SparseRows,
        inplace: tuple[Any, dict[str, Any]] | None = None,
    ) -> _G:
        """Add one operator node; `args`/`kwargs` hold _G markers for graph tensors, ConstRefs, values."""
        inputs: list[int] = []

        def conv(o: Any) -> Any:
            if isinstance(o, _G):
                inputs.append(o.idx)
                return NodeRef(len(inputs) - 1)
            if isinstance(o, tuple) and not hasattr(o, "_fields"):
                return tuple(conv(i) for i in o)
            if isinstance(o, list):
                return [conv(i) for i in o]
            if isinstance(o, dict):
                return {k: conv(v) for k, v in o.items()}
            return o

        a, k = conv(args), conv(kwargs)
        ins = [self.nodes[i] for i in inputs]
        res = analyze(Ctx(op, fn, a, k, ins, self.constants, value))
        if inplace is not None and a and isinstance(a[0], NodeRef) and inputs.count(inputs[0]) == 1:
            inputs_k = len(inputs)
            k_in = conv(inplace[1])
            if len(inputs) == inputs_k:  # in-place kwargs hold no extra tensors
                res.rowmap.inplace_call = (inplace[0], k_in)
        axis = res.axis
        if isinstance(value, SparseRows):
            if axis is None:
                raise CaptureError(f"{name}: sparse_select needs a mask with at least one dimension")
            node = Node(
                len(self.nodes),
                name,
                op,
                res.kind,
                tuple(inputs),
                value.dense_shape,
                value.dtype,
                axis,
                int(value.mask_shape[axis]),
                res.reason,
                fn,
                a,
                k,
                res.rowmap,
                sparse_rank=len(value.mask_shape),
                density=value.density,
            )
            self.nodes.append(node)
            return _G(node.index)
        extent = 1 if axis is None else int(value.shape[axis])
        node = Node(
            len(self.nodes),
            name,
            op,
            res.kind,
            tuple(inputs),
            tuple(value.shape),
            value.dtype,
            axis,
            extent,
            res.reason,
            fn,
            a,
            k,
            res.rowmap,
        )
        self.nodes.append(node)
        return _G(node.index)

    def finish(self, outputs: Any, method: str) -> Graph:
        """Drop nodes nothing uses (keeping inputs) and renumber."""
        live = set(self.input_indices)
        stack = [r.idx for r in iter_refs(outputs, _G)]
        while stack:
            i = stack.pop()
            if i in live and not self.nodes[i].is_input:
                continue
            live.add(i)
            stack.extend(u for u in self.nodes[i].inputs if u not in live)
        order = sorted(live)
        remap = {old: new for new, old in enumerate(order)}
        nodes = []
        for old in order:
            n = self.nodes[old]
            n.index = remap[old]
            n.inputs = tuple(remap[u] for u in n.inputs)
            nodes.append(n)

        def out(o: Any) -> Any:
            if isinstance(o, _G):
                return OutRef(remap[o.idx])
            if isinstance(o, tuple):
                items = [out(i) for i in o]
                return type(o)(*items) if hasattr(o, "_fields") else tuple(items)
            if isinstance(o, list):
                return [out(i) for i in o]
            if isinstance(o, dict):
                return {k: out(v) for k, v in o.items()}
            return o

        used: set[str] = set()
        for n in nodes:
            used.update(r.key for r in iter_refs((n.args, n.kwargs), ConstRef))
        consts = {k: v for k, v in self.constants.items() if k in used}
        return Graph(nodes, consts, out(outputs), tuple(remap[i] for i in self.input_indices), method)


# --------------------------------------------------------------------------------------------- fx front end
class _FxCapture:
    """One walk over an fx graph: each fx node kind has its own handler feeding the Builder."""

    def __init__(self, model: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.model = model
        self.modules = dict(model.named_modules())
        self.b = Builder()
        self.b.name_params(model)
        self.env: dict[
            fx.Node, Any
        ] = {}  # fx node -> _G | ConstRef | python value | ("multi", fn, op, args, kw, value)
        self.vals: dict[fx.Node, Any] = {}  # fx node -> concrete value
        self.inputs = iter(inputs)
        self.output: Any = None

    def run(self) -> Graph:
        fxg = fx.Tracer().trace(self.model)
        for n in fxg.nodes:
            if n.op == "placeholder":
                self.placeholder(n)
            elif n.op == "get_attr":
                self.get_attr(n)
            elif n.op in ("call_function", "call_method", "call_module"):
                self.call(n)
            elif n.op == "output":
                self.output = self.sym(n.args[0])
        return self.b.finish(self.output, "fx")

    def sym(self, o: Any) -> Any:
        return fx.node.map_arg(o, lambda n: self.env[n])

    def conc(self, o: Any) -> Any:
        return fx.node.map_arg(o, lambda n: self.vals[n])

    def placeholder(self, n: fx.Node) -> None:
        try:
            v = next(self.inputs)
        except StopIteration:
            v = n.args[0] if n.args else None
            self.env[n], self.vals[n] = v, v
            return
        self.env[n], self.vals[n] = self.b.add_input(n.name, v), v

    def get_attr(self, n: fx.Node) -> None:
        v: Any = self.model
        for part in str(n.target).split("."):
            v = getattr(v, part)
        self.vals[n] = v
        self.env[n] = self.b.const(v, str(n.target)) if isinstance(v, torch.Tensor) else v

    def call(self, n: fx.Node) -> None:
        env = self.env
        multi_src = [
            a
            for a in (list(n.args) + list(n.kwargs.values()))
            if isinstance(a, fx.Node) and isinstance(env.get(a), tuple) and env[a] and env[a][0] == "multi"
        ]
        if n.op == "call_function" and n.target is operator.getitem and multi_src:
            src, i = n.args[0], n.args[1]
            assert isinstance(src, fx.Node) and isinstance(i, int)  # getitem(multi-output node, constant index)
            _, mfn, mop, margs, mkw, mval = env[src]
            v = mval[i]
            env[n], self.vals[n] = self.b.add_call(_Pick(mfn, i), mop, n.name, margs, mkw, v), v
            return
        if multi_src:
            raise CaptureError(f"{n.name}: a multi-output operator's result is used whole; index it instead")
        if n.op == "call_module":
            self.call_module(n)
        else:
            self.call_function(n)

    def call_module(self, n: fx.Node) -> None:
        b, target = self.b, str(n.target)
        mod = self.modules[target]
        sargs, skw = self.sym(n.args), self.sym(n.kwargs)
        cargs, ckw = self.conc(n.args), self.conc(n.kwargs)
        cur_sym = sargs[0] if sargs else None
        cur_val = cargs[0] if cargs else None
        steps = normalize_module(mod, cargs, ckw)
        for si, (f, a_, kw_) in enumerate(steps):
            if f is mod or not a_:
                sa, ca, skw2, ckw2 = _consts(b, sargs, target), cargs, _consts(b, skw, target), ckw
            else:
                sa = (cur_sym,) + _consts(b, tuple(a_[1:]), target)
                ca = (cur_val,) + tuple(a_[1:])
                skw2, ckw2 = _consts(b, kw_, target), kw_
            v = f(*ca, **ckw2)
            name = target if si == len(steps) - 1 else f"{target}.{si}"
            ip = inplace_variant(mod if f is not mod and getattr(mod, "inplace", False) else f, op_name(f), skw2)
            fn2, op2, skw2 = out_of_place(f, op_name(f), skw2)
            if _has_graph_tensor((sa, skw2)) and isinstance(v, torch.Tensor):
                cur_sym = b.add_call(fn2, op2, name, sa, skw2, v, inplace=ip)
            elif _has_graph_tensor((sa, skw2)):
                raise CaptureError(f"{target}: module returns {type(v).__name__}, not a tensor")
            else:
                cur_sym = b.const(v, name) if isinstance(v, torch.Tensor) else v
            cur_val = v
        self.env[n], self.vals[n] = cur_sym, cur_val

    def call_function(self, n: fx.Node) -> None:
        b = self.b
        sargs, skw = self.sym(n.args), self.sym(n.kwargs)
        cargs, ckw = self.conc(n.args), self.conc(n.kwargs)
        fn = n.target if n.op == "call_function" else getattr(torch.Tensor, str(n.target), None)
        if fn is None:
            raise CaptureError(f"{n.name}: unknown tensor method '{n.target}'")
        name = op_name(fn)
        if name == "where" and len(n.args) + len(n.kwargs) == 1:
            raise CaptureError(f"{n.name}: torch.where(cond) has a data-dependent shape")
        ip = inplace_variant(fn, name, skw)
        fn, name, skw = out_of_place(fn, name, skw)
        if name == "setitem" or (n.op == "call_method" and n.target in ("__setitem__", "copy_", "fill_", "zero_")):
            raise CaptureError(f"{n.name}: in-place write ({n.target}) into a traced tensor; write it out of place")
        ckw = dict(ckw, inplace=False) if "inplace" in ckw else ckw
        v = fn(*cargs, **ckw)
        self.vals[n] = v
        if not _has_graph_tensor((sargs, skw)):
            self.env[n] = b.const(v, n.name) if isinstance(v, torch.Tensor) else v
        elif isinstance(v, torch.Tensor):
            inplace = (ip[0], _consts(b, ip[1], n.name)) if ip else None
            self.env[n] = b.add_call(fn, name, n.name, _consts(b, sargs, n.name), _consts(b, skw, n.name), v, inplace)
        elif isinstance(v, SparseRows):
            self.env[n] = b.add_call(fn, name, n.name, _consts(b, sargs, n.name), _consts(b, skw, n.name), v)
        elif isinstance(v, (tuple, list)) and any(isinstance(x, torch.Tensor) for x in v):
            self.env[n] = ("multi", fn, name, _consts(b, sargs, n.name), _consts(b, skw, n.name), v)
        elif name in SHAPE_QUERIES or (name == "getattr" and n.args[1] in SHAPE_QUERIES):
            self.env[n] = v  # static shape facts fold into constants
        else:
            raise CaptureError(
                f"{n.name}: '{name}' turns tensor data into a Python value "
                "(data-dependent control flow is not supported)"
            )


def _has_graph_tensor(o: Any) -> bool:
    return any(True for _ in iter_refs(o, _G))


def _capture_fx(model: nn.Module, inputs: tuple[Any, ...]) -> Graph:
    return _FxCapture(model, inputs).run()


def _consts(b: Builder, o: Any, hint: str) -> Any:
    """Turn stray concrete tensors inside call arguments into ConstRefs."""
    if isinstance(o, torch.Tensor):
        return b.const(o, hint)
    if isinstance(o, tuple) and not hasattr(o, "_fields"):
        return tuple(_consts(b, i, hint) for i in o)
    if isinstance(o, list):
        return [_consts(b, i, hint) for i in o]
    if isinstance(o, dict):
        return {k: _consts(b, v, hint) for k, v in o.items()}
    return o


# --------------------------------------------------------------------------------------------- dispatch front end
class _Recorder(TorchFunctionMode):
    """Records every tensor operation whose arguments include a graph tensor."""

    def __init__(self, builder: Builder, names: Callable[[], str]) -> None:
        super().__init__()
        self.b = builder
        self.known = WeakIdKeyDictionary()  # tensor object -> _G
        self.sparse: dict[int, tuple[SparseRows, _G]] = {}  # id -> (SparseRows kept alive, its node)
        self.sparse_parts = WeakIdKeyDictionary()  # index/values tensors of recorded SparseRows
        self.names = names

    def sym(self, o: Any) -> Any:
        if isinstance(o, torch.Tensor):
            g = self.known.get(o)
            return g if g is not None else self.b.const(o, "")
        if isinstance(o, tuple) and not hasattr(o, "_fields"):
            return tuple(self.sym(i) for i in o)
        if isinstance(o, list):
            return [self.sym(i) for i in o]
        if isinstance(o, dict):
            return {k: self.sym(v) for k, v in o.items()}
        return o

    @staticmethod
    def _holds(o: Any, table: WeakIdKeyDictionary) -> bool:
        """True when a tensor inside the nested structure `o` is a key of `table`."""
        if isinstance(o, torch.Tensor):
            return table.get(o) is not None
        if isinstance(o, (tuple, list)):
            return any(_Recorder._holds(i, table) for i in o)
        if isinstance(o, dict):
            return any(_Recorder._holds(v, table) for v in o.values())
        return False

    def _touches_sparse(self, o: Any) -> bool:
        return self._holds(o, self.sparse_parts)

    def uses_graph(self, o: Any) -> bool:
        return self._holds(o, self.known)

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        name = op_name(func)
        graph_args = self.uses_graph((args, kwargs))
        if self.sparse_parts and self._touches_sparse((args, kwargs)):
            raise CaptureError(
                f"'{op_name(func)}' in {self.names()} reads a SparseRows result: sparse_select "
                "results can only be model outputs when the model is recorded at dispatch"
            )
        raw = getattr(func, "__name__", "")
        if graph_args and (raw in DATA_DEPENDENT or name in DATA_DEPENDENT):
            raise CaptureError(
                f"'{raw or name}' turns tensor data into a Python value in {self.names()} "
                "(data-dependent control flow is not supported)"
            )
        if graph_args and name == "where" and len(args) + len(kwargs) == 1:
            raise CaptureError(f"torch.where(cond) in {self.names()} has a data-dependent shape")
        if graph_args and name in ("setitem", "copy_", "fill_", "zero_", "index_put_", "masked_fill_", "scatter_"):
            raise CaptureError(f"in-place write '{name}' into a graph tensor in {self.names()}; write it out of place")
        out = func(*args, **kwargs)
        if not graph_args:
            return out
        ip = inplace_variant(func, name, kwargs)
        fn, opn, kw = out_of_place(func, name, kwargs)
        if isinstance(out, SparseRows):
            self.sparse_parts[out.index] = self.sparse_parts[out.values] = True
            g = self.b.add_call(fn, opn, f"{self.names()}{opn}", self.sym(args), self.sym(kw), out)
            self.sparse[id(out)] = (out, g)
        elif isinstance(out, torch.Tensor):
            g = self.b.add_call(
                fn,
                opn,
                f"{self.names()}{opn}",
                self.sym(args),
                self.sym(kw),
                out,
                inplace=(ip[0], self.sym(ip[1])) if ip else None,
            )
            self.known[out] = g
        elif isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) for t in out):
            sa, sk = self.sym(args), self.sym(kw)
            for i, t in enumerate(out):
                self.known[t] = self.b.add_call(_Pick(fn, i), opn, f"{self.names()}{opn}[{i}]", sa, sk, t)
        elif (
            name not in SHAPE_QUERIES
            and not isinstance(out, (torch.Size, torch.dtype, torch.device))
            and name not in ("shape", "dtype", "device", "ndim", "is_contiguous")
        ) and isinstance(out, (bool, int, float, complex)):
            raise CaptureError(
                f"'{name}' turns tensor data into a Python value in {self.names()} "
                "(data-dependent control flow is not supported)"
            )
        return out


def _capture_dispatch(model: nn.Module, inputs: tuple[Any, ...]) -> Graph:
    b = Builder()
    b.name_params(model)
    stack: list[str] = []
    paths = {m: p for p, m in model.named_modules()}

    def pre(mod: nn.Module, _args: Any) -> None:
        stack.append(paths.get(mod, type(mod).__name__))

    def post(mod: nn.Module, _args: Any, _out: Any) -> None:
        if stack:
            stack.pop()

    def names() -> str:
        return (stack[-1] + ".") if stack and stack[-1] else ""

    rec = _Recorder(b, names)
    for i, x in enumerate(inputs):
        rec.known[x] = b.add_input(f"input_{i}", x)
    h1 = nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = nn.modules.module.register_module_forward_hook(post)
    try:
        with rec:
            out = model(*inputs)
    finally:
        h1.remove()
        h2.remove()

    def outs(o: Any) -> Any:
        if isinstance(o, SparseRows):
            hit = rec.sparse.get(id(o))
            if hit is None or hit[0] is not o:
                raise CaptureError("a SparseRows output was not made by sparse_select on graph tensors")
            return hit[1]
        if isinstance(o, torch.Tensor):
            g = rec.known.get(o)
            return g if g is not None else o
        if isinstance(o, tuple):
            items = [outs(i) for i in o]
            return type(o)(*items) if hasattr(o, "_fields") else tuple(items)
        if isinstance(o, list):
            return [outs(i) for i in o]
        if isinstance(o, dict):
            return {k: outs(v) for k, v in o.items()}
        return o

    return b.finish(outs(out), "dispatch")


# --------------------------------------------------------------------------------------------- entry point
def _compare(a: Any, b: Any, path: str = "output") -> str | None:
    if isinstance(a, SparseRows):
        if not isinstance(b, SparseRows) or not torch.equal(a.index, b.index):
            return f"{path}: sparse positions differ"
        return _compare(a.values, b.values, f"{path}.values")
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape:
            return f"{path}: shape {tuple(a.shape)} vs {getattr(b, 'shape', type(b))}"
        if a.is_floating_point():
            scale = float(a.detach().abs().max()) if a.numel() else 0.0
            err = float((a.detach() - b.detach()).abs().max()) if a.numel() else 0.0
            if err > 1e-4 * max(scale, 1e-6) + 1e-6:
                return f"{path}: max abs error {err:.3g} (scale {scale:.3g})"
        elif not torch.equal(a, b):
            return f"{path}: values differ"
        return None
    if isinstance(a, (tuple, list)):
        if not isinstance(b, (tuple, list)) or len(a) != len(b):
            return f"{path}: structure differs"
        for i, (x, y) in enumerate(zip(a, b)):
            r = _compare(x, y, f"{path}[{i}]")
            if r:
                return r
        return None
    if isinstance(a, dict):
        for k in a:
            r = _compare(a[k], b.get(k) if isinstance(b, dict) else None, f"{path}[{k!r}]")
            if r:
                return r
    return None


def capture(model: nn.Module, *example_inputs: torch.Tensor, method: str = "auto", check: bool = True) -> Graph:
    """Capture `model` as a Graph of operators in topological order (kinds, shapes, split axes, row maps).

    method: "fx" (symbolic tracing), "dispatch" (record at __torch_function__) or "auto" (fx, then
    dispatch when the model does not trace). With `check`, the graph is run on the example inputs and
    must reproduce model(*example_inputs); CaptureError otherwise.
    """
    if model.training:
        log.warning("capture: model is in training mode; call model.eval() (dropout/BN would be global)")
    with torch.no_grad():
        graph: Graph | None = None
        if method in ("auto", "fx"):
            try:
                graph = _capture_fx(model, example_inputs)
            except CaptureError:
                raise
            except Exception as e:
                if method == "fx":
                    raise CaptureError(f"torch.fx could not trace the model: {e}") from e
                log.info("capture: torch.fx failed (%s); recording at dispatch", str(e).splitlines()[0][:200])
        if graph is None:
            graph = _capture_dispatch(model, example_inputs)
        spec = getattr(model, "input_spec", None)
        if tuple(getattr(spec, "value_range", ())) == (0, 1):  # e.g. occupancy grids: raw rows go bit-packed
            for i in graph.input_indices:
                graph.nodes[i].binary = graph.nodes[i].dtype in (torch.uint8, torch.bool)
        if check:
            ref = model(*example_inputs)
            got = graph.run_local(*example_inputs)
            bad = _compare(ref, got)
            if bad:
                raise CaptureError(f"captured graph ({graph.method}) does not reproduce the model: {bad}")
    return graph


__all__ = ["capture", "CaptureError", "op_name", "build_outputs"]
