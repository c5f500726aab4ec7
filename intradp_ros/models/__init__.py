"""The robot models (KAPAO, SCONet), torchvision wrappers, their pre/post-processing and checkpoint loaders.

Entry point: `intradp_ros.models.build(name, **options)` -> nn.Module with `.input_spec`.
"""

from typing import Any

__all__ = ["build", "available_models", "InputSpec", "CheckpointError"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing a submodule (e.g. voxels) does not pay for torchvision.
    if name in ("build", "available_models", "InputSpec"):
        from intradp_ros.models import registry

        return getattr(registry, name)
    if name == "CheckpointError":
        from intradp_ros.models.checkpoints import CheckpointError

        return CheckpointError
    raise AttributeError(f"module 'intradp_ros.models' has no attribute {name!r}")
