"""File and message format tags, and the plan id: one definition each, for every writer and reader.

The plan id is computed from JSON-level fields alone (no torch: the bandwidth monitor computes it from plan-table
JSON); `Plan.plan_id` is this function of its graph fingerprint, ranges and bands.

A JSON document the project writes carries `"format": <tag>`; a reader refuses any other tag, so a file from an
incompatible version is reported instead of misread. Bump the number when the layout changes.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

PLAN_FORMAT = "intradp_plan/2"  # one Plan (core/plan.py); 2: row bands
PLAN_FORMATS = ("intradp_plan/1", PLAN_FORMAT)  # readable: a /1 plan loads as one band per node and side
PLAN_TABLE_FORMAT = "intradp_plan_table/1"  # per-bucket plan table (core/plan_table.py, read by the monitor)
PROFILE_FORMAT = "intradp_profile/1"  # per-operator timing profile (core/profiler.py)
PLAN_BOOK_KEY_TAG = "book/2"  # part of the plan book's cache key (core/plan_book.py)


Ranges = Sequence[Sequence[int]]


def plan_identity(
    graph_fingerprint: str,
    robot: Ranges,
    server: Ranges,
    robot_bands: Mapping[int, Ranges] | None = None,
    server_bands: Mapping[int, Ranges] | None = None,
) -> int:
    """31-bit id of a plan; unbanded plans keep the id they had before bands existed (stored books stay valid)."""
    ident: list[Any] = [graph_fingerprint, [[int(a), int(b)] for a, b in robot], [[int(a), int(b)] for a, b in server]]
    if robot_bands or server_bands:
        for bands in (robot_bands or {}, server_bands or {}):
            ident.append([[int(v), [[int(a), int(b)] for a, b in bands[v]]] for v in sorted(bands)])
    return zlib.crc32(json.dumps(ident).encode()) & 0x7FFFFFFF


def bands_from_json(ranges: Ranges, inner: Mapping[str, Sequence[int]]) -> dict[int, list[tuple[int, int]]]:
    """Node -> bands from the plan JSON's inner boundaries (`"bands": {"robot": {"12": [10, 20]}}`) and the side's
    ranges (raises ValueError/TypeError/KeyError/IndexError when malformed)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for key, cuts in dict(inner).items():
        v = int(key)
        if not 0 <= v < len(ranges):
            raise ValueError(f"bands name node {v}, the plan has {len(ranges)} nodes")
        a, b = (int(x) for x in ranges[v])
        edges = [a] + [int(c) for c in cuts] + [b]
        out[v] = [(edges[j], edges[j + 1]) for j in range(len(edges) - 1)]
    return out


def check_format(d: object, tag: str, what: str) -> tuple[bool, str]:
    """(ok, why not) for a decoded JSON document that should carry `"format": tag`."""
    if not isinstance(d, dict):
        return False, f"not an intradp {what} (a JSON object expected)"
    if d.get("format") != tag:
        return False, f"not an intradp {what} (format {tag!r} expected, got {d.get('format')!r})"
    return True, ""
