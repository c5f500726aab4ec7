"""Model replicas for a client/server session: which model, built how, and a fingerprint of its weights.

Robot and server must run the same replica (same architecture, options and weights), otherwise a split
inference silently mixes two models. A replica is named by a canonical `model_id` (registry name plus its
build options as sorted JSON), loaded from a checkpoint when one is given, else with seeded random weights
(so two processes get identical weights without a file), and fingerprinted over every parameter and buffer
byte. The handshake compares `model_id`, the weights fingerprint and the captured graph's fingerprint.
Building a replica needs the model registry: `intradp_ros.models.replica.load_replica` (core never imports models).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from intradp_ros.core.graph import Graph


class ReplicaError(ValueError):
    """A model spec that cannot be built, or a replica that does not match its peer."""


_OPTION_KEYS = {"input_size", "grid_xzy", "num_classes", "batch", "head", "candidate_conf"}


@dataclass(frozen=True)
class ModelConfig:
    """One model replica: registry name, build options, checkpoint path (or None) and the init seed."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    seed: int = 0

    @property
    def model_id(self) -> str:
        """Canonical id: `name` + sorted-JSON options, e.g. 'kapao_s6{"input_size":[256,320]}'."""
        if not self.options:
            return self.name
        return self.name + json.dumps(_plain(self.options), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """From a config mapping {name, input_size | grid_xzy | num_classes, weights, seed}."""
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
            raise ReplicaError(f"model config needs a 'name', got {d!r}")
        opts = {k: v for k, v in d.items() if k in _OPTION_KEYS and v not in (None, "", [])}
        unknown = set(d) - _OPTION_KEYS - {"name", "weights", "seed"}
        if unknown:
            raise ReplicaError(f"model config {d['name']}: unknown keys {sorted(unknown)}")
        weights = d.get("weights") or None
        return cls(d["name"], _plain(opts), str(weights) if weights else None, int(d.get("seed", 0)))

    @classmethod
    def from_model_id(cls, model_id: str, weights: str | None = None, seed: int = 0) -> ModelConfig:
        """Inverse of `model_id` (options JSON must be an object of known keys)."""
        brace = model_id.find("{")
        if brace < 0:
            return cls(model_id, {}, weights, seed)
        try:
            opts = json.loads(model_id[brace:])
        except ValueError as e:
            raise ReplicaError(f"model id {model_id!r}: options are not JSON ({e})") from None
        if not isinstance(opts, dict) or set(opts) - _OPTION_KEYS:
            raise ReplicaError(f"model id {model_id!r}: options must be an object of {sorted(_OPTION_KEYS)}")
        return cls(model_id[:brace], _plain(opts), weights, seed)


def _plain(v: Any) -> Any:
    """Lists instead of tuples, so ids are the same however the options were written."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over every state-dict entry (name, dtype, shape, bytes), in name order: equal iff same weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if not isinstance(t, torch.Tensor):
            continue
        arr = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(json.dumps(list(arr.shape)).encode())
        h.update(arr.reshape(-1).view(torch.uint8).numpy().tobytes() if arr.numel() else b"")
    return h.hexdigest()[:32]


@dataclass
class Replica:
    """A built model with its captured graph, an example input and its fingerprints."""

    config: ModelConfig
    model: nn.Module
    graph: Graph
    example: torch.Tensor
    weights_fingerprint: str

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def graph_fingerprint(self) -> str:
        return self.graph.fingerprint

    def forward_local(self, x: torch.Tensor) -> Any:
        """The plain local forward (what a distributed run must equal)."""
        with torch.no_grad():
            return self.model(x)


def check_peer(replica: Replica, model_id: str, weights_fp: str, graph_fp: str) -> str | None:
    """Why a peer's replica differs from ours (None when it is the same model, weights and graph)."""
    if model_id != replica.model_id:
        return f"model {model_id!r} is not served here (this replica is {replica.model_id!r})"
    if weights_fp != replica.weights_fingerprint:
        return (
            f"weights fingerprint {weights_fp!r} differs from the server's {replica.weights_fingerprint!r} "
            f"(different checkpoint or seed)"
        )
    if graph_fp != replica.graph_fingerprint:
        return f"graph fingerprint {graph_fp!r} differs from the server's {replica.graph_fingerprint!r}"
    return None


def to_numpy_tree(value: Any) -> Any:
    """Outputs as numpy (nested tuples/lists kept), for comparisons in tests and tools."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy_tree(v) for v in value)
    return np.asarray(value)
