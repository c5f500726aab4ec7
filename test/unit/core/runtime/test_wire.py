"""The wire as the runtime sees it: one dtype table (the codec's), one place choosing a tile's codec, one
receive-side check of a tile against the running plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from intradp_ros.core import Plan, capture
from intradp_ros.core.codec import DENSE_CODECS, WIRE_DTYPES
from intradp_ros.core.runtime.schedule import build_schedule
from intradp_ros.core.runtime.wire import (
    ABORT_OPERATOR,
    NUMPY_DTYPES,
    check_tile,
    choose_codec,
    describe_abort,
    make_tile,
    wire_dtype_name,
)
from intradp_ros.core.tile import CODEC_BITPACK, CODEC_RAW, FLAG_ABORT, Tile, TileError


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    return capture(torch.nn.Conv2d(3, 4, 3, padding=1).eval(), torch.randn(1, 3, 16, 8))


def test_one_dtype_table() -> None:
    assert set(NUMPY_DTYPES.values()) == set(WIRE_DTYPES)
    assert wire_dtype_name(torch.float32) == "float32" and wire_dtype_name(torch.bfloat16) is None


def test_make_tile_refuses_a_dtype_the_wire_cannot_carry(graph) -> None:
    node = graph.nodes[1]
    with pytest.raises(TileError, match="bfloat16 cannot cross the wire"):
        make_tile(1, 2, node, 0, 4, torch.zeros(1, 4, 4, 8, dtype=torch.bfloat16), 0, "")
    tile = make_tile(1, 2, node, 0, 4, torch.zeros(1, 4, 4, 8), 0, "")
    assert tile.codec == CODEC_RAW and tile.data.shape == (1, 4, 4, 8)


def test_codec_choice_is_one_function(graph) -> None:
    node = graph.nodes[0]
    arr = np.ones((1, 3, 2, 8), np.uint8)
    assert choose_codec(node, arr) == CODEC_RAW
    node.binary = True
    try:
        assert choose_codec(node, arr) == CODEC_BITPACK
        assert choose_codec(node, arr * 2) == CODEC_RAW, "a frame that breaks the 0/1 promise goes raw"
    finally:
        node.binary = False
    assert {CODEC_RAW, CODEC_BITPACK} <= DENSE_CODECS


def test_check_tile_against_the_plan(graph) -> None:
    plan = Plan.server_only(graph, bands=2)
    expected = build_schedule(plan, "server").expected
    good = make_tile(5, plan.plan_id, graph.nodes[0], 0, 8, torch.zeros(1, 3, 8, 8), 0, "")
    key, value = check_tile(graph, good, 5, plan.plan_id, plan.name, expected, torch.device("cpu"))
    assert key == (0, 0, 8) and value.shape == (1, 3, 8, 8)
    bad_band = make_tile(5, plan.plan_id, graph.nodes[0], 0, 9, torch.zeros(1, 3, 9, 8), 0, "")
    with pytest.raises(TileError, match="unexpected tile node 0 rows \\[0, 9\\)"):
        check_tile(graph, bad_band, 5, plan.plan_id, plan.name, expected, torch.device("cpu"))
    with pytest.raises(TileError) as err:
        check_tile(graph, good, 6, plan.plan_id, plan.name, expected, torch.device("cpu"))
    assert err.value.field == "request_id"


def test_abort_tiles_name_cause_and_place(graph) -> None:
    t = Tile(1, 2, 1, ABORT_OPERATOR, 4, 8, np.zeros(0, np.uint8), flags=FLAG_ABORT)
    said = describe_abort(graph, t)
    assert said.startswith("an operator raised at node 1 ") and said.endswith("rows [4, 8)"), said
    junk = Tile(1, 2, 999, 77, 0, 0, np.zeros(0, np.uint8), flags=FLAG_ABORT)
    assert describe_abort(graph, junk) == "unknown cause 77"


def test_make_tile_uses_the_plans_codec_where_it_fits(graph) -> None:
    from intradp_ros.core.runtime.wire import planned_codec
    from intradp_ros.core.tile import (
        CODEC_BITPACK_ZSTD,
        CODEC_CAMERA,
        CODEC_GREEN_DELTA_ZSTD,
        CODEC_SPARSE_ZSTD,
        CODEC_WEBP,
        CODEC_ZSTD_SHUFFLE,
    )

    conv = graph.nodes[1]
    tile = make_tile(1, 2, conv, 0, 4, torch.zeros(1, 4, 4, 8), 0, "", planned=CODEC_ZSTD_SHUFFLE)
    assert tile.codec == CODEC_ZSTD_SHUFFLE
    image = graph.nodes[0]
    rows = np.zeros((1, 3, 2, 8), np.uint8)
    assert planned_codec(image, rows, CODEC_WEBP) == CODEC_WEBP
    assert planned_codec(image, rows[:, :2], CODEC_WEBP) is None, "not WebP's layout: the sender's own rules"
    assert planned_codec(image, rows, CODEC_GREEN_DELTA_ZSTD) == CODEC_GREEN_DELTA_ZSTD
    assert planned_codec(image, rows[:, :2], CODEC_GREEN_DELTA_ZSTD) is None, "two planes are not RGB"
    assert planned_codec(image, rows + 2, CODEC_BITPACK_ZSTD) is None, "a grid that is not 0/1 cannot go bit-packed"
    assert planned_codec(image, rows, CODEC_BITPACK_ZSTD) == CODEC_BITPACK_ZSTD
    assert planned_codec(image, rows, CODEC_SPARSE_ZSTD) is None and planned_codec(image, rows, None) is None
    assert CODEC_CAMERA not in (planned_codec(image, rows, CODEC_WEBP),)


def test_a_planned_camera_file_goes_only_where_the_input_carries_one() -> None:
    """The plan's CODEC_CAMERA for the input: the camera's bytes when the tensor is tagged, passthrough is on and
    the tile is the whole input; pixels otherwise (passthrough off, a band): never a tile without its payload."""
    import io

    from PIL import Image

    from intradp_ros.core.tile import CODEC_CAMERA
    from intradp_ros.models.camera_input import camera_model_input

    rgb = np.random.default_rng(0).integers(0, 256, (16, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    x, _info, _rgb = camera_model_input(buf.getvalue(), (16, 8))
    g = capture(torch.nn.Conv2d(3, 4, 3, padding=1).eval(), x.float())
    node = g.nodes[0]
    on = make_tile(1, 2, node, 0, 16, x, 0, "", codecs={CODEC_CAMERA}, planned=CODEC_CAMERA)
    assert on.codec == CODEC_CAMERA and on.encoded
    off = make_tile(1, 2, node, 0, 16, x, 0, "", planned=CODEC_CAMERA)  # passthrough off: codec not enabled
    assert off.codec == CODEC_RAW and off.encoded is None
    band = make_tile(1, 2, node, 0, 8, x[:, :, :8], 0, "", codecs={CODEC_CAMERA}, planned=CODEC_CAMERA)
    assert band.codec == CODEC_RAW and band.encoded is None
