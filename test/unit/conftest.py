"""Fixtures shared by unit tests of several packages."""

from __future__ import annotations

import pytest
import torch

from intradp_ros.core import capture


class TwoConvNet(torch.nn.Module):
    """uint8 image -> two 3x3 convolutions: the smallest graph whose split plans exchange halo rows."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x.float() / 255)))


@pytest.fixture(scope="module")
def graph_and_input():
    """(model, captured graph, 1x3x32x32 uint8 input) of TwoConvNet."""
    torch.manual_seed(0)
    m = TwoConvNet().eval()
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    return m, capture(m, x), x
