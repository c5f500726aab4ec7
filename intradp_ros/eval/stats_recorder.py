"""Per-frame InferenceStats records for the evaluation: the records themselves (fields, conversion, checks, CSV)
are ROS-free and live in intradp_ros.results.stats_records (re-exported here); reading them out of bags is here.
"""

from __future__ import annotations

from typing import Any

from intradp_ros.results.stats_records import (
    BENCH_FIELDS,
    CSV_FIELDS,
    EVAL_FIELDS,
    STATS_FIELDS,
    PathLike,
    StatsRecordError,
    consistency_problems,
    read_csv,
    stats_record,
    write_csv,
)

__all__ = [
    "BENCH_FIELDS",
    "CSV_FIELDS",
    "EVAL_FIELDS",
    "STATS_FIELDS",
    "StatsRecordError",
    "consistency_problems",
    "read_csv",
    "read_stats_bag",
    "stats_record",
    "write_csv",
]


def read_stats_bag(path: PathLike, topic: str | None = None) -> list[dict[str, Any]]:
    """Records of every intradp_ros/InferenceStats message in a bag (optionally one topic), in bag order."""
    import rosbag  # lazy: the records above stay usable without ROS

    out = []
    with rosbag.Bag(str(path)) as bag:
        for _topic, msg, _t in bag.read_messages(topics=[topic] if topic else None):
            if getattr(msg, "_type", "") == "intradp_ros/InferenceStats":
                out.append(stats_record(msg))
    return out
