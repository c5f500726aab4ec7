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

PLAN_FORMAT = "intradp_plan/3"  # one Plan (core/plan.py); 2: row bands; 3: a codec per transfer
# readable: a /1 plan loads as one band per node and side, a /1 or /2 plan sends every tile uncompressed
PLAN_FORMATS = ("intradp_plan/1", "intradp_plan/2", PLAN_FORMAT)
PLAN_TABLE_FORMAT = "intradp_plan_table/1"  # per-bucket plan table (core/plan_table.py, read by the monitor)
PROFILE_FORMAT = "intradp_profile/2"  # per-operator timing profile (core/profiler.py); 2: codec profiles
PROFILE_FORMATS = ("intradp_profile/1", PROFILE_FORMAT)  # readable: a /1 profile loads without codecs (raw only)
PLAN_BOOK_KEY_TAG = "book/2"  # part of the plan book's cache key (core/plan_book.py)


Ranges = Sequence[Sequence[int]]


# Plan JSON names of the two directions in "codecs" ({"up": {node: codec id}, "down": {...}}).
CODEC_DIRECTIONS = ("up", "down")


def plan_identity(
    graph_fingerprint: str,
    robot: Ranges,
    server: Ranges,
    robot_bands: Mapping[int, Ranges] | None = None,
    server_bands: Mapping[int, Ranges] | None = None,
    codecs: Mapping[str, Mapping[int, int]] | None = None,
) -> int:
    """31-bit id of a plan; unbanded plans keep the id they had before bands existed, and plans that send every
    tile uncompressed the id they had before codecs existed (stored books stay valid). `codecs`: direction ("up"
    / "down") -> node -> codec id, as `codecs_from_json` returns it."""
    ident: list[Any] = [graph_fingerprint, [[int(a), int(b)] for a, b in robot], [[int(a), int(b)] for a, b in server]]
    if robot_bands or server_bands:
        for bands in (robot_bands or {}, server_bands or {}):
            ident.append([[int(v), [[int(a), int(b)] for a, b in bands[v]]] for v in sorted(bands)])
    if codecs and any(codecs.get(d) for d in CODEC_DIRECTIONS):
        per_direction = [sorted([int(v), int(c)] for v, c in (codecs.get(d) or {}).items()) for d in CODEC_DIRECTIONS]
        ident.append(["codecs", *per_direction])
    return zlib.crc32(json.dumps(ident).encode()) & 0x7FFFFFFF


def codecs_from_json(raw: Mapping[str, Mapping[str, int]] | None) -> dict[str, dict[int, int]]:
    """Direction -> node -> codec id from a plan JSON's "codecs" object ({"up": {"0": 7}}; absent: {} both ways).
    Raises ValueError/TypeError/AttributeError when malformed (unknown direction, non-integer keys or ids)."""
    out: dict[str, dict[int, int]] = {d: {} for d in CODEC_DIRECTIONS}
    for direction, per_node in dict(raw or {}).items():
        if direction not in CODEC_DIRECTIONS:
            raise ValueError(f"codec direction {direction!r} is not one of {CODEC_DIRECTIONS}")
        out[direction] = {int(v): int(c) for v, c in dict(per_node).items()}
    return out


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
