"""0/1 graph inputs (occupancy grids) travel bit-packed; a frame that breaks the promise still travels (raw)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn

from intradp_ros.core import Plan, capture
from intradp_ros.core.executor import ClientHalf, ServerHalf
from intradp_ros.core.transport import inprocess_pair


class Occupancy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.input_spec = SimpleNamespace(value_range=(0, 1))

    def forward(self, occ: torch.Tensor) -> torch.Tensor:
        return self.conv(occ.float())


def _run(g, plan, x, wire: bool):
    a, b = inprocess_pair(None, wire=wire)
    server, client = ServerHalf(g, b, [plan], device="cpu"), ClientHalf(g, a)
    try:
        return client.infer(plan, x), a.bytes_sent
    finally:
        client.close()
        server.close()


def test_binary_input_rows_go_bit_packed() -> None:
    torch.manual_seed(0)
    m = Occupancy().eval()
    x = torch.randint(0, 2, (1, 2, 32, 16), dtype=torch.uint8)
    g = capture(m, x)
    assert g.nodes[g.input_indices[0]].binary
    plan = Plan.server_only(g)
    assert plan.bytes("robot->server") == 2 * 32 * 16 // 8
    ref = m(x)
    for wire in (False, True):
        out, sent = _run(g, plan, x, wire)
        assert torch.allclose(out, ref, atol=1e-5)
        assert sent == 2 * 32 * 16 // 8


def test_non_binary_frame_falls_back_to_raw_bytes() -> None:
    torch.manual_seed(0)
    m = Occupancy().eval()
    x = torch.randint(0, 2, (1, 2, 32, 16), dtype=torch.uint8)
    g = capture(m, x)
    y = x.clone()
    y[0, 0, 5, 5] = 7
    out, sent = _run(g, Plan.server_only(g), y, wire=True)
    assert torch.allclose(out, m(y), atol=1e-5) and sent == y.numel()


def test_models_without_the_promise_send_raw() -> None:
    m = Occupancy().eval()
    del m.input_spec
    g = capture(m, torch.randint(0, 2, (1, 2, 32, 16), dtype=torch.uint8))
    assert not g.nodes[g.input_indices[0]].binary
