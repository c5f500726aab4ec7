"""Loading a model replica: build a registry model (seeded) or load its checkpoint, capture, fingerprint.

The replica's identity (`ModelConfig`, `Replica`, `weights_fingerprint`, `check_peer`) is ROS- and model-free
and lives in `intradp_ros.core.session`; building one needs the model registry, so it lives here, one layer up
(core never imports models).
"""

from __future__ import annotations

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
