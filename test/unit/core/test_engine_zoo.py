"""run_pair equals the local forward for the torchvision zoo and a U-Net, under device-only,
server-only, layer-partition and random plans, unbanded and in row bands (streaming: server-only with k bands,
a row split cut into aligned bands, every odd-seeded random plan with random band boundaries), float32, error
<= 1e-4 of the output's scale; with lossless codecs on every transfer the output equals the same plan's
uncompressed output bit for bit."""

from __future__ import annotations

import pytest
import torch
import torchvision
from engine_testlib import assert_close, assert_codecs_exact, one_thread  # noqa: F401 (fixture)

from intradp_ros.core import Plan, capture, run_pair
from intradp_ros.eval.bench_engine import TinyUNet

pytestmark = pytest.mark.usefixtures("one_thread")

N_RANDOM = 20


def random_plans(g, n: int) -> list:
    """n random plans; odd seeds also get random bands on both sides (banded execution must be exact too)."""
    return [Plan.random(g, s).with_random_bands(s) if s % 2 else Plan.random(g, s) for s in range(n)]


def banded_plans(g) -> list:
    return [Plan.server_only(g, bands=4), Plan.row_split(g, 0.5).with_bands(3), Plan.halo_split(g, 0.4).with_bands(5)]


ZOO = [  # (name, input side): small inputs keep the suite fast
    ("vgg19_bn", 32),
    ("resnet50", 64),
    ("resnext50_32x4d", 64),
    ("densenet121", 64),
    ("convnext_tiny", 64),
    ("regnet_x_1_6gf", 64),
    ("mobilenet_v3_large", 64),
    ("efficientnet_b0", 64),
]


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


def _check_plans(g, model, x, plans) -> None:
    with torch.no_grad():
        ref = model(x)
    for p in plans:
        assert_close(ref, run_pair(g, p, x), what=p.name)


@pytest.mark.parametrize("name,side", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_model_all_plan_kinds(name: str, side: int) -> None:
    model = _model(name)
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    g = capture(model, x)
    plans = [Plan.device_only(g), Plan.server_only(g), Plan.row_split(g, 0.5), Plan.halo_split(g, 0.4)]
    plans += banded_plans(g) + random_plans(g, N_RANDOM)
    cuts = range(1, len(g), max(1, len(g) // 6))  # a spread of layer partitions (all of them for the U-Net)
    plans += [Plan.layer_partition(g, c) for c in cuts]
    _check_plans(g, model, x, plans)
    # lossless codecs on every transfer (image rows as uint8, so WebP and delta+zstd run too): bit-exact
    x8 = torch.randint(0, 256, (1, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    g8 = capture(_Uint8Input(model), x8)
    picks = [Plan.server_only(g8), Plan.row_split(g8, 0.5), Plan.server_only(g8, bands=3)]
    assert_codecs_exact(g8, picks + [Plan.random(g8, s).with_random_bands(s) for s in (1, 2)], x8, shifts=2)


class _Uint8Input(torch.nn.Module):
    """A model fed uint8 image rows (as the robot models are), normalised inside the graph."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float() / 255.0)


def test_unet_every_layer_partition_and_random_plans() -> None:
    torch.manual_seed(0)
    model = TinyUNet().eval()
    x = torch.randint(0, 256, (1, 3, 32, 48), dtype=torch.uint8)
    g = capture(model, x)
    assert g.counts()["global"] == 0, "every U-Net operator is local"
    plans = [Plan.device_only(g), Plan.server_only(g), Plan.halo_split(g, 0.5), Plan.halo_split(g, 0.2)]
    plans += [Plan.layer_partition(g, c) for c in range(len(g) + 1)]
    plans += banded_plans(g) + random_plans(g, N_RANDOM)
    _check_plans(g, model, x, plans)


def test_mobilenet_every_layer_partition() -> None:
    model = _model("mobilenet_v3_large")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    g = capture(model, x)
    _check_plans(g, model, x, [Plan.layer_partition(g, c) for c in range(len(g) + 1)])


def test_large_input_row_splits() -> None:
    """One large input: the U-Net at 384x512 split at several row fractions and random plans."""
    torch.manual_seed(0)
    model = TinyUNet(c=4).eval()
    x = torch.randint(0, 256, (1, 3, 384, 512), dtype=torch.uint8)
    g = capture(model, x)
    plans = (
        [Plan.row_split(g, f) for f in (0.25, 0.8)]
        + [Plan.halo_split(g, 0.5)]
        + random_plans(g, 3)
        + [Plan.server_only(g, bands=16)]
    )
    _check_plans(g, model, x, plans)
