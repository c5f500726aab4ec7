"""SCONet architecture (plain and depthwise-separable), its attention blocks, fx traceability and checkpoints."""

import os

import pytest
import torch
import torch.fx

from intradp_ros.models import build
from intradp_ros.models.checkpoints import CheckpointError
from intradp_ros.models.sconet import CrissCrossAttention, MobileViTv2Attention, SCONet

SMALL = (64, 32, 64)


@pytest.mark.parametrize("ds,params", [(False, 839_499), (True, 646_043)])
def test_parameter_count_and_keys_match_upstream(ds, params):
    model = SCONet(ds)
    assert sum(p.numel() for p in model.parameters()) == params
    state = model.state_dict()
    assert len(state) == 103
    enc = "Encoder_block2.1.depthwise_conv.weight" if ds else "Encoder_block2.1.weight"
    for key, shape in [
        (enc, (32, 1, 3, 3) if ds else (48, 32, 3, 3)),
        ("criss_cross_attention.gamma", (1,)),
        ("criss_cross_attention.query_conv.weight", (10, 80, 1, 1)),
        ("Attention_block_1_8.fc_k.weight", (4, 4096)),
        ("Attention_block_1_4.fc_o.weight", (16384, 8)),
        ("deconv1_8.weight", (4, 4, 6, 6)),
        ("deconv_1_8__1_1.weight", (4, 4, 8, 8)),
        ("conv1_1.weight", (32, 60, 3, 3)),
        ("seg_head_1_1.bn2.2.num_batches_tracked", ()),
        ("seg_head_1_1.conv1.1.weight", (8, 8, 3, 3, 3)),
        ("seg_head_1_1.conv_classes.bias", (20,)),
    ]:
        assert tuple(state[key].shape) == shape, key
    if ds:
        assert "Encoder_block1.2.pointwise_conv.weight" in state and "Encoder_block1.0.bias" not in state


def test_criss_cross_attention_matches_a_per_position_reference():
    torch.manual_seed(0)
    cca = CrissCrossAttention(16, (3, 4)).eval()
    cca.gamma.data.fill_(0.7)
    x = torch.randn(1, 16, 3, 4)
    with torch.no_grad():
        y = cca(x)
        q, k, v = cca.query_conv(x)[0], cca.key_conv(x)[0], cca.value_conv(x)[0]
    ref = torch.empty_like(x[0])
    for h in range(3):
        for w in range(4):
            e_col = torch.stack([q[:, h, w] @ k[:, g, w] if g != h else torch.tensor(float("-inf")) for g in range(3)])
            e_row = torch.stack([q[:, h, w] @ k[:, h, u] for u in range(4)])
            a = torch.softmax(torch.cat((e_col, e_row)), 0)
            out = (v[:, :, w] * a[:3]).sum(1) + (v[:, h, :] * a[3:]).sum(1)
            ref[:, h, w] = 0.7 * out + x[0, :, h, w]
    assert torch.allclose(y[0], ref, atol=1e-5)


def test_mobilevit_attention_is_fc_o_of_value_times_key_per_channel():
    torch.manual_seed(0)
    att = MobileViTv2Attention(3, 4, 5)
    x = torch.randn(2, 3, 4, 5)
    with torch.no_grad():
        r = x.reshape(2, 3, 20)
        ref = att.fc_o(att.fc_v(r) * att.fc_k(r)).reshape(2, 3, 4, 5)
        assert torch.allclose(att(x), ref, atol=1e-5)


@pytest.mark.parametrize("name", ["sconet", "sconet_ds"])
def test_small_grid_forward_shape_and_fx_trace(name):
    torch.manual_seed(0)
    model = build(name, grid_xzy=SMALL)
    x = model.input_spec.example(seed=1)
    assert x.shape == (1, 1) + SMALL and x.dtype == torch.uint8 and int(x.max()) == 1
    gm = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        y, y_fx = model(x), gm(x)
    assert y.shape == (1, 20) + SMALL
    assert torch.equal(y, y_fx)
    targets = {str(n.target) for n in gm.graph.nodes if n.op in ("call_method", "call_function")}
    assert "size" not in targets and not any("getattr" in t for t in targets)


def test_grid_must_be_multiples_of_8():
    with pytest.raises(ValueError, match="multiples of 8"):
        SCONet(grid_xzy=(60, 32, 64))


def _upstream_checkpoint(path, state):
    torch.save(
        {
            "startEpoch": 12,
            "model": state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]},
            "scheduler": {"last_epoch": 11},
            "config_dict": {"MODEL": {"TYPE": "SCONet"}},
        },
        path,
    )


@pytest.mark.parametrize("name,ds", [("sconet", False), ("sconet_ds", True)])
def test_upstream_checkpoint_loads_strictly_including_fp16(tmp_path, name, ds):
    torch.manual_seed(2)
    src = SCONet(ds)
    src.criss_cross_attention.gamma.data.fill_(0.25)
    path = tmp_path / "weights_epoch_012.pth"
    _upstream_checkpoint(path, {k: (v.half() if v.is_floating_point() else v) for k, v in src.state_dict().items()})
    model = build(name, weights=path)
    got = model.state_dict()
    for k, v in src.state_dict().items():
        expected = v.half().float() if v.is_floating_point() else v
        assert got[k].dtype == v.dtype and torch.equal(got[k], expected), k


def test_wrong_checkpoints_get_clear_errors(tmp_path):
    ds_path = tmp_path / "ds.pth"
    _upstream_checkpoint(ds_path, SCONet(True).state_dict())
    with pytest.raises(
        CheckpointError,
        match=r"does not fit sconet: 16 missing keys \(Encoder_block1\.0\.bias.*"
        r"16 unexpected keys \(Encoder_block1\.0\.depthwise_conv\.weight",
    ):
        build("sconet", weights=ds_path)

    class RunsACommand:
        def __reduce__(self):
            return (os.system, ("echo should-never-run",))

    evil = tmp_path / "evil.pth"
    torch.save({"model": SCONet().state_dict(), "extra": RunsACommand()}, evil)
    with pytest.raises(CheckpointError, match="weights-only"):
        build("sconet", weights=evil)
