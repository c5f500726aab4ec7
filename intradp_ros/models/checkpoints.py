"""Checkpoint loaders for the upstream formats, without unpickling arbitrary objects.

* KAPAO: `torch.save({'epoch', 'best_fitness', 'model', 'ema', ...})` where `model` is a pickled (fp16) model object
  of classes in `models.yolo` / `models.common`. It is read with a restricted unpickler: those class names map to
  empty `nn.Module` shells, a short list of torch/collections/numpy names a checkpoint needs is allowed, anything
  else is refused with `CheckpointError`. The shells are then cast to fp32 and turned into a state dict.
* SCONet: `torch.save({'startEpoch', 'model': state_dict, 'optimizer', 'scheduler', 'config_dict'})`, loaded with
  `weights_only=True`.
Checkpoints are local files; nothing that arrives over the network is ever unpickled.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

PathLike = str | Path


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, refused by the restricted unpickler, or not fitting the model."""


class _ShellModule(nn.Module):
    """Stand-in for an upstream class: unpickling restores its parameters, buffers and children, nothing else."""


_KAPAO_CLASSES = {
    "models.yolo": ("Model", "Detect"),
    "models.common": ("Focus", "Conv", "C3", "Bottleneck", "SPP", "Concat"),
    "torch.nn.modules.container": ("Sequential", "ModuleList"),
    "torch.nn.modules.conv": ("Conv2d",),
    "torch.nn.modules.batchnorm": ("BatchNorm2d",),
    "torch.nn.modules.activation": ("SiLU",),
    "torch.nn.modules.pooling": ("MaxPool2d",),
    "torch.nn.modules.upsampling": ("Upsample",),
}
_SHELLS: dict[tuple[str, str], type] = {
    (mod, name): type(name, (_ShellModule,), {"__module__": "intradp_ros.models.checkpoints.shell." + mod})
    for mod, names in _KAPAO_CLASSES.items()
    for name in names
}


def _allowed_functions() -> dict[tuple[str, str], Any]:
    """Non-class globals a pickled model object needs: tensor rebuilders, containers, dtypes, numpy scalars."""
    import _codecs
    import collections

    import numpy as np

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _codecs.encode,  # how protocol 2 pickles bytes (numpy arrays' data)
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for name in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
    ):
        if hasattr(torch._utils, name):
            allowed[("torch._utils", name)] = getattr(torch._utils, name)
    for name in ("float16", "float32", "float64", "bfloat16", "uint8", "int8", "int16", "int32", "int64", "bool"):
        allowed[("torch", name)] = getattr(torch, name)
    multiarray = getattr(np, "_core", None) or np.core
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray.multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.multiarray.scalar
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes by their class
    for mod in ("numpy", "numpy.dtypes"):
        for name in ("Float64DType", "Float32DType", "Int64DType"):
            if dtypes is not None and hasattr(dtypes, name):
                allowed[(mod, name)] = getattr(dtypes, name)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` only yields KAPAO shells and the allow-listed names."""

    _allowed: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles spell Python 3 names the Python 2 way (__builtin__.set); map them as pickle would.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = (module, name)
        if key in _SHELLS:
            return _SHELLS[key]
        if not RestrictedUnpickler._allowed:
            RestrictedUnpickler._allowed = _allowed_functions()
        if key in RestrictedUnpickler._allowed:
            return RestrictedUnpickler._allowed[key]
        raise CheckpointError(
            f"checkpoint refused: it references '{module}.{name}', which is not one of the "
            "KAPAO model classes or the torch/collections names a checkpoint needs"
        )


class _RestrictedPickleModule:
    """What `torch.load(pickle_module=...)` expects: an `Unpickler` class and `load`."""

    Unpickler = RestrictedUnpickler
    __name__ = "intradp_ros_restricted_pickle"

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def _torch_load_restricted(path: PathLike) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", pickle_module=_RestrictedPickleModule, weights_only=False)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt zip, truncated file, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc


def _to_fp32(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}


def read_kapao_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """fp32 state dict of the model object in an upstream KAPAO checkpoint (the EMA model when it is present)."""
    ckpt = _torch_load_restricted(path)
    if isinstance(ckpt, nn.Module):
        model = ckpt
    elif isinstance(ckpt, dict):
        model = ckpt.get("ema") or ckpt.get("model")
    else:
        model = None
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{path} is not a KAPAO checkpoint: expected a dict with a pickled 'model' object")
    return _to_fp32(model.float().state_dict())


def read_state_dict_checkpoint(path: PathLike) -> dict[str, torch.Tensor]:
    """fp32 state dict from a `weights_only=True` checkpoint: {'model': state_dict, ...} or a bare state dict."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path} as a weights-only checkpoint (state dict): {exc}") from exc
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected {{'model': state_dict, ...}} or a state dict)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}  # saved from nn.DataParallel
    return _to_fp32(state)


def _preview(keys: Iterable[str], n: int = 6) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, model_name: str) -> None:
    """Load `state` into `model` strictly; a mismatch raises CheckpointError naming missing/unexpected/misshaped
    keys."""
    own = model.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or misshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_preview(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_preview(unexpected)})")
        if misshaped:
            parts.append(f"{len(misshaped)} shape mismatches (checkpoint vs model: {'; '.join(misshaped[:4])})")
        raise CheckpointError(f"{source} does not fit {model_name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def kapao_variant_of(state: Mapping[str, torch.Tensor]) -> str:
    """Which KAPAO size a state dict belongs to, from the width of its first conv (32 / 48 / 64 channels)."""
    w = state.get("model.0.conv.conv.weight")
    by_width = {32: "s6", 48: "m6", 64: "l6"}
    if w is None or int(w.shape[0]) not in by_width:
        raise CheckpointError("state dict is not a KAPAO s6/m6/l6 model (no recognisable 'model.0.conv.conv.weight')")
    return by_width[int(w.shape[0])]
