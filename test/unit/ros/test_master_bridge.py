"""The bridge's settings: defaults < private parameters < command line, its short flags, refusals by name."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("rospy")

from intradp_ros.ros.master_bridge import BridgeSettings, build_parser, load_settings
from intradp_ros.ros.master_sync import Filters

PEER = "http://10.0.0.2:11311"


def _params(values: dict[str, Any]) -> Any:
    return lambda name: (name in values, values.get(name))


def test_defaults_are_the_filters_defaults() -> None:
    s = load_settings(None, _params({"peer_master_uri": PEER}))
    assert s.topics == list(Filters.topics) and s.services == list(Filters.services)
    assert (s.period, s.timeout, s.restore, s.reattach, s.local_master_uri) == (0.25, 1.0, True, True, "")


def test_launch_file_parameters_and_old_flags() -> None:
    launch = {  # as launch/bridge.launch sets them: strings, a double, bools
        "peer_master_uri": "http://other:11311",
        "local_master_uri": "",
        "topics": "/intradp/* /diagnostics",
        "exclude_topics": "/rosout,/rosout_agg",
        "period": 0.5,
        "restore": True,
        "reattach": "false",
    }
    args = build_parser().parse_args(["--peer", PEER, "--topics", "/intradp/bt/*", "--no-restore", "--period", "0.2"])
    s = load_settings(args, _params(launch))
    assert s.peer_master_uri == PEER and s.topics == ["/intradp/bt/*"] and s.period == 0.2
    assert s.exclude_topics == ["/rosout", "/rosout_agg"] and s.restore is False and s.reattach is False
    assert s.filters().topics == ["/intradp/bt/*"]
    args = build_parser().parse_args(["--peer-master-uri", PEER, "--reattach", "on", "--local", "http://me:11311"])
    s = load_settings(args, _params({}))
    assert s.reattach is True and s.local_master_uri == "http://me:11311"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "needs the peer master URI"),
        ({"peer_master_uri": PEER, "restore": "maybe"}, "setting restore="),
        ({"peer_master_uri": PEER, "period": "often"}, "setting period="),
        ({"peer_master_uri": PEER, "period": 100}, "setting period="),
        ({"peer_master_uri": PEER, "timeout": 0.0}, "setting timeout="),
    ],
)
def test_a_bad_or_missing_setting_is_refused_by_name(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(None, _params(values))


def test_settings_dataclass_keeps_globs_as_strings() -> None:
    assert BridgeSettings(topics=["/a", 3]).topics == ["/a", "3"]  # type: ignore[list-item]
