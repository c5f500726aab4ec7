"""vocabulary: each word is its string (ROS fields, JSON, f-strings), spelled once, parsed with a clear error."""

from __future__ import annotations

import json

import pytest

from intradp_ros.core.vocabulary import MODE_LABELS, MODES, TABLE_ORDER, Direction, Mode, OpKind, Side


def test_members_are_their_strings() -> None:
    assert Mode.SPSO_GA == "spso_ga" and f"{Side.ROBOT}" == "robot" and str(Direction.UP) == "robot->server"
    assert json.dumps({Side.SERVER: [Mode.INTRADP, OpKind.GLOBAL]}) == '{"server": ["intradp", "global"]}'
    assert "%s/%s" % (Mode.DSCCS, Direction.DOWN) == "dsccs/server->robot"  # noqa: UP031 -- %-formatting of the str enums is what this checks


def test_every_mode_spelled_once_and_labelled() -> None:
    assert MODES == ("intradp", "device_only", "server_only", "dsccs", "spso_ga")
    assert set(TABLE_ORDER) == set(MODES) == set(MODE_LABELS)


def test_parse_lists_the_valid_words() -> None:
    assert Mode.parse("spso_ga") is Mode.SPSO_GA
    with pytest.raises(ValueError, match="mode must be one of intradp, device_only, server_only, dsccs, spso_ga"):
        Mode.parse("spso")
