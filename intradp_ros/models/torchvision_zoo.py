"""torchvision models behind the same uint8-in graph convention as the robot models (for generic experiments).

The wrapper takes a raw uint8 image [B, 3, H, W] and normalises it inside the graph (element-wise), so the
robot sends raw bytes. Weights are never downloaded: pass a local state-dict file (`weights_only=True`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UInt8ImageModel(nn.Module):
    """`net((x / 255 - mean) / std)` with x a uint8 image; the state dict keys are the wrapped net's under `net.`."""

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_hw: Sequence[int] = (224, 224),
    ) -> None:
        super().__init__()
        self.net = net
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net((image.float() / 255.0 - self.mean) / self.std)


def build_torchvision(
    name: str, input_hw: Sequence[int] = (224, 224), num_classes: int | None = None
) -> UInt8ImageModel:
    """A randomly initialised torchvision model by name (e.g. 'resnet18', 'mobilenet_v3_small')."""
    kwargs = {} if num_classes is None else {"num_classes": int(num_classes)}
    try:
        net = torchvision.models.get_model(name, weights=None, **kwargs)
    except ValueError as exc:
        raise ValueError(f"unknown torchvision model {name!r}: {exc}") from exc
    return UInt8ImageModel(net, input_hw=input_hw)
