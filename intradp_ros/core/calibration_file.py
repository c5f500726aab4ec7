"""Calibration frame times shared between client starts through a JSON file.

A benchmark starts one client per system on the same robot, graph and CPU quota; each start timed its own
device-only calibration frames (minutes at the seeds' sizes under a 0.1-CPU quota) and, with a slightly different
calibrated profile, made the server solve its plan book again. With a shared file the first start times the frames
and every later start of the same graph reuses them: one calibration and one plan book for all systems.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

from intradp_ros.core.cache import write_atomic

FORMAT = "intradp-calibration-frames/1"


def read_frame_times(path: str | os.PathLike[str], graph_fingerprint: str) -> list[float] | None:
    """The frame times stored in `path` for this graph; None when the file is missing, unreadable, malformed or
    holds another graph's times (the caller then times its own)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("graph") != graph_fingerprint:
        return None
    times = data.get("frame_s")
    if not isinstance(times, list) or not times:
        return None
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0 for t in times):
        return None
    return [float(t) for t in times]


def write_frame_times(path: str | os.PathLike[str], graph_fingerprint: str, times: Sequence[float]) -> None:
    """Store `times` for this graph atomically (a reader never sees half a file)."""
    if not times or any(not (math.isfinite(t) and t > 0) for t in times):
        raise ValueError(f"frame times must be finite and > 0, got {list(times)!r}")
    write_atomic(path, json.dumps({"format": FORMAT, "graph": graph_fingerprint, "frame_s": [float(t) for t in times]}))
