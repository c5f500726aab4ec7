"""The torch-free plan id: unbanded ids are what they always were, bands change the id, JSON bands round-trip."""

from __future__ import annotations

import json
import zlib

import pytest

from intradp_ros.core.plan_id import bands_from_json, plan_identity


def test_unbanded_id_is_the_historic_crc() -> None:
    robot, server = [[0, 8], [0, 4]], [[0, 0], [4, 8]]
    old = zlib.crc32(json.dumps(["fp", robot, server]).encode()) & 0x7FFFFFFF
    assert plan_identity("fp", robot, server) == old == plan_identity("fp", robot, server, {}, {})
    assert plan_identity("fp", robot, server, {}, {1: [(4, 6), (6, 8)]}) != old


def test_bands_from_json() -> None:
    assert bands_from_json([[0, 0], [4, 8]], {"1": [6]}) == {1: [(4, 6), (6, 8)]}
    with pytest.raises(ValueError):
        bands_from_json([[0, 8]], {"3": [2]})
