"""Per-frame InferenceStats records for the evaluation: message -> flat record, consistency checks, CSV and bag I/O.

A record is a plain dict with every InferenceStats field (the header becomes `stamp_s`) plus the evaluation's own
columns (`system`, `trace`, `frame`, `t_s` seconds since the run started, `link_mbit` the shaped rate at that time).
The CSV is what tables and plots read, so a run can be re-tabulated later without a testbed:
`rosrun intradp_ros evaluate --from-csv stats.csv`.

ROS-free (the results layer): reading records out of bags is tooling, in intradp_ros.eval.stats_recorder.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

PathLike = str | Path

# InferenceStats fields in message order (header -> stamp_s)
STATS_FIELDS: Sequence[str] = (
    "stamp_s",
    "robot",
    "request_id",
    "model",
    "mode",
    "plan_id",
    "plan_name",
    "latency_s",
    "robot_compute_s",
    "robot_transmit_only_s",
    "robot_wait_s",
    "server_compute_s",
    "transmit_s",
    "bytes_up",
    "bytes_down",
    "tiles_up",
    "tiles_down",
    "bandwidth_estimate_mbit_per_s",
    "energy_j",
    "mean_power_w",
    "fell_back_local",
    "error",
    "frames_dropped_stale",
    "frames_dropped_replaced",
    "frames_dropped_bad",
)
# Fields added after recordings existed: an older message, JSON line or CSV row without them reads as 0.
OPTIONAL_FIELDS: dict[str, Any] = {"frames_dropped_stale": 0, "frames_dropped_replaced": 0, "frames_dropped_bad": 0}
EVAL_FIELDS: Sequence[str] = ("system", "trace", "frame", "t_s", "link_mbit")
# Benchmark columns beside each measured frame (NaN where unknown; older CSVs without them still read):
# predicted_s: the cost model's latency for the plan that ran at that link rate; floor_s: the frame's physical
# floor (eval/workloads.physical_floor); nonmodel_cpu_s: CPU seconds of work that is not the model (codecs,
# serialisation), charged at its faithful cost; k: the time-dilation factor of the workload.
BENCH_FIELDS: Sequence[str] = ("predicted_s", "floor_s", "nonmodel_cpu_s", "k")
CSV_FIELDS: Sequence[str] = tuple(EVAL_FIELDS) + tuple(STATS_FIELDS) + tuple(BENCH_FIELDS)

_INT_FIELDS = {
    "request_id",
    "plan_id",
    "bytes_up",
    "bytes_down",
    "tiles_up",
    "tiles_down",
    "frame",
    "frames_dropped_stale",
    "frames_dropped_replaced",
    "frames_dropped_bad",
}
_FLOAT_FIELDS = {
    "stamp_s",
    "latency_s",
    "robot_compute_s",
    "robot_transmit_only_s",
    "robot_wait_s",
    "server_compute_s",
    "transmit_s",
    "bandwidth_estimate_mbit_per_s",
    "energy_j",
    "mean_power_w",
    "t_s",
    "link_mbit",
    "predicted_s",
    "floor_s",
    "nonmodel_cpu_s",
    "k",
}
_BOOL_FIELDS = {"fell_back_local"}


class StatsRecordError(ValueError):
    """A stats message or CSV row that cannot be turned into a record."""


def stats_record(msg: Any) -> dict[str, Any]:
    """Flat record of an InferenceStats message (or of a dict with the same keys, e.g. a JSON line).

    Values are converted to int/float/bool/str; a missing field or an unconvertible value raises StatsRecordError.
    """
    rec: dict[str, Any] = {}
    for name in STATS_FIELDS:
        if name == "stamp_s":
            value = _stamp_seconds(msg)
        elif isinstance(msg, Mapping):
            if name not in msg or (name in OPTIONAL_FIELDS and msg[name] in ("", None)):
                if name not in OPTIONAL_FIELDS:
                    raise StatsRecordError(f"stats record lacks field {name!r}")
                value = OPTIONAL_FIELDS[name]
            else:
                value = msg[name]
        else:
            if not hasattr(msg, name):
                if name not in OPTIONAL_FIELDS:
                    raise StatsRecordError(f"stats message lacks field {name!r}")
                value = OPTIONAL_FIELDS[name]
            else:
                value = getattr(msg, name)
        rec[name] = _convert(name, value)
    return rec


def _stamp_seconds(msg: Any) -> float:
    if isinstance(msg, Mapping):
        return float(msg.get("stamp_s", 0.0))
    stamp = getattr(getattr(msg, "header", None), "stamp", None)
    if stamp is None:
        return 0.0
    to_sec = getattr(stamp, "to_sec", None)
    return float(to_sec()) if callable(to_sec) else float(stamp.secs) + 1e-9 * float(stamp.nsecs)


def _convert(name: str, value: Any) -> Any:
    try:
        if name in _INT_FIELDS:
            return int(value)
        if name in _FLOAT_FIELDS:
            return float(value)
        if name in _BOOL_FIELDS:
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"not a boolean: {value!r}")
                return value.strip().lower() in ("true", "1")
            return bool(value)
        return "" if value is None else str(value)
    except (TypeError, ValueError) as err:
        raise StatsRecordError(f"field {name!r}: {err}") from None


def consistency_problems(rec: Mapping[str, Any], rel_tol: float = 0.02, abs_tol: float = 2e-3) -> list[str]:
    """What is wrong with one record's figures: the robot-side breakdown must add up to the latency, no figure may
    be negative or NaN, and bytes need tiles that carried them (empty list: consistent)."""
    problems = []
    for name in (
        "latency_s",
        "robot_compute_s",
        "robot_transmit_only_s",
        "robot_wait_s",
        "server_compute_s",
        "transmit_s",
        "energy_j",
        "mean_power_w",
    ):
        v = float(rec[name])
        if not math.isfinite(v) or v < 0:
            problems.append(f"{name} = {v!r}")
    if problems:
        return problems
    parts = float(rec["robot_compute_s"]) + float(rec["robot_transmit_only_s"]) + float(rec["robot_wait_s"])
    lat = float(rec["latency_s"])
    if abs(parts - lat) > max(abs_tol, rel_tol * lat):
        problems.append(f"compute + transmit_only + wait = {parts:.4f} s != latency {lat:.4f} s")
    # A tile may carry no payload (the survivors of a sparse gather can be none), but bytes need tiles.
    if int(rec["tiles_up"]) == 0 and int(rec["bytes_up"]) > 0:
        problems.append("bytes_up without any tile up")
    if int(rec["tiles_down"]) == 0 and int(rec["bytes_down"]) > 0:
        problems.append("bytes_down without any tile down")
    return problems


def write_csv(path: PathLike, records: Iterable[Mapping[str, Any]]) -> int:
    """Write records with CSV_FIELDS columns (missing evaluation columns left empty); returns rows written."""
    n = 0
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_FIELDS), extrasaction="ignore")
        w.writeheader()
        for rec in records:
            w.writerow({k: rec.get(k, "") for k in CSV_FIELDS})
            n += 1
    return n


def read_csv(path: PathLike) -> list[dict[str, Any]]:
    """Records from a CSV written by write_csv (types restored); StatsRecordError names the bad line."""
    out = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        optional = set(OPTIONAL_FIELDS) | set(BENCH_FIELDS)
        missing = [k for k in CSV_FIELDS if k not in (reader.fieldnames or []) and k not in optional]
        if missing:
            raise StatsRecordError(f"{path}: not an evaluation CSV (columns {missing} missing)")
        for line, row in enumerate(reader, start=2):
            rec: dict[str, Any] = {}
            try:
                for k in CSV_FIELDS:
                    v = row.get(k)
                    if k in OPTIONAL_FIELDS and v in ("", None):
                        rec[k] = OPTIONAL_FIELDS[k]
                    elif k in ("t_s", "link_mbit", "frame") + tuple(BENCH_FIELDS) and v in ("", None):
                        rec[k] = float("nan") if k != "frame" else -1
                    else:
                        rec[k] = _convert(k, v)
            except StatsRecordError as err:
                raise StatsRecordError(f"{path}:{line}: {err}") from None
            out.append(rec)
    return out
