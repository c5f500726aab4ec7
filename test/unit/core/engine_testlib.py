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
    if hasattr(o, "index") and hasattr(o, "values") and hasattr(o, "mask_shape"):  # SparseRows: positions + entries
        return [o.index, o.values]
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


def with_every_codec(plan: Any, shift: int = 0) -> Any:
    """`plan` with a lossless codec on every transfer that has one for its kind, cycling through the candidates
    (offset `shift`) so a set of plans exercises every codec: output must equal the plan's own raw output."""
    from intradp_ros.core.codec_choice import applies, candidates, codec_kind

    codecs = {}
    for i, (v, d) in enumerate(sorted({(t.node, str(t.direction)) for t in plan.transfers()})):
        node = plan.graph.nodes[v]
        fits = [c for c in candidates(codec_kind(node)) if applies(c, node)]
        if fits:
            codecs[(v, d)] = fits[(i + shift) % len(fits)]
    return plan.with_codecs(codecs)


def assert_codecs_exact(g: Any, plans: list[Any], x: torch.Tensor, shifts: int = 3) -> None:
    """Every plan with codecs on all its transfers (`shifts` rotations of the candidates) gives exactly (bit for
    bit) what the same plan gives uncompressed: a lossless codec that changes one value fails here."""
    from intradp_ros.core import run_pair

    for p in plans:
        raw = flat_tensors(run_pair(g, p, x, wire=True))
        for s in range(shifts):
            cp = with_every_codec(p, s)
            if not cp.codecs:
                continue
            got = flat_tensors(run_pair(g, cp, x))
            assert len(got) == len(raw) and all(torch.equal(a, b) for a, b in zip(raw, got)), (
                f"{p.name} with codecs {cp.codec_summary()} differs from the same plan uncompressed"
            )
