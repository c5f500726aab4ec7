"""The one settings loader of the nodes: defaults < private ROS parameters (launch files, config yaml) < command
line options, each value coerced to its type, with one boolean parser (`parse_bool`: a bad value is an error
naming the setting, never silently False).

A node declares its settings once, as a dataclass whose fields carry a default and `metadata={"help": ...}`
(`setting(default, help)`), or as a Spec table name -> (type, default, help); `spec_of(cls)` turns the first into
the second, `load(...)` / `resolve(...)` fill either from the three sources, `from_mapping(cls, values)` builds the
dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, get_type_hints

import rospy

Spec = dict[str, tuple[type, Any, str]]  # name -> (type, default, help)
S = TypeVar("S")
_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def setting(default: Any, help: str) -> Any:
    """A dataclass field of a settings class: its default (lists and dicts copied per instance) and help text."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def spec_of(cls: type) -> Spec:
    """The Spec table of a settings dataclass (field type, default, help), in field order."""
    hints = get_type_hints(cls)
    out: Spec = {}
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        origin = getattr(typ, "__origin__", None)
        typ = origin if origin in (list, dict) else typ
        if typ not in _TYPES.values():
            raise TypeError(f"setting {f.name}: type {typ!r} is not one of {sorted(_TYPES)}")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out[f.name] = (typ, default, f.metadata.get("help", ""))
    return out


def from_mapping(cls: type[S], values: Mapping[str, Any]) -> S:
    """The settings dataclass from resolved values (names it does not have are ignored: adapters' own)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in names})


def build_parser(prog: str, description: str, spec: Spec) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    for name, (typ, default, text) in spec.items():
        flag = "--" + name.replace("_", "-")
        if typ is bool:
            p.add_argument(
                flag, dest=name, type=parse_bool, default=None, metavar="true|false", help=f"{text} (default {default})"
            )
        elif typ in (list, dict):
            p.add_argument(flag, dest=name, default=None, help=f"{text} (JSON or comma list; default {default!r})")
        else:
            p.add_argument(flag, dest=name, type=typ, default=None, help=f"{text} (default {default!r})")
    return p


def parse_bool(v: Any) -> bool:
    """The one boolean parser of every setting: true/false, yes/no, on/off, 1/0 (any case); ValueError otherwise."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {v!r} (true/false, yes/no, on/off, 1/0)")


def _coerce(name: str, typ: type, value: Any) -> Any:
    if typ is list:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [v for v in text.replace(",", " ").split() if v]
        return list(value)
    if typ is dict:
        return json.loads(value) if isinstance(value, str) else dict(value)
    if typ is bool:
        return parse_bool(value)
    return typ(value)


ParamLookup = Callable[[str], tuple[bool, Any]]  # name -> (is set, value)


def private_params(name: str) -> tuple[bool, Any]:
    """This node's private parameter `~name` (set, value)."""
    if rospy.has_param("~" + name):
        return True, rospy.get_param("~" + name)
    return False, None


def resolve(
    spec: Spec,
    args: argparse.Namespace | None,
    use_ros: bool = True,
    params: ParamLookup | None = None,
) -> dict[str, Any]:
    """Default < private parameter < command line, each coerced to its type (ValueError naming the setting).

    `params` looks parameters up (default: this node's private parameters; tests pass a dict's lookup)."""
    lookup = params if params is not None else (private_params if use_ros else None)
    out: dict[str, Any] = {}
    for name, (typ, default, _text) in spec.items():
        value = default
        if lookup is not None:
            found, given = lookup(name)
            if found:
                value = given
        cli = getattr(args, name, None) if args is not None else None
        if cli is not None:
            value = cli
        try:
            out[name] = _coerce(name, typ, value) if value is not None else None
        except (TypeError, ValueError) as e:
            raise ValueError(f"setting {name}={value!r}: {e}") from None
    return out


def cli_args(argv: Sequence[str]) -> list[str]:
    """argv without the program name and without ROS remappings (name:=value)."""
    return [a for a in rospy.myargv(list(argv))[1:]]


def load(
    spec: Spec, prog: str, description: str, argv: Sequence[str], params: ParamLookup | None = None
) -> dict[str, Any]:
    """Parse the command line (after rospy.init_node, so private parameters are this node's) and resolve."""
    args = build_parser(prog, description, spec).parse_args(cli_args(argv))
    return resolve(spec, args, params=params)


class _ToRospy(logging.Handler):
    """Hands records of the ROS-free core (python logging) to rospy, so they reach the node's log and /rosout."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                rospy.logerr(text)
            elif record.levelno >= logging.WARNING:
                rospy.logwarn(text)
            elif record.levelno >= logging.INFO:
                rospy.loginfo(text)
            else:
                rospy.logdebug(text)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def forward_core_logging(level: int = logging.INFO) -> None:
    """Route the `intradp_ros` python loggers (engine, scheduler) through rospy's logging (once per process)."""
    logger = logging.getLogger("intradp_ros")
    if not any(isinstance(h, _ToRospy) for h in logger.handlers):
        logger.addHandler(_ToRospy())
        logger.setLevel(level)
        logger.propagate = False
