"""File and message format tags, and the plan id: one definition each, for every writer and reader.

A JSON document the project writes carries `"format": <tag>`; a reader refuses any other tag, so a file from an
incompatible version is reported instead of misread. Bump the number when the layout changes.
"""

from __future__ import annotations

import json
import zlib
from typing import Iterable, List, Sequence, Tuple

PLAN_FORMAT = "intradp_plan/1"  # one Plan (core/plan.py)
PLAN_TABLE_FORMAT = "intradp_plan_table/1"  # per-bucket plan table (core/plan_table.py, read by the monitor)
PROFILE_FORMAT = "intradp_profile/1"  # per-operator timing profile (core/profiler.py)
PLAN_BOOK_KEY_TAG = "book/2"  # part of the plan book's cache key (core/plan_book.py)


def plan_id(graph_fingerprint: str, robot: Iterable[Sequence[int]], server: Iterable[Sequence[int]]) -> int:
    """A plan's id: crc32 of the graph fingerprint and both sides' row ranges (31 bits, fits an int32 field).

    `Plan.plan_id` and the bandwidth monitor's reading of plan-table JSON must agree, so both call this.
    """
    return zlib.crc32(json.dumps([graph_fingerprint, _ranges(robot), _ranges(server)]).encode()) & 0x7FFFFFFF


def _ranges(ranges: Iterable[Sequence[int]]) -> List[List[int]]:
    return [[int(a), int(b)] for a, b in ranges]


def check_format(d: object, tag: str, what: str) -> Tuple[bool, str]:
    """(ok, why not) for a decoded JSON document that should carry `"format": tag`."""
    if not isinstance(d, dict):
        return False, f"not an intradp {what} (a JSON object expected)"
    if d.get("format") != tag:
        return False, f"not an intradp {what} (format {tag!r} expected, got {d.get('format')!r})"
    return True, ""
