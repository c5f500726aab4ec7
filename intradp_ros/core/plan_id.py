"""The id of a plan, from its JSON-level fields alone (no torch: the bandwidth monitor computes it from plan
table JSON). `Plan.plan_id` is this function of its graph fingerprint, ranges and bands."""

from __future__ import annotations

import json
import zlib
from typing import Any, Mapping, Sequence

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
