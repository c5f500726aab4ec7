"""Issue 11's CUDA rule, checked by proxy on the CPU: bands run without host synchronisation except where a tile
leaves the device.

No GPU here or in CI, so every call that would force a host sync on CUDA is recorded while the runtime's real
halves (`run_pair`: ClientHalf + ServerHalf, their stages and sender threads) run banded plans on the CPU:
`HostSyncRecorder` enters a `torch.overrides.TorchFunctionMode` in each stage thread (around `Stage.run`) and
around `make_tile` (the sender thread's only way from a computed value to wire bytes: "the send path"), and
wraps `torch.cuda.synchronize` and the stream / event `synchronize` methods, which are no torch functions. Each
call is attributed to where it happened: a band (a step of `Stage._run_step`, naming its node and rows), the
stage outside any step (output assembly), or the send path.

The rule: dense models under banded plans sync only in the send path. The one exception is a sparse gather
(`sparse_select`, KAPAO's candidates / SCONet's changed voxels): its number of survivors is data, so selecting
them syncs on CUDA in local inference too; syncs are allowed at steps of sparse nodes and nowhere else. A
deliberate sync in a band is caught (the recorder's own test), so an empty record means something.

Out of the proxy's sight: copies from host to device of received tiles (`check_tile`, in the receiver thread,
from pageable numpy memory) and anything a C++ kernel does on its own; with a GPU, `torch.cuda.set_sync_debug_mode`
is the direct check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn as nn
from engine_testlib import assert_close
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from intradp_ros.core import Plan, capture, run_pair
from intradp_ros.core.runtime import halves
from intradp_ros.core.runtime.stage import Stage
from intradp_ros.core.sparse import sparse_select

# Tensor methods / torch functions that wait for the device (a value, a size or a copy the host needs now)
ALWAYS_SYNC = frozenset(
    {
        "item",
        "tolist",
        "numpy",
        "cpu",
        "__bool__",
        "__int__",
        "__float__",
        "__index__",
        "__complex__",
        "__array__",
        "__format__",
        "__repr__",
        "_local_scalar_dense",
        "nonzero",
        "argwhere",
        "masked_select",
        "unique",
        "unique_consecutive",
        "bincount",
        "equal",
        "allclose",
        "is_nonzero",
    }
)
# aten operators that wait for the device: what the dispatcher sees, also inside Python-level torch functions
# (a TorchFunctionMode handler runs its function with the mode off, e.g. sparse_select's own nonzero)
ATEN_SYNC = frozenset(
    {"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_consecutive", "unique_dim", "bincount",
     "equal", "is_nonzero"}
)  # fmt: skip
CUDA_SYNC_CALLS = (  # (owner, attribute): host waits for the device; no torch functions, so wrapped one by one
    (torch.cuda, "synchronize"),
    (torch.cuda.Stream, "synchronize"),
    (torch.cuda.Event, "synchronize"),
)


def _is_cpu(device: Any) -> bool:
    if isinstance(device, torch.Tensor):
        return device.device.type == "cpu"
    if isinstance(device, (torch.device, str)):
        try:
            return torch.device(device).type == "cpu"
        except RuntimeError:
            return False
    return False


def _is_mask(index: Any) -> bool:
    if isinstance(index, torch.Tensor):
        return index.dtype in (torch.bool, torch.uint8)
    if isinstance(index, (tuple, list)):
        return any(_is_mask(i) for i in index)
    return False


def host_sync(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """What makes this call wait for the device on CUDA (None when it does not)."""
    name = getattr(func, "__name__", "")
    if name in ALWAYS_SYNC:
        return name
    if name == "to" and (any(_is_cpu(a) for a in args[1:]) or _is_cpu(kwargs.get("device"))):
        return "to(cpu)"
    if name == "copy_" and args and isinstance(args[0], torch.Tensor) and args[0].device.type == "cpu":
        return "copy_ into host memory"
    if name == "__getitem__" and len(args) > 1 and _is_mask(args[1]):
        return "boolean-mask indexing"
    if name == "where" and len(args) == 1 and not kwargs:
        return "where(condition)"
    if name == "repeat_interleave" and "output_size" not in kwargs and isinstance(kwargs.get("repeats"), torch.Tensor):
        return "repeat_interleave without output_size"
    return None


def aten_sync(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """What makes this aten operator wait for the device on CUDA (None when it does not)."""
    name = func.overloadpacket.__name__
    if name in ATEN_SYNC:
        return f"aten.{name}"
    if name == "index" and len(args) > 1 and _is_mask(list(i for i in args[1] if i is not None)):
        return "aten.index with a mask"
    if name in ("_to_copy", "copy_") and args and isinstance(args[0], torch.Tensor):
        dest = args[0] if name == "copy_" else kwargs.get("device")
        src = args[1] if name == "copy_" and len(args) > 1 else args[0]
        if _is_cpu(dest) and isinstance(src, torch.Tensor) and src.device.type != "cpu":
            return f"aten.{name} to host"
    return None


@dataclass(frozen=True)
class SyncCall:
    where: str  # "band", "stage" (inside Stage.run, outside any step) or "send" (make_tile)
    what: str  # the call
    side: str = ""
    node: int = -1
    op: str = ""
    sparse: bool = False
    rows: tuple[int, int] = (0, 0)

    def __str__(self) -> str:
        at = f" at {self.side} node {self.node} {self.op} rows {self.rows}" if self.node >= 0 else f" ({self.side})"
        return f"{self.what} in {self.where}{at}"


class _Where(threading.local):
    def __init__(self) -> None:
        self.where = ""
        self.side = ""
        self.step: Any = None


class HostSyncRecorder:
    """Records host-sync calls of the runtime (see the module docstring); `calls` after the run."""

    def __init__(self) -> None:
        self.calls: list[SyncCall] = []
        self._lock = threading.Lock()
        self._tls = _Where()

    def record(self, what: str) -> None:
        t = self._tls
        if not t.where:
            return
        st = t.step
        if t.where == "stage" and st is not None:
            n = st.node
            call = SyncCall("band", what, t.side, n.index, n.op, n.is_sparse, tuple(st.rows))
        else:
            call = SyncCall(t.where, what, t.side)
        with self._lock:
            self.calls.append(call)

    def at(self, where: str) -> list[SyncCall]:
        return [c for c in self.calls if c.where == where]

    @contextmanager
    def _in(self, where: str, side: str = "") -> Iterator[None]:
        t = self._tls
        before = (t.where, t.side)
        t.where, t.side = where, side or t.side
        try:
            with _Aten(self), _Mode(self):
                yield
        finally:
            t.where, t.side = before

    @contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostSyncRecorder]:
        """Wrap the stage, its steps, the send path and the CUDA sync calls for the duration."""
        rec = self
        run, run_step, make_tile = Stage.run, Stage._run_step, halves.make_tile

        def stage_run(stage: Stage, *a: Any, **k: Any) -> Any:
            with rec._in("stage", stage.side):
                return run(stage, *a, **k)

        def stage_step(stage: Stage, step: Any, *a: Any, **k: Any) -> Any:
            rec._tls.step = step
            try:
                return run_step(stage, step, *a, **k)
            finally:
                rec._tls.step = None

        def send_path(*a: Any, **k: Any) -> Any:
            with rec._in("send"):
                return make_tile(*a, **k)

        monkeypatch.setattr(Stage, "run", stage_run)
        monkeypatch.setattr(Stage, "_run_step", stage_step)
        monkeypatch.setattr(halves, "make_tile", send_path)
        for owner, attr in CUDA_SYNC_CALLS:
            original = getattr(owner, attr)

            def wrapped(*a: Any, _original: Any = original, _name: str = attr, **k: Any) -> Any:
                rec.record(f"torch.cuda {_name}")
                if torch.cuda.is_available():
                    return _original(*a, **k)
                return None

            monkeypatch.setattr(owner, attr, wrapped)
        yield self


class _Mode(TorchFunctionMode):
    def __init__(self, rec: HostSyncRecorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        what = host_sync(func, args, kwargs)
        if what is not None:
            self.rec.record(what)
        return func(*args, **kwargs)


class _Aten(TorchDispatchMode):
    def __init__(self, rec: HostSyncRecorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        what = aten_sync(func, args, kwargs)
        if what is not None:
            self.rec.record(what)
        return func(*args, **kwargs)


# ----------------------------------------------------------------------------------------- models and plans
class SmallCNN(nn.Module):
    """uint8 image -> stem, a residual block, pooling, a 1x1 head: convolutions, batch norm, ReLU, add, max
    pooling, interpolation (the operators bands cut), and a global mean."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
        )
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.head = nn.Conv2d(12, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x.float() / 255)
        y = torch.relu(y + self.block(y))
        y = nn.functional.max_pool2d(self.down(y), 2)
        return nn.functional.interpolate(self.head(y), scale_factor=2.0), y.mean((2, 3))  # a global node too


class Candidates(nn.Module):
    """Conv stack, then the positions whose first channel passes a threshold (a KAPAO-like sparse gather)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 5, 3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> Any:
        y = self.c2(torch.relu(self.c1(x.float() / 255))).unflatten(1, (1, 5)).permute(0, 1, 3, 4, 2)
        return sparse_select(y[..., 0] > -0.05, y, density=0.1)


def banded_plans(g: Any) -> list[Plan]:
    """Server-only with the input in bands, a layer partition with both sides in bands, random splits in bands
    (aligned to the input's bands and not)."""
    mid = len(g.nodes) // 2
    plans = [Plan.server_only(g, bands=4), Plan.layer_partition(g, mid).with_bands(4)]
    plans += [Plan.random(g, s).with_bands(3) for s in range(4)]
    plans += [Plan.random(g, 7).with_bands(3, aligned=False), Plan.row_split(g, 0.5).with_bands(2)]
    return plans


class Resnet18(nn.Module):
    """torchvision's ResNet-18 (10 classes) on a uint8 image: the zoo's operators (strided and 1x1 convolutions,
    residual adds, max pooling, adaptive average pooling, flatten + linear)."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision

        self.net = torchvision.models.resnet18(num_classes=10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float() / 255)


@pytest.fixture(scope="module", params=["small_cnn", "resnet18"])
def dense(request: pytest.FixtureRequest) -> tuple[nn.Module, Any, torch.Tensor]:
    torch.manual_seed(0)
    m = (SmallCNN() if request.param == "small_cnn" else Resnet18()).eval()
    x = torch.randint(0, 256, (1, 3, 32, 24) if request.param == "small_cnn" else (1, 3, 64, 64), dtype=torch.uint8)
    return m, capture(m, x), x


@pytest.fixture(scope="module")
def candidates() -> tuple[nn.Module, Any, torch.Tensor]:
    torch.manual_seed(0)
    m = Candidates().eval()
    x = torch.randint(0, 256, (1, 3, 40, 24), dtype=torch.uint8)
    return m, capture(m, x), x


def _show(calls: list[SyncCall], most: int = 8) -> str:
    more = f" and {len(calls) - most} more" if len(calls) > most else ""
    return "; ".join(str(c) for c in calls[:most]) + more


def _run(monkeypatch: pytest.MonkeyPatch, g: Any, plan: Plan, x: torch.Tensor) -> tuple[Any, HostSyncRecorder]:
    rec = HostSyncRecorder()
    with monkeypatch.context() as mp, rec.installed(mp), torch.no_grad():
        out = run_pair(g, plan, x)
    return out, rec


# ----------------------------------------------------------------------------------------- the rule
def test_dense_bands_sync_only_where_a_tile_leaves_the_device(monkeypatch: pytest.MonkeyPatch, dense: tuple) -> None:
    m, g, x = dense
    with torch.no_grad():
        ref = m(x)
    for plan in banded_plans(g):
        assert plan.max_bands() > 1, plan.name
        out, rec = _run(monkeypatch, g, plan, x)
        assert_close(ref, out, what=plan.name)
        inside = [c for c in rec.calls if c.where != "send"]
        assert not inside, f"{plan.name}: host syncs inside the stages: {_show(inside)}"
        # the recorder sees the sender threads: every tile left through make_tile's host copy
        assert rec.at("send") and {c.what for c in rec.at("send")} <= {"numpy", "cpu"}, plan.name


def test_sparse_gathers_are_the_only_band_syncs(monkeypatch: pytest.MonkeyPatch, candidates: tuple) -> None:
    m, g, x = candidates
    with torch.no_grad():
        ref = m(x)
    sparse_nodes = {n.index for n in g.nodes if n.is_sparse}
    assert sparse_nodes
    seen_sparse_sync = False
    for plan in banded_plans(g) + [Plan.row_split(g, 0.4).with_bands(3)]:
        out, rec = _run(monkeypatch, g, plan, x)
        assert out.equal(ref, atol=1e-5), plan.name
        stray = [c for c in rec.calls if c.where == "stage" or (c.where == "band" and not c.sparse)]
        assert not stray, f"{plan.name}: host syncs outside the sparse gathers and the send path: {_show(stray)}"
        seen_sparse_sync |= any(c.where == "band" and c.node in sparse_nodes for c in rec.calls)
    assert seen_sparse_sync, "a sparse gather's survivors need the host: the recorder should have seen it"


def test_local_inference_of_a_sparse_gather_syncs_too(monkeypatch: pytest.MonkeyPatch, candidates: tuple) -> None:
    """The exception above is the operator's own, not the bands': the plain model syncs at the same place."""
    m, _g, x = candidates
    rec = HostSyncRecorder()
    with rec._in("stage", "local"), torch.no_grad():
        m(x)
    assert "aten.nonzero" in {c.what for c in rec.calls}, [str(c) for c in rec.calls]


# ----------------------------------------------------------------------------------------- the recorder
DELIBERATE: dict[str, Callable[[torch.Tensor], Any]] = {
    "item": lambda t: t.sum().item(),
    "cpu": lambda t: t.cpu(),
    "__bool__": lambda t: bool(t.amax() > 0),
    "tolist": lambda t: t.flatten()[:3].tolist(),
    "to(cpu)": lambda t: t.to("cpu"),
    "boolean-mask indexing": lambda t: t[t > 0],
    "torch.cuda synchronize": lambda t: torch.cuda.synchronize(),
}


@pytest.mark.parametrize("kind", sorted(DELIBERATE))
def test_a_deliberate_sync_in_a_band_is_caught(monkeypatch: pytest.MonkeyPatch, dense: tuple, kind: str) -> None:
    m, g, x = dense
    plan = Plan.server_only(g, bands=4)
    conv = next(n for n in g.nodes if n.op == "conv2d" and len(plan.bands("server", n.index)) > 1)
    rowmap_type = type(conv.rowmap)
    original = rowmap_type.run

    def run(self: Any, a: int, b: int, pieces: Any, constants: Any) -> Any:
        out = original(self, a, b, pieces, constants)
        if self is conv.rowmap:
            DELIBERATE[kind](out)
        return out

    monkeypatch.setattr(rowmap_type, "run", run)
    out, rec = _run(monkeypatch, g, plan, x)
    with torch.no_grad():
        assert_close(m(x), out, what=kind)
    caught = {c.rows for c in rec.at("band") if c.what == kind and c.node == conv.index and c.side == "server"}
    assert caught == set(plan.bands("server", conv.index)), [str(c) for c in rec.calls]  # every band of the node
    assert not [c for c in rec.at("band") if c.node != conv.index]


def test_host_sync_classifies_device_moves_by_destination() -> None:
    t = torch.zeros(2)
    assert host_sync(torch.Tensor.to, (t, torch.float16), {}) is None  # a dtype change stays on the device
    assert host_sync(torch.Tensor.to, (t, "cpu"), {}) == "to(cpu)"
    assert host_sync(torch.Tensor.to, (t,), {"device": torch.device("cpu")}) == "to(cpu)"
    assert host_sync(torch.Tensor.__getitem__, (t, (slice(None),)), {}) is None
    assert host_sync(torch.Tensor.__getitem__, (t, t > 0), {}) == "boolean-mask indexing"
    assert host_sync(torch.where, (t > 0,), {}) == "where(condition)"
    assert host_sync(torch.where, (t > 0, t, t), {}) is None
