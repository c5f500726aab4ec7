"""Plans: special plans, validation errors, transfers, JSON round trip with the graph fingerprint."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from engine_testlib import one_thread  # noqa: F401 (fixture)

from intradp_ros.core import Plan, PlanError, capture
from intradp_ros.core.formats import PLAN_FORMAT
from intradp_ros.core.plan import DOWN, UP, bandable, wavefront_prefixes

pytestmark = pytest.mark.usefixtures("one_thread")


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0
        y = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(y.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    return capture(Small().eval(), torch.randint(0, 256, (1, 3, 16, 12), dtype=torch.uint8))


def test_special_plans_and_their_transfers(graph) -> None:
    g = graph
    assert Plan.device_only(g).transfers() == []
    so = Plan.server_only(g)
    ups = [t for t in so.transfers() if t.direction == UP]
    downs = [t for t in so.transfers() if t.direction == DOWN]
    assert [(t.node, t.start, t.stop) for t in ups] == [(0, 0, 16)]
    assert ups[0].nbytes == 3 * 16 * 12, "raw uint8 input rows travel, not float copies"
    assert [t.node for t in downs] == g.output_indices
    assert Plan.layer_partition(g, 0).robot == so.robot
    assert Plan.layer_partition(g, len(g)).transfers() == []
    for cut in range(1, len(g)):
        p = Plan.layer_partition(g, cut)
        assert all(t.start == 0 and t.stop == g[t.node].extent for t in p.transfers())


def test_row_split_transfers_follow_receptive_fields(graph) -> None:
    g = graph
    p = Plan.row_split(g, 0.5)
    conv1 = next(n for n in g.nodes if n.name == "c1")
    conv2 = next(n for n in g.nodes if n.name == "c2")
    # the server computes conv2 rows [4, 8): 3x3 stride 2 pad 1 needs input rows [7, 16) of its input
    assert p.server[conv2.index] == (4, 8)
    assert g.input_rows(conv2, (4, 8)) == [(7, 16)]
    assert g.input_rows(conv1, (8, 16)) == [(7, 16)]
    halo = [t for t in p.transfers() if t.direction == UP and t.node == conv1.index + 1]
    assert [(t.start, t.stop) for t in halo] == [(7, 8)], "one halo row of relu(conv1) goes up"


def test_json_round_trip_and_fingerprint(graph) -> None:
    p = Plan.random(graph, 3)
    q = Plan.from_json(p.to_json(), graph)
    assert (q.robot, q.server, q.plan_id, q.name) == (p.robot, p.server, p.plan_id, p.name)
    d = json.loads(p.to_json())
    d["graph"] = "0" * 16
    with pytest.raises(PlanError, match="made for graph"):
        Plan.from_json(json.dumps(d), graph)
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.from_json("{", graph)
    other = capture(nn.Sequential(nn.Conv2d(3, 3, 1)).eval(), torch.zeros(1, 3, 8, 8))
    with pytest.raises(PlanError, match="made for graph"):
        Plan.from_json(p.to_json(), other)


def test_validation_errors_name_the_node(graph) -> None:
    g = graph
    full = [(0, n.extent) for n in g.nodes]
    empty = [(0, 0)] * len(g)
    bad = list(full)
    bad[1] = (0, 5)
    with pytest.raises(PlanError, match="do not cover"):
        Plan(g, bad, empty)
    with pytest.raises(PlanError, match="inputs are held by the robot"):
        Plan(g, empty, full)
    mean = next(n for n in g.nodes if n.kind == "global")
    robot, server = list(full), list(empty)
    robot[mean.index], server[mean.index] = (0, 0), (0, 0)
    with pytest.raises(PlanError, match="do not cover"):
        Plan(g, robot, server)
    c1 = next(n for n in g.nodes if n.name == "c1")
    robot = list(full)
    robot[c1.index] = (0, 20)
    with pytest.raises(PlanError, match="outside"):
        Plan(g, robot, empty)
    with pytest.raises(PlanError):
        Plan(g, full[:-1], empty[:-1])


def test_random_plans_are_valid_and_varied(graph) -> None:
    plans = [Plan.random(graph, s) for s in range(20)]
    assert len({p.plan_id for p in plans}) > 15
    assert any(p.transfers() for p in plans)
    assert Plan.random(graph, 7).plan_id == Plan.random(graph, 7).plan_id


def test_halo_split_exchanges_nothing_mid_way() -> None:
    """With halos recomputed on each side, only input rows go up and split-root rows come down."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 2, 3, padding=1),
    ).eval()
    g = capture(model, torch.randn(1, 3, 32, 16))
    p = Plan.halo_split(g, 0.5)
    ups = [t for t in p.transfers() if t.direction == UP]
    downs = [t for t in p.transfers() if t.direction == DOWN]
    # last conv rows [8, 16) <- pool rows [7, 16) <- relu rows [14, 32) <- conv2 [13, 32) <- input [12, 32)
    assert [(t.node, t.start, t.stop) for t in ups] == [(0, 12, 32)], "bottom input half plus halo"
    assert [(t.node, t.start, t.stop) for t in downs] == [(len(g) - 1, 8, 16)]
    assert p.robot[1][1] > p.server[1][0], "ranges overlap: halo rows are computed on both sides"


# ---------------------------------------------------------------- bands (streaming)
def test_server_only_in_bands_sends_the_input_band_by_band(graph) -> None:
    plan = Plan.server_only(graph, bands=4)
    assert plan.is_banded and plan.max_bands() == 4
    ups = [t for t in plan.transfers() if t.direction == UP]
    extent = graph.nodes[0].extent
    assert [(t.start, t.stop) for t in ups] == [(extent * j // 4, extent * (j + 1) // 4) for j in range(4)]
    assert sum(t.nbytes for t in ups) == Plan.server_only(graph).bytes(UP), "bands cut tiles, never add rows"
    for n in graph.nodes:
        for side in ("robot", "server"):
            bands = plan.bands(side, n.index)
            if bands:
                assert bands[0][0] == plan.ranges(side)[n.index][0] and bands[-1][1] == plan.ranges(side)[n.index][1]
                assert all(a < b == c for (a, b), (c, _) in zip(bands, bands[1:] + [(bands[-1][1], 0)]))


def test_aligned_bands_follow_the_input_wavefront(graph) -> None:
    """Prefix m of every node is exactly what the first m+1 input bands allow: its rows need only rows of its
    inputs inside their prefix m, and one more row would not (unless it is the whole node or a global one)."""
    k = 4
    pre = wavefront_prefixes(graph, k)
    for n in graph.nodes:
        if n.is_input or not bandable(n):
            continue
        for m in range(k - 1):
            p = pre[n.index][m]
            for u, need in zip(n.inputs, graph.input_rows(n, (0, max(p, 1)))):
                if p and need is not None:
                    assert need[1] <= pre[u][m], (n.index, m)
            if p < n.extent:
                over = graph.input_rows(n, (0, p + 1))
                assert any(nd is not None and nd[1] > pre[u][m] for u, nd in zip(n.inputs, over)), (n.index, m)
    plan = Plan.server_only(graph, bands=k)
    for n in graph.nodes:
        for _a, b in plan.bands("server", n.index)[:-1]:
            assert b in pre[n.index], "band ends are wavefront prefixes"


def test_banded_json_round_trip_and_id(graph) -> None:
    plain = Plan.row_split(graph, 0.5)
    banded = plain.with_bands(3)
    assert banded.plan_id != plain.plan_id, "plan_id covers the bands"
    assert plain.with_bands(1).plan_id == plain.plan_id and not plain.with_bands(1).is_banded
    back = Plan.from_json(banded.to_json(), graph)
    assert back.plan_id == banded.plan_id and back.name == banded.name
    for side in ("robot", "server"):
        assert back.band_map(side) == banded.band_map(side)
    assert json.loads(banded.to_json())["format"] == PLAN_FORMAT
    rb = Plan.random(graph, 3).with_random_bands(3)
    assert Plan.from_json(rb.to_json(), graph).plan_id == rb.plan_id


def test_old_format_plans_load_as_one_band(graph) -> None:
    plan = Plan.row_split(graph, 0.25)
    old = json.loads(plan.to_json())
    old["format"] = "intradp_plan/1"
    del old["bands"]
    back = Plan.from_json(json.dumps(old), graph)
    assert not back.is_banded and back.plan_id == plan.plan_id, "ids of stored unbanded plans do not change"
    assert back.robot == plan.robot and back.server == plan.server


@pytest.mark.parametrize(
    "bands,match",
    [
        ({"server": {"2": [99]}}, "bands"),  # a boundary outside the node
        ({"server": {"2": [3, 2]}}, "not ordered"),  # boundaries out of order
        ({"robot": {"2": [4]}}, "does not compute"),  # bands on a side without rows
        ({"server": {"2": [4, 4]}}, "not ordered"),  # an empty band
        ({"server": {"x": [4]}}, "malformed"),
    ],
)
def test_bad_bands_are_refused_naming_the_node(graph, bands, match) -> None:
    d = json.loads(Plan.server_only(graph).to_json())
    d["bands"] = bands
    with pytest.raises(PlanError, match=match):
        Plan.from_json(json.dumps(d), graph)


def test_the_torch_free_plan_id_matches_for_banded_plans(graph) -> None:
    """The bandwidth monitor computes plan ids from plan table JSON without torch: bands included."""
    from intradp_ros.core.bandwidth_plans import plan_id_of

    for plan in (
        Plan.row_split(graph, 0.5),
        Plan.server_only(graph, bands=4),
        Plan.random(graph, 5).with_random_bands(5),
    ):
        assert plan_id_of(json.loads(plan.to_json())) == plan.plan_id, plan.name


# ------------------------------------------------------------------------------------------------ codecs
def _codec_plan(graph) -> Plan:
    """Server-only with the input up as lossless WebP and the (float) output down as zstd+shuffle."""
    from intradp_ros.core.tile import CODEC_WEBP, CODEC_ZSTD_SHUFFLE

    plan = Plan.server_only(graph)
    out = graph.output_indices[0]
    return plan.with_codecs({(0, UP): CODEC_WEBP, (out, DOWN): CODEC_ZSTD_SHUFFLE})


def test_codecs_travel_in_json_and_change_the_id(graph) -> None:
    from intradp_ros.core.bandwidth_plans import plan_id_of
    from intradp_ros.core.tile import CODEC_WEBP

    raw = Plan.server_only(graph)
    plan = _codec_plan(graph)
    assert plan.plan_id != raw.plan_id and plan.codec_for(0, UP) == CODEC_WEBP and raw.codec_for(0, UP) is None
    d = json.loads(plan.to_json())
    assert d["format"] == PLAN_FORMAT and d["codecs"]["up"] == {"0": CODEC_WEBP}
    back = Plan.from_json(plan.to_json(), graph)
    assert back.codecs == plan.codecs and back.plan_id == plan.plan_id
    assert plan_id_of(d) == plan.plan_id, "the torch-free id covers codecs"
    assert "codecs" not in json.loads(raw.to_json()), "an uncompressed plan's JSON is unchanged"
    assert plan.with_bands(3).codecs == plan.codecs and plan.renamed("x").plan_id == plan.plan_id
    assert plan.with_codecs(None).plan_id == raw.plan_id
    assert "webp" in plan.summary() and plan.codec_brief() == "up webp; down zstd_shuffle"
    assert raw.codec_brief() == "raw" and raw.codec_summary() == "uncompressed"


def test_older_plans_load_uncompressed(graph) -> None:
    d = json.loads(_codec_plan(graph).to_json())
    d["format"] = "intradp_plan/2"
    back = Plan.from_json(json.dumps(d), graph)
    assert back.codecs == {} and back.plan_id == Plan.server_only(graph).plan_id


@pytest.mark.parametrize(
    "codecs,match",
    [
        ({"up": {"0": 10}}, "lossless"),  # fp16 is lossy: never in a plan
        ({"up": {"0": 99}}, "unknown codec"),
        ({"down": {"0": 3}}, "sends none"),  # the input never comes down
        ({"up": {"0": 8}}, "lossless codec for its tiles"),  # a sparse codec for a dense image
        ({"sideways": {"0": 3}}, "malformed"),
        ({"up": {"x": 3}}, "malformed"),
    ],
)
def test_bad_codecs_are_refused(graph, codecs, match) -> None:
    d = json.loads(Plan.server_only(graph).to_json())
    d["codecs"] = codecs
    with pytest.raises(PlanError, match=match):
        Plan.from_json(json.dumps(d), graph)
