"""node_params: defaults < parameters < command line, values coerced to their types, one boolean parser, settings
dataclasses (no master needed)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from intradp_ros.ros.node_params import build_parser, from_mapping, parse_bool, resolve, setting, spec_of

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
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("maybe")
    with pytest.raises(ValueError, match="probes"):  # a bad boolean is an error naming the setting, never False
        resolve(SPEC, argparse.Namespace(probes="maybe"), use_ros=False)
    assert parse_bool("Yes") is True and parse_bool(0) is False and parse_bool("OFF") is False


def test_parameters_sit_between_defaults_and_the_command_line() -> None:
    params = {"deadline": 5, "mode": "dsccs", "probes": "off"}
    lookup = lambda name: (name in params, params.get(name))  # noqa: E731
    s = resolve(SPEC, argparse.Namespace(mode="spso_ga"), params=lookup)
    assert s == {"robots": ["robot1"], "deadline": 5.0, "probes": False, "mode": "spso_ga"}


@dataclass
class ToySettings:
    robot: str = setting("robot1", "robot name")
    rate: float = setting(2.0, "updates per second")
    probes: bool = setting(True, "run probes")
    robots: list = setting(["a"], "robots")


def test_a_settings_dataclass_is_its_own_spec() -> None:
    spec = spec_of(ToySettings)
    assert spec == {
        "robot": (str, "robot1", "robot name"),
        "rate": (float, 2.0, "updates per second"),
        "probes": (bool, True, "run probes"),
        "robots": (list, ["a"], "robots"),
    }
    args = build_parser("x", "test", spec).parse_args(["--rate", "4", "--probes", "no"])
    values = dict(resolve(spec, args, use_ros=False), adapter_only=1)
    s = from_mapping(ToySettings, values)
    assert s == ToySettings(rate=4.0, probes=False)
    assert ToySettings().robots is not ToySettings().robots  # list defaults are not shared
