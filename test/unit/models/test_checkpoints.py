"""KAPAO checkpoints in the upstream format (pickled model objects) through the restricted unpickler."""

import collections
import copy
import os
import sys
import types
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch import nn

from intradp_ros.models import build
from intradp_ros.models.checkpoints import CheckpointError, read_kapao_state_dict
from intradp_ros.models.kapao import Detect, KapaoModel
from intradp_ros.models.kapao_blocks import C3, SPP, Bottleneck, Concat, Conv, Focus

HW = (128, 128)
OURS_TO_UPSTREAM = {
    KapaoModel: ("models.yolo", "Model"),
    Detect: ("models.yolo", "Detect"),
    Focus: ("models.common", "Focus"),
    Conv: ("models.common", "Conv"),
    C3: ("models.common", "C3"),
    Bottleneck: ("models.common", "Bottleneck"),
    SPP: ("models.common", "SPP"),
    Concat: ("models.common", "Concat"),
}


@contextmanager
def upstream_modules(extra=()):
    """Throwaway `models.yolo` / `models.common` modules with empty classes, removed again afterwards."""
    mods = {name: types.ModuleType(name) for name in ("models", "models.yolo", "models.common")}
    classes = {}
    for mod, name in list(OURS_TO_UPSTREAM.values()) + list(extra):
        cls = type(name, (nn.Module,), {"__module__": mod})
        setattr(mods[mod], name, cls)
        classes[(mod, name)] = cls
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield classes
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def upstream_object(model, classes):
    """Deep copy of `model` re-classed to the upstream classes, carrying only what an upstream object carries."""
    obj = copy.deepcopy(model)
    for m in obj.modules():
        if type(m) in OURS_TO_UPSTREAM:
            m.__class__ = classes[OURS_TO_UPSTREAM[type(m)]]
        m._load_state_dict_post_hooks.clear()
        for name in list(m._non_persistent_buffers_set):
            del m._buffers[name]
        m._non_persistent_buffers_set.clear()
    del obj.variant
    obj.yaml = {"nc": 18, "depth_multiple": 0.33, "width_multiple": 0.5}
    obj.names = ["person"] + [f"kp{i}" for i in range(17)]
    return obj


def save_upstream(path, obj, **extra):
    ckpt = {
        "epoch": -1,
        "best_fitness": np.array([0.61]),
        "model": obj,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "wandb_id": None,
    }
    ckpt.update(extra)
    torch.save(ckpt, path)


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(1)
    model = KapaoModel("s6", HW).eval()
    for p in model.parameters():  # values that survive fp16 but are not the init values
        p.data.uniform_(-0.5, 0.5)
    return model


def test_fp16_checkpoint_with_modified_anchors_loads_strictly(tmp_path, source):
    path = tmp_path / "kapao_s6_coco.pt"
    new_px = source.detect.anchor_grid * 1.5
    with upstream_modules() as classes:
        obj = upstream_object(source, classes)
        obj.model[33].anchor_grid.copy_(new_px)
        obj.model[33].anchors.mul_(1.5)
        save_upstream(path, obj.half())
    assert "models.yolo" not in sys.modules  # loading below must work without the upstream classes

    model = build("kapao_s6", weights=path, input_size=HW)
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.float32, k
    ref = source.state_dict()
    w = "model.2.m.0.cv2.conv.weight"
    assert torch.equal(model.state_dict()[w], ref[w].half().float())
    assert torch.equal(model.detect.anchor_grid, new_px.half().float())
    # The decode uses the checkpoint's anchors: its full-extent buffers were rebuilt after loading.
    assert torch.equal(model.detect.anchor_wh3[0, :, 0, 0], new_px[3].view(3, 2).half().float())
    x = torch.randint(0, 256, (1, 3) + HW, dtype=torch.uint8)
    with torch.no_grad():
        det, raw = model(x)
        part = model.detect.decode_rows(raw[1], 1, 0)
    assert torch.allclose(part.flatten(1, 3), det[:, 3 * 16 * 16 : 3 * (16 * 16 + 8 * 8)], rtol=1e-6, atol=1e-4)


def test_ema_model_is_preferred_when_present(tmp_path, source):
    path = tmp_path / "with_ema.pt"
    with upstream_modules() as classes:
        obj = upstream_object(source, classes)
        ema = upstream_object(source, classes)
        ema.model[0].conv.conv.weight.data.fill_(0.25)
        save_upstream(path, obj, ema=ema)
    state = read_kapao_state_dict(path)
    assert torch.all(state["model.0.conv.conv.weight"] == 0.25)


@pytest.mark.parametrize(
    "bad,named", [("counter", "collections.Counter"), ("system", "system"), ("class", "models.yolo.Evil")]
)
def test_restricted_unpickler_refuses_other_globals(tmp_path, source, bad, named):
    path = tmp_path / f"{bad}.pt"

    class RunsACommand:
        def __reduce__(self):
            return (os.system, ("echo should-never-run",))

    with upstream_modules(extra=[("models.yolo", "Evil")]) as classes:
        obj = upstream_object(source, classes)
        if bad == "counter":
            obj.extra = collections.Counter(a=1)
        elif bad == "system":
            obj.extra = RunsACommand()
        else:
            obj.model[33].extra = classes[("models.yolo", "Evil")]()
        save_upstream(path, obj)
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        build("kapao_s6", weights=path, input_size=HW)


def test_wrong_file_gets_a_clear_error(tmp_path, source):
    missing = tmp_path / "missing_key.pt"
    with upstream_modules() as classes:
        obj = upstream_object(source, classes)
        obj.model[2].cv3.bn._parameters.pop("weight")
        save_upstream(missing, obj)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(model\.2\.cv3\.bn\.weight\)"):
        build("kapao_s6", weights=missing, input_size=HW)

    wrong_size = tmp_path / "s6_as_m6.pt"
    with upstream_modules() as classes:
        save_upstream(wrong_size, upstream_object(source, classes))
    with pytest.raises(CheckpointError, match="kapao_s6 checkpoint, not kapao_m6"):
        build("kapao_m6", weights=wrong_size, input_size=HW)

    state_dict_file = tmp_path / "state_dict.pt"
    torch.save({"model": source.state_dict()}, state_dict_file)
    with pytest.raises(CheckpointError, match="not a KAPAO checkpoint"):
        build("kapao_s6", weights=state_dict_file, input_size=HW)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        build("kapao_s6", weights=garbage, input_size=HW)
