"""Node settings for the system nodes: defaults, overridden by private ROS parameters (launch files, config
yaml), overridden by command-line options. One table per node keeps the three in step and documented."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any, Dict, Optional, Sequence, Tuple

import rospy

Spec = Dict[str, Tuple[type, Any, str]]  # name -> (type, default, help)


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
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {v!r}")


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


def resolve(spec: Spec, args: Optional[argparse.Namespace], use_ros: bool = True) -> Dict[str, Any]:
    """Default < private parameter < command line, each coerced to its type (ValueError naming the setting)."""
    out: Dict[str, Any] = {}
    for name, (typ, default, _text) in spec.items():
        value = default
        if use_ros and rospy.has_param("~" + name):
            value = rospy.get_param("~" + name)
        cli = getattr(args, name, None) if args is not None else None
        if cli is not None:
            value = cli
        try:
            out[name] = _coerce(name, typ, value) if value is not None else None
        except (TypeError, ValueError) as e:
            raise ValueError(f"setting {name}={value!r}: {e}") from None
    return out


def cli_args(argv: Sequence[str]) -> list:
    """argv without the program name and without ROS remappings (name:=value)."""
    return [a for a in rospy.myargv(list(argv))[1:]]


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
