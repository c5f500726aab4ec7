"""Loading a model replica: build a registry model (seeded) or load its checkpoint, capture, fingerprint.

The replica's identity (`ModelConfig`, `Replica`, `weights_fingerprint`, `check_peer`) is ROS- and model-free
and lives in `intradp_ros.core.session`; building one needs the model registry, so it lives here, one layer up
(core never imports models).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import torch

from intradp_ros.core.capture_graph import capture
from intradp_ros.core.session import ModelConfig, Replica, ReplicaError, weights_fingerprint
from intradp_ros.models.registry import build


def load_replica(config: ModelConfig, device: Any = "cpu") -> Replica:
    """Build (seeded) or load the model, capture its graph on an example input, fingerprint its weights."""
    opts = dict(config.options)
    for k in ("input_size", "grid_xzy"):
        if k in opts:
            opts[k] = tuple(int(v) for v in opts[k])
    if config.weights:
        opts["weights"] = config.weights
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(config.seed)
        model = build(config.name, **opts)
    except (ValueError, TypeError, OSError) as e:
        raise ReplicaError(f"cannot build model {config.model_id}: {e}") from None
    finally:
        torch.random.set_rng_state(state)
    model = model.eval().to(device)
    example = model.input_spec.example(seed=0, device=device)
    graph = capture(model, example, check=False)
    return Replica(config, model, graph, example, weights_fingerprint(model))


def replica_bytes(rep: Replica) -> int:
    """Memory a replica's model holds in parameters and buffers (bytes): what a variant costs the server."""
    tensors = list(rep.model.parameters()) + list(rep.model.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))


class VariantCache:
    """Replicas the server builds on request (other output heads of a served model), least recently used evicted
    once their memory exceeds `budget_bytes` (the newest is always kept). Sessions hold their own reference, so
    evicting a variant a robot still uses frees nothing until that session ends, and never breaks it.

    It also remembers the fingerprints of every variant it built (bounded, `max_known`), so a request with wrong
    fingerprints for a variant built before is refused before anything is built again."""

    def __init__(self, budget_bytes: int, max_known: int = 256) -> None:
        self.budget_bytes = int(budget_bytes)
        self.max_known = int(max_known)
        self._items: OrderedDict[str, tuple[Replica, int]] = OrderedDict()
        self._known: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.evicted = 0
        self._lock = threading.Lock()

    def get(self, model_id: str) -> Replica | None:
        with self._lock:
            item = self._items.get(model_id)
            if item is None:
                return None
            self._items.move_to_end(model_id)
            return item[0]

    def put(self, rep: Replica) -> list[str]:
        """Add a built variant; returns the model ids evicted to stay within the budget."""
        size = replica_bytes(rep)
        with self._lock:
            self._items[rep.model_id] = (rep, size)
            self._items.move_to_end(rep.model_id)
            self._known[rep.model_id] = (rep.weights_fingerprint, rep.graph_fingerprint)
            self._known.move_to_end(rep.model_id)
            while len(self._known) > self.max_known:
                self._known.popitem(last=False)
            evicted = []
            while len(self._items) > 1 and self._used() > self.budget_bytes:
                old, _ = self._items.popitem(last=False)
                evicted.append(old)
            self.evicted += len(evicted)
            return evicted

    def known_fingerprints(self, model_id: str) -> tuple[str, str] | None:
        """(weights, graph) fingerprints of a variant built before (even if evicted since), else None."""
        with self._lock:
            return self._known.get(model_id)

    def _used(self) -> int:
        return sum(size for _rep, size in self._items.values())

    @property
    def bytes_used(self) -> int:
        with self._lock:
            return self._used()

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._items)
