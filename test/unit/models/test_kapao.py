"""KAPAO architecture: exact parameter counts and keys, decode arithmetic, row decode, fx traceability."""

import pytest
import torch
import torch.fx

from intradp_ros.models.kapao import ANCHORS_PX, STRIDES, VARIANTS, KapaoModel, check_input_hw

SMALL_HW = (128, 192)


@pytest.fixture(scope="module")
def s6():
    torch.manual_seed(0)
    return KapaoModel("s6", SMALL_HW).eval()


@pytest.mark.parametrize(
    "variant,params,keys", [("s6", 12_559_980, 472), ("m6", 35_755_404, 652), ("l6", 77_047_852, 832)]
)
def test_parameter_count_and_key_count_match_upstream(variant, params, keys):
    model = KapaoModel(variant, SMALL_HW)
    assert sum(p.numel() for p in model.parameters()) == params == VARIANTS[variant].parameters
    state = model.state_dict()
    assert len(state) == keys
    # Only upstream keys: the decode grids are non-persistent buffers.
    assert not [k for k in state if "grid" in k and not k.endswith("anchor_grid")]
    assert {k.split(".")[1] for k in state} == {
        str(i) for i in range(34) if i not in (13, 14, 17, 18, 21, 22, 25, 28, 31)
    }
    if variant == "l6":
        for key, shape in [
            ("model.0.conv.conv.weight", (64, 12, 3, 3)),
            ("model.2.m.0.cv2.conv.weight", (64, 64, 3, 3)),
            ("model.4.cv1.bn.running_var", (128,)),
            ("model.10.cv2.conv.weight", (1024, 2048, 1, 1)),
            ("model.33.anchors", (4, 3, 2)),
            ("model.33.anchor_grid", (4, 1, 3, 1, 1, 2)),
            ("model.33.m.3.weight", (171, 1024, 1, 1)),
            ("model.33.m.0.bias", (171,)),
            ("model.32.m.2.cv1.conv.weight", (512, 512, 1, 1)),
            ("model.4.m.8.cv2.bn.num_batches_tracked", ()),
        ]:
            assert tuple(state[key].shape) == shape, key


def test_anchor_buffers_follow_upstream_units(s6):
    d = s6.detect
    px = torch.tensor(ANCHORS_PX, dtype=torch.float32).view(4, 3, 2)
    assert torch.equal(d.anchor_grid.view(4, 3, 2), px)
    assert torch.allclose(d.anchors * torch.tensor(STRIDES, dtype=torch.float32).view(4, 1, 1), px)


def _reference_decode(raw, stride, anchors_px):
    """MODELS.md's formulas applied with explicitly built grids."""
    b, na, ny, nx, no = raw.shape
    s = raw.sigmoid()
    gy, gx = torch.meshgrid(torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32), indexing="ij")
    grid = torch.stack((gx, gy), -1).view(1, 1, ny, nx, 2)
    anchor = anchors_px.view(1, na, 1, 1, 2)
    out = s.clone()
    out[..., 0:2] = (2 * s[..., 0:2] - 0.5 + grid) * stride
    out[..., 2:4] = (2 * s[..., 2:4]) ** 2 * anchor
    for k in range(17):
        sl = slice(23 + 2 * k, 25 + 2 * k)
        out[..., sl] = (4 * s[..., sl] - 2) * anchor + grid * stride
    return out.view(b, -1, no)


def test_forward_shapes_and_decode_match_the_formulas(s6):
    x = torch.randint(0, 256, (2, 3) + SMALL_HW, dtype=torch.uint8)
    with torch.no_grad():
        det, raw = s6(x)
    shapes = [(SMALL_HW[0] // s, SMALL_HW[1] // s) for s in STRIDES]
    assert [tuple(r.shape) for r in raw] == [(2, 3, h, w, 57) for h, w in shapes]
    assert det.shape == (2, 3 * sum(h * w for h, w in shapes), 57)
    ref = torch.cat(
        [_reference_decode(r, s, s6.detect.anchor_grid[i].view(3, 2)) for i, (r, s) in enumerate(zip(raw, STRIDES))], 1
    )
    assert torch.allclose(det, ref, atol=1e-4, rtol=1e-5)


def test_decode_rows_equals_the_rows_of_the_full_decode(s6):
    x = torch.randint(0, 256, (1, 3) + SMALL_HW, dtype=torch.uint8)
    with torch.no_grad():
        det, raw = s6(x)
        level, r0, r1 = 0, 5, 11
        part = s6.detect.decode_rows(raw[level][:, :, r0:r1], level, r0)
    h, w = raw[level].shape[2:4]
    full = det[:, : 3 * h * w].view(1, 3, h, w, 57)
    assert torch.allclose(part, full[:, :, r0:r1], rtol=1e-6, atol=1e-4)


def test_model_is_fx_traceable_without_shape_arithmetic(s6):
    gm = torch.fx.symbolic_trace(s6)
    targets = {str(n.target) for n in gm.graph.nodes if n.op in ("call_method", "call_function")}
    assert "size" not in targets and not any("getattr" in t for t in targets)
    x = torch.randint(0, 256, (1, 3) + SMALL_HW, dtype=torch.uint8)
    with torch.no_grad():
        (a, ra), (b, rb) = s6(x), gm(x)
    assert torch.equal(a, b) and all(torch.equal(p, q) for p, q in zip(ra, rb))
    first = [n for n in gm.graph.nodes if n.op != "placeholder"][:2]
    assert [n.target for n in first] == ["float", __import__("operator").truediv]


def test_input_size_is_validated_and_can_change(s6):
    with pytest.raises(ValueError, match="multiples of 64"):
        check_input_hw((100, 128))
    m = KapaoModel("s6", (64, 64))
    m.set_input_size(SMALL_HW)
    assert m.detect.grid0.shape == (1, 3, SMALL_HW[0] // 8, SMALL_HW[1] // 8, 2)
    with pytest.raises(ValueError, match="unknown KAPAO variant"):
        KapaoModel("x6")


def test_an_image_of_another_multiple_of_64_size_adapts_the_decode_exactly(s6):
    other = (SMALL_HW[0] + 64, SMALL_HW[1] - 64)
    x = torch.randint(0, 256, (1, 3) + other, dtype=torch.uint8)
    built_there = KapaoModel("s6", other)
    built_there.load_state_dict(s6.state_dict())
    built_there.eval()
    with torch.no_grad():
        det, raw = s6(x)
        want_det, want_raw = built_there(x)
    assert det.shape == want_det.shape and torch.equal(det, want_det)
    assert all(torch.equal(a, b) for a, b in zip(raw, want_raw))
    assert s6.detect.grid0.shape[2:4] == (SMALL_HW[0] // 8, SMALL_HW[1] // 8), "the build-size buffers stay"


def test_an_image_whose_size_is_not_a_multiple_of_64_is_refused_naming_both_sizes(s6):
    other = (SMALL_HW[0] + 32, SMALL_HW[1])
    x = torch.randint(0, 256, (1, 3) + other, dtype=torch.uint8)
    built = f"{SMALL_HW[0]}x{SMALL_HW[1]}"
    with pytest.raises(ValueError, match=f"built for input {built} .* image of {other[0]}x{other[1]}"):
        s6(x)
    from intradp_ros.models.kapao import KapaoCandidates

    with pytest.raises(ValueError, match=f"built for input {built}"):
        KapaoCandidates(s6, 0.3)(x)
