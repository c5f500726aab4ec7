"""capture(): fx and dispatch front ends, following the split axis, refusing what cannot be captured."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from engine_testlib import assert_close, one_thread  # noqa: F401 (fixture)

from intradp_ros.core import CaptureError, Plan, capture, explain, run_pair
from intradp_ros.eval.bench_engine import LoopDetect

pytestmark = pytest.mark.usefixtures("one_thread")


def check_plans(model: nn.Module, g, x: torch.Tensor, n_random: int = 8) -> None:
    with torch.no_grad():
        ref = model(x)
    plans = [Plan.device_only(g), Plan.server_only(g), Plan.row_split(g, 0.4)]
    plans += [Plan.random(g, s) for s in range(n_random)]
    for p in plans:
        assert_close(ref, run_pair(g, p, x), what=p.name)


def test_untraceable_model_falls_back_to_dispatch_recording() -> None:
    torch.manual_seed(0)
    model = LoopDetect(hw=(32, 32)).eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(CaptureError):
        capture(model, x, method="fx")
    g = capture(model, x)
    assert g.method == "dispatch"
    decode = [n for n in g.nodes if n.op == "add" and n.kind == "elementwise" and n.axis is not None]
    assert decode, "grid buffer add stays element-wise (the buffer is sliced with the rows)"
    assert any("merges" in n.reason for n in g.nodes if n.kind == "global")
    check_plans(model, g, x)


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


@pytest.mark.parametrize("method", ["auto", "dispatch"])
def test_data_dependent_control_flow_is_refused(method: str) -> None:
    with pytest.raises(CaptureError, match="data"):
        capture(DataDependent(), torch.randn(1, 3, 8, 8), method=method)


class ItemUse(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(x.mean().item())


def test_tensor_to_python_value_is_refused() -> None:
    with pytest.raises(CaptureError, match="data"):
        capture(ItemUse(), torch.randn(1, 3, 8, 8))


class SetItem(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        y[:, 0] = 0
        return y


def test_in_place_write_is_refused() -> None:
    with pytest.raises(CaptureError, match="in-place"):
        capture(SetItem(), torch.randn(1, 3, 8, 8))


class SconetLike(nn.Module):
    """[B,1,X,Z,Y] -> squeeze -> permute -> 2D convs -> x[:, None] -> Conv3d -> permute back."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.Upsample(scale_factor=2),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv3d(1, 3, 3, padding=(1, 2, 1), dilation=(1, 2, 1))
        self.bn = nn.BatchNorm3d(3)

    def forward(self, occ: torch.Tensor) -> torch.Tensor:
        x = occ.float().squeeze(1).permute(0, 2, 1, 3)  # [B, Z, X, Y]: heights become channels
        x = self.enc(x)
        x = x + 0  # a Python scalar operand
        x = x[:, None]  # [B, 1, Z, X, Y]
        y = self.bn(self.head(x))
        y += 1.0
        return y.permute(0, 1, 3, 2, 4)  # [B, C, X, Z, Y]


def test_split_axis_followed_through_squeeze_permute_and_none_index() -> None:
    torch.manual_seed(0)
    model = SconetLike().eval()
    x = (torch.rand(1, 1, 16, 4, 12) > 0.5).to(torch.uint8)
    g = capture(model, x)
    assert g.counts()["global"] == 0, explain(g)
    head = next(n for n in g.nodes if n.op == "conv3d")
    assert head.axis == 3 and head.extent == 16
    assert g.nodes[-1].axis == 2
    check_plans(model, g, x)
    so = Plan.server_only(g)
    up = [t for t in so.transfers() if t.direction == "robot->server"]
    assert sum(t.nbytes for t in up) == x.numel(), "raw uint8 occupancy rows travel"


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.ln = nn.LayerNorm(4)
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).permute(0, 2, 3, 1)  # channels last: rows stay rows
        y = self.lin(F.gelu(self.ln(y))).permute(0, 3, 1, 2)
        a = torch.softmax(y, dim=1)  # over channels: row-wise
        b = torch.flip(y, [2])  # unknown operator: global
        s = torch.softmax(y.flatten(2), dim=-1)  # over all positions: global
        return a + b + s.view_as(y)


def test_kinds_and_explain() -> None:
    torch.manual_seed(0)
    model = Mixed().eval()
    x = torch.randn(1, 3, 12, 10)
    g = capture(model, x)
    kinds = {n.op: n.kind for n in g.nodes}
    assert kinds["conv2d"] == "block" and kinds["linear"] == "row" and kinds["layer_norm"] == "row"
    assert kinds["softmax"] in ("row", "global") and kinds["flip"] == "global"
    text = explain(g)
    assert "unknown operator 'flip'" in text and "global" in text and "local operators" in text
    c = g.counts()
    assert f"{c['elementwise'] + c['block'] + c['row']} local operators" in text
    check_plans(model, g, x)


def test_nodes_expose_what_the_scheduler_needs() -> None:
    model = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=1)).eval()
    x = torch.randn(1, 3, 16, 16)
    g = capture(model, x)
    conv = g.nodes[1]
    assert (conv.index, conv.kind, conv.inputs, conv.shape, conv.dtype) == (
        1,
        "block",
        (0,),
        (1, 5, 8, 8),
        torch.float32,
    )
    assert (conv.axis, conv.extent, conv.bytes_per_row) == (2, 8, 5 * 8 * 4)
    assert g.input_rows(conv, (0, 1)) == [(0, 2)] and g.input_rows(1, (7, 8)) == [(13, 16)]
    assert len(g.fingerprint) == 16


def test_dispatch_recording_of_a_zoo_model() -> None:
    """The dispatch front end alone (no fx) on a torchvision model gives a graph that runs every plan."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    x = torch.randn(1, 3, 48, 48)
    g = capture(model, x, method="dispatch")
    assert g.method == "dispatch" and g.counts()["block"] > 20
    check_plans(model, g, x, n_random=5)
