"""`build(name, **options)`: one entry point for every model, returning it with its input spec.

Names: kapao_s6, kapao_m6, kapao_l6, sconet, sconet_ds, torchvision:<name>. The returned module is in eval mode and
carries `input_spec` (shape, dtype) and `model_name`, so nodes and tools can stay generic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from intradp_ros.models.checkpoints import (
    CheckpointError,
    kapao_variant_of,
    load_strict,
    read_kapao_state_dict,
    read_state_dict_checkpoint,
)
from intradp_ros.models.kapao import DEFAULT_INPUT_HW, KapaoCandidates, KapaoModel
from intradp_ros.models.kapao_postprocess import KapaoThresholds
from intradp_ros.models.sconet import DEFAULT_GRID_XZY, SCONet, SconetCompletion
from intradp_ros.models.torchvision_zoo import build_torchvision


@dataclass(frozen=True)
class InputSpec:
    """What a model's graph takes: one tensor of this shape and dtype, and what it means."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    description: str
    value_range: tuple[int, int] = (0, 255)

    def example(self, seed: int = 0, device: str | torch.device = "cpu") -> torch.Tensor:
        """A random input of this spec (0..255 for images, 0/1 for occupancy grids)."""
        g = torch.Generator().manual_seed(seed)
        lo, hi = self.value_range
        return torch.randint(lo, hi + 1, self.shape, generator=g, dtype=self.dtype).to(device)

    @property
    def nbytes(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n * torch.empty((), dtype=self.dtype).element_size()


def _kapao(variant: str) -> Callable[..., nn.Module]:
    def build(
        weights: str | Path | None = None,
        input_size: Sequence[int] = DEFAULT_INPUT_HW,
        batch: int = 1,
        head: str = "detections",
        candidate_conf: float = KapaoThresholds().candidate_conf,
    ) -> nn.Module:
        model: nn.Module = KapaoModel(variant, input_size)
        if weights is not None:
            state = read_kapao_state_dict(weights)
            found = kapao_variant_of(state)
            if found != variant:
                raise CheckpointError(f"{weights} is a kapao_{found} checkpoint, not kapao_{variant}")
            load_strict(model, state, str(weights), f"kapao_{variant}")
        if head == "candidates":
            model = KapaoCandidates(model, candidate_conf)
        elif head != "detections":
            raise ValueError(
                f"KAPAO head must be 'detections' (upstream outputs) or 'candidates' (sparse), got {head!r}"
            )
        h, w = model.input_hw
        model.input_spec = InputSpec(
            (int(batch), 3, h, w), torch.uint8, f"letterboxed RGB image, uint8 CHW, {h}x{w} (multiples of 64)"
        )
        return model

    return build


def _sconet(depthwise_separable: bool) -> Callable[..., nn.Module]:
    def build(
        weights: str | Path | None = None,
        grid_xzy: Sequence[int] = DEFAULT_GRID_XZY,
        batch: int = 1,
        head: str = "logits",
    ) -> nn.Module:
        model: nn.Module = SCONet(depthwise_separable, grid_xzy)
        if weights is not None:
            name = "sconet_ds" if depthwise_separable else "sconet"
            load_strict(model, read_state_dict_checkpoint(weights), str(weights), name)
        if head == "completion":
            model = SconetCompletion(model)
        elif head != "logits":
            raise ValueError(f"SCONet head must be 'logits' (upstream output) or 'completion' (sparse), got {head!r}")
        x, z, y = model.grid_xzy
        model.input_spec = InputSpec(
            (int(batch), 1, x, z, y), torch.uint8, f"occupancy grid uint8 0/1 [B, 1, X={x}, Z={z}, Y={y}]", (0, 1)
        )
        return model

    return build


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "kapao_s6": _kapao("s6"),
    "kapao_m6": _kapao("m6"),
    "kapao_l6": _kapao("l6"),
    "sconet": _sconet(False),
    "sconet_ds": _sconet(True),
}


def available_models() -> list[str]:
    """Registered names; any `torchvision:<name>` is accepted besides these."""
    return sorted(_BUILDERS) + ["torchvision:<name>"]


def build(name: str, **options: Any) -> nn.Module:
    """Build a model by name in eval mode, with `model.input_spec` and `model.model_name` set.

    Options: `weights` (checkpoint path), `batch`; KAPAO: `input_size=(H, W)`, `head` ("detections": upstream's
    outputs, or "candidates": the sparse candidate head, with `candidate_conf`); SCONet: `grid_xzy=(X, Z, Y)`,
    `head` ("logits", or "completion": the sparse completed-voxel head);
    torchvision: `input_size=(H, W)`, `num_classes`.
    """
    if name.startswith("torchvision:"):
        tv_name = name.split(":", 1)[1]
        weights = options.pop("weights", None)
        batch = int(options.pop("batch", 1))
        input_size = tuple(options.pop("input_size", (224, 224)))
        model = build_torchvision(tv_name, input_size, **options)
        if weights is not None:
            load_strict(model.net, read_state_dict_checkpoint(weights), str(weights), name)
        model.input_spec = InputSpec(
            (batch, 3) + tuple(int(v) for v in input_size),
            torch.uint8,
            f"RGB image, uint8 CHW, {input_size[0]}x{input_size[1]}",
        )
    elif name in _BUILDERS:
        try:
            model = _BUILDERS[name](**options)
        except TypeError as exc:
            raise ValueError(f"bad options for model {name!r}: {exc}") from exc
    else:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    model.model_name = name
    return model.eval()
