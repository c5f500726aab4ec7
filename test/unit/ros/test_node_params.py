"""node_params: defaults < parameters < command line, values coerced to their types (no master needed)."""

from __future__ import annotations

import argparse

import pytest

from intradp_ros.ros.node_params import build_parser, parse_bool, resolve

SPEC = {
    "robots": (list, ["robot1"], "robots"),
    "deadline": (float, 2.0, "deadline"),
    "probes": (bool, True, "probes"),
    "mode": (str, "intradp", "mode"),
}


def test_command_line_overrides_defaults_and_is_coerced() -> None:
    args = build_parser("x", "test", SPEC).parse_args(["--robots", "a,b", "--deadline", "3", "--probes", "false"])
    s = resolve(SPEC, args, use_ros=False)
    assert s == {"robots": ["a", "b"], "deadline": 3.0, "probes": False, "mode": "intradp"}


def test_json_lists_and_defaults() -> None:
    args = build_parser("x", "test", SPEC).parse_args(["--robots", '["r1", "r2"]'])
    assert resolve(SPEC, args, use_ros=False)["robots"] == ["r1", "r2"]
    assert resolve(SPEC, None, use_ros=False)["deadline"] == 2.0


def test_bad_values_name_the_setting() -> None:
    with pytest.raises(ValueError, match="deadline"):
        resolve(SPEC, argparse.Namespace(deadline="soon"), use_ros=False)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bool("maybe")
    assert parse_bool("Yes") is True and parse_bool(0) is False
