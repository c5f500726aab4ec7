"""formats: one plan id for Plan and for the monitor's reading of plan-table JSON (torch-free: unbanded ids are what
they always were, bands change the id, JSON bands round-trip); format tags checked."""

from __future__ import annotations

import json
import zlib

import pytest

from intradp_ros.core.bandwidth_plans import plan_id_of
from intradp_ros.core.formats import PLAN_FORMAT, bands_from_json, check_format, plan_identity
from intradp_ros.core.plan import Plan


def test_plan_id_is_the_plans_and_the_monitors(graph_and_input) -> None:
    _m, g, _x = graph_and_input
    for plan in (Plan.device_only(g), Plan.server_only(g), Plan.row_split(g, 0.5)):
        d = json.loads(plan.to_json())
        assert d["format"] == PLAN_FORMAT
        assert plan_identity(g.fingerprint, plan.robot, plan.server) == plan.plan_id == plan_id_of(d)
    assert Plan.device_only(g).plan_id != Plan.server_only(g).plan_id


def test_check_format() -> None:
    assert check_format({"format": PLAN_FORMAT}, PLAN_FORMAT, "plan") == (True, "")
    ok, why = check_format({"format": "intradp_plan/0"}, PLAN_FORMAT, "plan")
    assert not ok and "intradp_plan/0" in why
    assert not check_format([], PLAN_FORMAT, "plan")[0]


def test_unbanded_id_is_the_historic_crc() -> None:
    robot, server = [[0, 8], [0, 4]], [[0, 0], [4, 8]]
    old = zlib.crc32(json.dumps(["fp", robot, server]).encode()) & 0x7FFFFFFF
    assert plan_identity("fp", robot, server) == old == plan_identity("fp", robot, server, {}, {})
    assert plan_identity("fp", robot, server, {}, {1: [(4, 6), (6, 8)]}) != old


def test_bands_from_json() -> None:
    assert bands_from_json([[0, 0], [4, 8]], {"1": [6]}) == {1: [(4, 6), (6, 8)]}
    with pytest.raises(ValueError):
        bands_from_json([[0, 8]], {"3": [2]})


def test_plan_identity_covers_codecs_and_keeps_uncompressed_ids() -> None:
    from intradp_ros.core.formats import codecs_from_json

    robot, server = [[0, 8], [0, 0]], [[0, 0], [0, 8]]
    old = plan_identity("fp", robot, server)
    assert plan_identity("fp", robot, server, codecs={"up": {}, "down": {}}) == old
    with_codec = plan_identity("fp", robot, server, codecs={"up": {0: 7}})
    assert with_codec != old and with_codec != plan_identity("fp", robot, server, codecs={"down": {0: 7}})
    assert codecs_from_json({"up": {"0": 7}}) == {"up": {0: 7}, "down": {}}
    assert codecs_from_json(None) == {"up": {}, "down": {}}
    for bad in ({"left": {}}, {"up": {"a": 1}}, {"up": [1]}):
        with pytest.raises((ValueError, TypeError, AttributeError)):
            codecs_from_json(bad)  # type: ignore[arg-type]
