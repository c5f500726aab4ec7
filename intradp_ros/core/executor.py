"""Compatibility module: the runtime now lives in `intradp_ros.core.runtime` (schedule, stage, halves, wire).

Older imports (`from intradp_ros.core.executor import ClientHalf, ServerHalf, run_pair, ...`) keep working.
"""

from __future__ import annotations

from intradp_ros.core.runtime.halves import ClientHalf, Sender, ServerHalf, _Sender, incoming_tiles, run_pair
from intradp_ros.core.runtime.schedule import FRESH_OPS, Schedule, Step, build_schedule, plan_schedule
from intradp_ros.core.runtime.stage import (
    ExecutionError,
    RequestStats,
    RowStore,
    SideExecutor,
    SparseRowStore,
    Stage,
    default_server_device,
    graph_on,
    narrow_rows,
    new_store,
)
from intradp_ros.core.runtime.wire import AXIS_WHOLE, NUMPY_DTYPES, wire_rows

__all__ = [
    "AXIS_WHOLE",
    "FRESH_OPS",
    "NUMPY_DTYPES",
    "ClientHalf",
    "ExecutionError",
    "RequestStats",
    "RowStore",
    "Schedule",
    "Sender",
    "ServerHalf",
    "SideExecutor",
    "SparseRowStore",
    "Stage",
    "Step",
    "_Sender",
    "build_schedule",
    "default_server_device",
    "graph_on",
    "incoming_tiles",
    "narrow_rows",
    "new_store",
    "plan_schedule",
    "run_pair",
    "wire_rows",
]
