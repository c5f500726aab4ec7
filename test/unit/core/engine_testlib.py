"""Helpers shared by the engine tests: output comparison within the contract's tolerance, a link that mangles
tiles in flight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from intradp_ros.core.tile import Tile
from intradp_ros.core.transport import InProcessTransport, Transport


def flat_tensors(o: Any) -> list[torch.Tensor]:
    if isinstance(o, torch.Tensor):
        return [o]
    if isinstance(o, (tuple, list)):
        return [t for i in o for t in flat_tensors(i)]
    if isinstance(o, dict):
        return [t for v in o.values() for t in flat_tensors(v)]
    return []


def rel_error(ref: Any, got: Any) -> float:
    """Max abs error relative to each output's scale (max abs value), over all output tensors."""
    a = [t.detach() for t in flat_tensors(ref)]
    b = [t.detach() for t in flat_tensors(got)]
    assert len(a) == len(b), f"{len(a)} outputs expected, got {len(b)}"
    worst = 0.0
    for x, y in zip(a, b):
        assert x.shape == y.shape, f"shape {tuple(y.shape)} != {tuple(x.shape)}"
        assert x.dtype == y.dtype, f"dtype {y.dtype} != {x.dtype}"
        if x.numel() == 0:
            continue
        scale = max(float(x.double().abs().max()), 1e-12)
        worst = max(worst, float((x.double() - y.double().to(x.device)).abs().max()) / scale)
    return worst


def assert_close(ref: Any, got: Any, tol: float = 1e-4, what: str = "") -> None:
    err = rel_error(ref, got)
    assert err <= tol, f"{what}: relative max abs error {err:.3g} > {tol:g}"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread while a module's tests run: executors run robot and server halves in two
    Python threads, and two OpenMP teams spinning on a shared 2-core machine slow everything down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class MangledEnd(Transport):
    """Wraps a transport end; `mangle(tile)` returns the tiles to really send (may drop, duplicate, corrupt,
    raise or block), so tests make a faulty link without timing."""

    def __init__(self, inner: InProcessTransport, mangle: Callable[[Tile], list[Tile]]) -> None:
        self.inner, self.mangle = inner, mangle

    def send(self, tile: Tile) -> None:
        for t in self.mangle(tile):
            self.inner.send(t)

    def recv(self, timeout: float | None = None) -> Tile | None:
        return self.inner.recv(timeout)

    def close(self) -> None:
        self.inner.close()
