"""ROS-free core: graph capture, operator rules, tiling, plans, cost model, solver, executor, transports.

Importing this package never imports rospy; the heavy pieces load on first use.
"""

from typing import Any

__all__ = [
    "capture",
    "CaptureError",
    "Graph",
    "Node",
    "Plan",
    "PlanError",
    "Transfer",
    "run_pair",
    "explain",
    "Transport",
    "InProcessTransport",
    "inprocess_pair",
    "ClientHalf",
    "ServerHalf",
]

_WHERE = {
    "capture": "intradp_ros.core.capture_graph",
    "CaptureError": "intradp_ros.core.capture_graph",
    "Graph": "intradp_ros.core.graph",
    "Node": "intradp_ros.core.graph",
    "Plan": "intradp_ros.core.plan",
    "PlanError": "intradp_ros.core.plan",
    "Transfer": "intradp_ros.core.plan",
    "explain": "intradp_ros.core.explain_graph",
    "run_pair": "intradp_ros.core.executor",
    "ClientHalf": "intradp_ros.core.executor",
    "ServerHalf": "intradp_ros.core.executor",
    "Transport": "intradp_ros.core.transport",
    "InProcessTransport": "intradp_ros.core.transport",
    "inprocess_pair": "intradp_ros.core.transport",
}


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'intradp_ros.core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
