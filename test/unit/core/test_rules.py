"""Property tests of the receptive-field arithmetic on random block operators and random stacks.

For one operator and an output row range, the rows the engine says are needed are exactly the rows
that change it: perturbing any row outside leaves the output rows unchanged, perturbing the first or
the last needed row changes them. Row-range computation from exactly those rows equals the full
operator. Random stacks of such operators run through run_pair under random plans equal the model.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from engine_testlib import assert_close, one_thread  # noqa: F401 (fixture)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from intradp_ros.core import Plan, capture, run_pair
from intradp_ros.core.graph import Graph
from intradp_ros.core.plan import DOWN, EMPTY, UP, PlanError

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
]

C = 2


KINDS = ["conv", "maxpool", "avgpool", "convT", "interp", "pad", "slice", "pixel_shuffle", "pixel_unshuffle"]


@st.composite
def op_spec(draw: Any, kind: str = "") -> dict:
    kind = kind or draw(st.sampled_from(KINDS))
    k = draw(st.integers(1, 7))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 3))
    if kind == "conv":
        same = s == 1 and draw(st.booleans())
        return dict(kind=kind, k=k, s=s, d=d, p="same" if same else draw(st.integers(0, (d * (k - 1)) // 2 + 1)))
    if kind == "maxpool":
        return dict(kind=kind, k=k, s=s, d=d, p=draw(st.integers(0, k // 2)), ceil=draw(st.booleans()))
    if kind == "avgpool":
        return dict(
            kind=kind, k=k, s=s, p=draw(st.integers(0, k // 2)), ceil=draw(st.booleans()), cip=draw(st.booleans())
        )
    if kind == "convT":
        p = draw(st.integers(0, d * (k - 1)))
        op = draw(st.integers(0, max(s, d) - 1))
        return dict(kind=kind, k=k, s=s, d=d, p=p, op=op)
    if kind == "interp":
        mode = draw(st.sampled_from(["nearest", "bilinear", "nearest-exact"]))
        ac = draw(st.booleans()) if mode == "bilinear" else None
        if draw(st.booleans()):
            return dict(kind=kind, mode=mode, ac=ac, scale=draw(st.sampled_from([0.5, 0.75, 1.5, 2.0, 3.0])))
        return dict(kind=kind, mode=mode, ac=ac, size=draw(st.integers(3, 40)))
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "reflect", "replicate"]))
        lim = 3 if mode != "constant" else 5
        return dict(
            kind=kind,
            mode=mode,
            top=draw(st.integers(-2 if mode == "constant" else 0, lim)),
            bottom=draw(st.integers(-2 if mode == "constant" else 0, lim)),
        )
    if kind == "slice":
        return dict(kind=kind, start=draw(st.integers(0, 3)), step=draw(st.integers(1, 3)))
    return dict(kind=kind, r=draw(st.integers(2, 3)))


def out_rows(spec: dict, h: int) -> int:
    """Rows after the op, or 0 if the op is invalid at this height."""
    x = torch.zeros(1, C * 9, h, 6)
    try:
        return int(apply(spec, x, make_params(spec, 0)).shape[2])
    except (RuntimeError, ValueError):
        return 0


def make_params(spec: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    if spec["kind"] == "conv":
        return dict(w=torch.randn(C, C, spec["k"], 3, generator=g), b=torch.randn(C, generator=g))
    if spec["kind"] == "convT":
        return dict(w=torch.randn(C, C, spec["k"], 2, generator=g), b=torch.randn(C, generator=g))
    return {}


def apply(spec: dict, x: torch.Tensor, prm: dict) -> torch.Tensor:
    k = spec["kind"]
    if k == "conv":
        pad = spec["p"] if spec["p"] == "same" else (spec["p"], 1)
        return F.conv2d(x, prm["w"], prm["b"], stride=(spec["s"], 1), padding=pad, dilation=(spec["d"], 1))
    if k == "maxpool":
        return F.max_pool2d(x, (spec["k"], 2), (spec["s"], 1), (spec["p"], 0), (spec["d"], 1), spec["ceil"])
    if k == "avgpool":
        return F.avg_pool2d(x, (spec["k"], 1), (spec["s"], 1), (spec["p"], 0), spec["ceil"], spec["cip"])
    if k == "convT":
        return F.conv_transpose2d(
            x, prm["w"], prm["b"], (spec["s"], 1), (spec["p"], 0), (spec["op"], 0), 1, (spec["d"], 1)
        )
    if k == "interp":
        kw = dict(scale_factor=(spec["scale"], 1.0)) if "scale" in spec else dict(size=(spec["size"], x.shape[3]))
        if spec["mode"] == "bilinear":
            kw["align_corners"] = spec["ac"]
        return F.interpolate(x, mode=spec["mode"], **kw)
    if k == "pad":
        return F.pad(x, (1, 1, spec["top"], spec["bottom"]), mode=spec["mode"])
    if k == "slice":
        return x[:, :, spec["start"] :: spec["step"], :]
    if k == "pixel_shuffle":
        return F.pixel_shuffle(x, spec["r"])
    return F.pixel_unshuffle(x, spec["r"])


class Stack(nn.Module):
    def __init__(self, specs: list[dict], seed: int = 0) -> None:
        super().__init__()
        self.specs = specs
        self.prm = [make_params(s, seed + i) for i, s in enumerate(specs)]
        for i, p in enumerate(self.prm):
            for name, t in p.items():
                self.register_buffer(f"{name}{i}", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, s in enumerate(self.specs):
            x = apply(s, x, {n: getattr(self, f"{n}{i}") for n in self.prm[i]})
        return x


def channels_in(specs: list[dict]) -> int:
    """Input channels so that (un)shuffles keep C channels in the middle."""
    c = C
    for s in reversed(specs):
        if s["kind"] == "pixel_shuffle":
            c = c * s["r"] ** 2
        elif s["kind"] == "pixel_unshuffle":
            c = c // s["r"] ** 2
    return c


def valid_stack(specs: list[dict], h: int) -> bool:
    c = C
    for s in specs:
        if s["kind"] == "pixel_unshuffle" and h % s["r"]:
            return False
        if s["kind"] == "pixel_shuffle" and c % (s["r"] ** 2):
            return False
    return True


def composed_need(g: Graph, rows: tuple[int, int]) -> tuple[int, int]:
    """Rows of the input (node 0) needed for `rows` of the last node, following the chain back."""
    need: dict[int, tuple[int, int]] = {len(g) - 1: rows}
    for n in reversed(g.nodes):
        r = need.get(n.index)
        if r is None or n.is_input:
            continue
        for u, ur in zip(n.inputs, g.input_rows(n, r)):
            if ur is not None:
                old = need.get(u)
                need[u] = ur if old is None else (min(old[0], ur[0]), max(old[1], ur[1]))
    return need.get(0, (0, 0))


def perturbed(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    y = x.clone()
    if rows:
        y[:, :, rows, :] += 100.0
    return y


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind", KINDS)
def test_single_op_needs_exactly_the_rows_that_change_it(kind: str) -> None:
    check_single_op(kind)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def check_single_op(kind: str, data: Any) -> None:
    spec = data.draw(op_spec(kind))
    h = data.draw(st.integers(4, 30))
    cin = C * (spec["r"] ** 2 if spec["kind"] == "pixel_shuffle" else 1)
    if spec["kind"] == "pixel_unshuffle":
        h = max(spec["r"], h - h % spec["r"])
    if spec["kind"] == "pad" and spec["mode"] != "constant":
        h = max(h, max(spec["top"], spec["bottom"]) + 1)
    model = Stack([spec]).eval()
    x = torch.randn(1, cin, h, 6, generator=torch.Generator().manual_seed(h))
    try:
        full = model(x)
    except (RuntimeError, ValueError):
        return  # parameters invalid for this height: nothing to check
    if full.shape[2] < 1:
        return
    g = capture(model, x)
    event(f"checked {spec['kind']}")
    node = g.nodes[-1]
    assert node.kind in ("block", "elementwise"), (spec, node.kind, node.reason)
    e = node.extent
    if node.axis is None:  # a single output row: computed whole from whole input
        assert e == 1 and g.input_rows(node, (0, 1)) == [(0, h)]
        return
    a = data.draw(st.integers(0, e - 1))
    b = data.draw(st.integers(a + 1, e))
    (need,) = g.input_rows(node, (a, b))
    if need is None:  # rows made only of padding: no input row matters
        assert torch.equal(model(perturbed(x, list(range(h))))[:, :, a:b], full[:, :, a:b])
        return
    lo, hi = need
    outside = [r for r in range(h) if r < lo or r >= hi]
    same = model(perturbed(x, outside))[:, :, a:b]
    assert torch.allclose(same, full[:, :, a:b], atol=1e-5), f"{spec}: rows outside [{lo},{hi}) changed [{a},{b})"
    for edge in {lo, hi - 1}:
        changed = model(perturbed(x, [edge]))[:, :, a:b]
        assert not torch.allclose(changed, full[:, :, a:b], atol=1e-3), (
            f"{spec}: row {edge} does not matter for [{a},{b})"
        )
    piece = x[:, :, lo:hi]
    got = node.rowmap.run(a, b, [piece], g.constants)
    assert torch.allclose(got, full[:, :, a:b], atol=1e-5, rtol=1e-5), f"{spec}: row-range result differs"


@SETTINGS
@given(
    specs=st.lists(op_spec(), min_size=2, max_size=4), h=st.integers(8, 40), seed=st.integers(0, 10**6), data=st.data()
)
def test_random_stacks_rows_and_plans(specs: list[dict], h: int, seed: int, data: Any) -> None:
    if not valid_stack(specs, h):
        return
    cin = channels_in(specs)
    if cin < 1 or cin != int(cin):
        return
    model = Stack(specs, seed).eval()
    x = torch.randn(1, cin, h, 6, generator=torch.Generator().manual_seed(seed))
    try:
        full = model(x)
    except (RuntimeError, ValueError):
        return
    if full.shape[2] < 1 or full.numel() == 0:
        return
    g = capture(model, x)
    event("checked stack")
    e = g.nodes[-1].extent
    a = data.draw(st.integers(0, e - 1))
    b = data.draw(st.integers(a + 1, e))
    lo, hi = composed_need(g, (a, b))
    outside = [r for r in range(h) if r < lo or r >= hi]
    same = model(perturbed(x, outside))[:, :, a:b]
    assert torch.allclose(same, full[:, :, a:b], atol=1e-4), f"{specs}: rows outside [{lo},{hi}) changed [{a},{b})"
    for s in range(2):
        plan = Plan.random(g, seed + s)
        if s % 2:  # banded too: random band boundaries on both sides
            plan = plan.with_random_bands(seed + s)
        assert_close(full, run_pair(g, plan, x), what=f"{specs} {plan.name}")


def test_pool_rows_that_read_only_padding() -> None:
    """Regression (found by the random-stack property test): a dilated max-pool whose output row reads only
    padding needs no input row; capturing and running it split must still give torch's -inf rows."""
    specs = [
        {"kind": "conv", "k": 1, "s": 1, "d": 1, "p": 0},
        {"kind": "conv", "k": 2, "s": 3, "d": 2, "p": 0},
        {"kind": "maxpool", "k": 2, "s": 1, "d": 3, "p": 1, "ceil": False},
    ]
    model = Stack(specs, 0).eval()
    x = torch.randn(1, int(channels_in(specs)), 8, 6, generator=torch.Generator().manual_seed(0))
    full = model(x)
    g = capture(model, x)
    assert g.input_rows(g.nodes[-1], (0, 1)) == [None]
    for plan in (
        Plan.device_only(g),
        Plan.server_only(g),
        Plan.server_only(g, bands=3),
        Plan.random(g, 0),
        Plan.random(g, 1),
    ):
        assert torch.allclose(run_pair(g, plan, x), full, atol=1e-4), plan.name


def test_server_rows_of_padding_only_before_the_robots_first_tile() -> None:
    """Regression (found by the random-stack property test): the server computes row 0 of a transposed convolution,
    made only of bias (it reads no input row), which the robot needs before it can send its first tile. The server
    half starts on a request's first tile, so the robot must announce the request (FLAG_START); without it both
    sides waited for each other until the tile timeout."""
    specs = [
        {"kind": "convT", "k": 2, "s": 2, "d": 2, "p": 1, "op": 1},
        {"kind": "conv", "k": 7, "s": 2, "d": 2, "p": 0},
        {"kind": "conv", "k": 1, "s": 1, "d": 1, "p": 0},
    ]
    model = Stack(specs, 14).eval()
    x = torch.randn(1, int(channels_in(specs)), 8, 6, generator=torch.Generator().manual_seed(14))
    full = model(x)
    g = capture(model, x)
    assert g.input_rows(g.nodes[1], (0, 1)) == [None]
    plan = Plan(g, [(0, 8), (1, 16), (0, 2), (0, 2)], [EMPTY, (0, 1), EMPTY, (1, 2)], "padding_rows_first")
    directions = [(t.node, t.direction) for t in plan.transfers()]
    assert directions == [(1, DOWN), (2, UP)]  # the server's tile must come before the robot's
    assert plan.server_needs_start()
    for p in (plan, plan.with_random_bands(15), Plan.random(g, 15)):
        assert torch.allclose(run_pair(g, p, x, timeout=5.0), full, atol=1e-4), p.name


def test_a_plan_whose_sides_wait_for_each_other_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A side that can never receive the rows it waits for fails the request at once, naming the blocked step and
    the cause, not after the tile timeout: here the server is never told of the request (the announcement rule is
    broken on purpose, as it was before the fix above), so its row 0 never comes down."""
    specs = [
        {"kind": "convT", "k": 2, "s": 2, "d": 2, "p": 1, "op": 1},
        {"kind": "conv", "k": 7, "s": 2, "d": 2, "p": 0},
        {"kind": "conv", "k": 1, "s": 1, "d": 1, "p": 0},
    ]
    model = Stack(specs, 14).eval()
    x = torch.randn(1, int(channels_in(specs)), 8, 6, generator=torch.Generator().manual_seed(14))
    g = capture(model, x)
    plan = Plan(g, [(0, 8), (1, 16), (0, 2), (0, 2)], [EMPTY, (0, 1), EMPTY, (1, 2)], "padding_rows_first")
    monkeypatch.setattr(Plan, "server_needs_start", lambda self: False)
    with pytest.raises(PlanError, match=r"robot node 2 .* \[\[1, 0, 1\]\] that are never sent .*never starts"):
        run_pair(g, plan, x)  # before any tile leaves: without the check, a "tile lost" error after 30 s
