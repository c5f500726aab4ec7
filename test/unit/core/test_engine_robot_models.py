"""run_pair equals the local forward for the two robot models (KAPAO s6 at a small input, SCONet at
its fixed 256x256x32 grid on a few plans: it is the slowest test of the engine), unbanded and in row bands, and
with lossless codecs on every transfer (bit-exact against the same plan uncompressed)."""

from __future__ import annotations

import pytest
import torch
from engine_testlib import assert_close, assert_codecs_exact, one_thread  # noqa: F401 (fixture)

from intradp_ros.core import Plan, capture, run_pair

pytestmark = pytest.mark.usefixtures("one_thread")

registry = pytest.importorskip("intradp_ros.models.registry")


def test_kapao_s6_small_input_all_plan_kinds() -> None:
    torch.manual_seed(0)
    model = registry.build("kapao_s6", input_size=(128, 192))
    x = model.input_spec.example(seed=1)
    g = capture(model, x)
    assert g.nodes[0].dtype == torch.uint8
    with torch.no_grad():
        ref = model(x)
    plans = [Plan.device_only(g), Plan.server_only(g), Plan.row_split(g, 0.5)]
    plans += [Plan.layer_partition(g, c) for c in range(1, len(g), len(g) // 5)]
    plans += [Plan.random(g, s).with_random_bands(s) if s % 2 else Plan.random(g, s) for s in range(20)]
    plans += [Plan.server_only(g, bands=4), Plan.row_split(g, 0.5).with_bands(3)]
    for p in plans:
        assert_close(ref, run_pair(g, p, x), what=p.name)
    up = sum(t.nbytes for t in Plan.server_only(g).transfers() if t.direction == "robot->server")
    assert up == x.numel(), "server-only sends the raw uint8 image"
    picks = [Plan.server_only(g), Plan.row_split(g, 0.5), Plan.server_only(g, bands=4), Plan.random(g, 3)]
    assert_codecs_exact(g, picks, x)


def test_sconet_a_few_plans() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = registry.build("sconet")
    x = model.input_spec.example(seed=1)
    g = capture(model, x)
    conv3d = [n for n in g.nodes if n.op == "conv3d"]
    assert conv3d and all(n.kind == "block" and n.extent == 256 for n in conv3d), "3D head is split along x"
    with torch.no_grad():
        ref = model(x)
    for p in [Plan.row_split(g, 0.5), Plan.random(g, 0), Plan.random(g, 1).with_random_bands(1)]:
        assert_close(ref, run_pair(g, p, x), what=p.name)


def test_sconet_small_completion_with_codecs_is_bit_exact() -> None:
    """Bit-packed occupancy + zstd up, the sparse completion (compact positions + zstd) and float rows down."""
    torch.manual_seed(0)
    model = registry.build("sconet", grid_xzy=(32, 32, 32), head="completion")
    x = model.input_spec.example(seed=1)
    g = capture(model, x)
    with torch.no_grad():
        ref = model(x)
    plans = [Plan.server_only(g), Plan.row_split(g, 0.5), Plan.random(g, 2), Plan.random(g, 5).with_random_bands(5)]
    for p in plans:
        assert_close(ref, run_pair(g, p, x), what=p.name)
    assert_codecs_exact(g, plans, x, shifts=2)
