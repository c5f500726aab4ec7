"""The project's words, spelled once: modes, sides, directions, operator kinds and link states.

Each is a `(str, Enum)`: a member *is* its string (`Mode.SPSO_GA == "spso_ga"`, `json.dumps(Side.ROBOT)` gives
`"robot"`, a ROS string field takes it as is, and `str()`/f-strings print the bare value), so messages, JSON files
and plan books written before the enums existed read back unchanged. Parse untrusted text with `Mode.parse`
(a ValueError that lists the valid words), never by comparing against ad-hoc literals.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

W = TypeVar("W", bound="Word")


class Word(str, Enum):
    """A string-valued enum that prints and formats as its bare value (not 'Mode.INTRADP')."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)

    @classmethod
    def parse(cls: type[W], value: object) -> W:
        """The member spelled `value` (ValueError naming the valid spellings otherwise)."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"{cls.__name__.lower()} must be one of {valid}, got {value!r}") from None

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Mode(Word):
    """How a client runs its frames: Intra-DP, or one of the baselines it is compared with."""

    INTRADP = "intradp"
    DEVICE_ONLY = "device_only"
    SERVER_ONLY = "server_only"
    DSCCS = "dsccs"
    SPSO_GA = "spso_ga"


# Every mode a plan book holds and a client accepts, in the plan book's order.
MODES: tuple[Mode, ...] = tuple(Mode)
# The modes that use the server (all but device_only), in the evaluation tables' order.
DISTRIBUTED_MODES: tuple[Mode, ...] = (Mode.SERVER_ONLY, Mode.DSCCS, Mode.SPSO_GA, Mode.INTRADP)
# Evaluation table order: the baselines first, Intra-DP last.
TABLE_ORDER: tuple[Mode, ...] = (Mode.DEVICE_ONLY, *DISTRIBUTED_MODES)
MODE_LABELS: Mapping[str, str] = {
    Mode.DEVICE_ONLY: "Device-only",
    Mode.SERVER_ONLY: "Server-only",
    Mode.DSCCS: "DSCCS",
    Mode.SPSO_GA: "SPSO-GA",
    Mode.INTRADP: "Intra-DP",
}


class Side(Word):
    """Where a node (or a tile's producer) runs."""

    ROBOT = "robot"
    SERVER = "server"


class Direction(Word):
    """Which way a tile travels."""

    UP = "robot->server"
    DOWN = "server->robot"


class OpKind(Word):
    """How an operator's output rows depend on its input rows (core/rules.py)."""

    ELEMENTWISE = "elementwise"  # output row i needs input row i
    BLOCK = "block"  # output row i needs a fixed window of input rows (convolutions, pools)
    ROW = "row"  # rows are independent along the split axis, other axes mixed
    GLOBAL = "global"  # needs the whole input: computed on one side


class LinkState(Word):
    """The robot's view of its link to the server (core/link_health.py)."""

    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
