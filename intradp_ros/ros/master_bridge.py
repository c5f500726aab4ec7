"""The `master_bridge` node: a thin rospy shell around `MasterSync` (see intradp_ros/ros/master_sync.py).

Settings come from the command line or, when not given there, from private parameters (launch/bridge.launch):
``~peer_master_uri`` (required), ``~local_master_uri`` (default: this node's ROS_MASTER_URI), ``~topics``,
``~services``, ``~exclude_topics``, ``~exclude_services`` (lists or comma-separated globs), ``~period`` (s),
``~timeout`` (s per XML-RPC call), ``~restore`` (re-register a restarted master's live nodes), ``~reattach``
(get remote subscribers that lost a mirrored publisher, e.g. one advertised again at the same URI, connected again).
On SIGINT/SIGTERM it removes all its mirrors from both masters before exiting.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from intradp_ros.ros.master_sync import Filters, MasterSync, xmlrpc_proxy_factory

DEFAULTS = {
    "topics": list(Filters.topics),
    "services": list(Filters.services),
    "exclude_topics": list(Filters.exclude_topics),
    "exclude_services": list(Filters.exclude_services),
    "period": 0.25,
    "timeout": 1.0,
    "restore": True,
    "reattach": True,
}


def _globs(value: Any) -> list[str]:
    """A glob list from a YAML list or a comma/space separated string."""
    if isinstance(value, str):
        return [g for g in value.replace(",", " ").split() if g]
    return [str(g) for g in value]


def _flag(value: Any) -> bool:
    """The nodes' one boolean parser (a bad value is an error naming it, never silently False)."""
    from intradp_ros.ros.node_params import parse_bool  # rospy only when the bridge runs

    return parse_bool(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="master_bridge",
        description="Sync topic/service registrations between the "
        "local ROS master and a peer master (peer-to-peer data, no relay).",
    )
    p.add_argument("--peer", dest="peer_master_uri", help="peer master URI, e.g. http://10.0.0.2:11311")
    p.add_argument("--local", dest="local_master_uri", help="local master URI (default: ROS_MASTER_URI)")
    p.add_argument("--topics", help="topic globs to sync, comma separated (default /intradp/*)")
    p.add_argument("--services", help="service globs to sync, comma separated (default /intradp/*)")
    p.add_argument("--exclude-topics", dest="exclude_topics", help="topic globs never synced")
    p.add_argument("--exclude-services", dest="exclude_services", help="service globs never synced")
    p.add_argument("--period", type=float, help="poll period in seconds (default 0.25)")
    p.add_argument("--timeout", type=float, help="timeout of one XML-RPC call in seconds (default 1.0)")
    p.add_argument(
        "--no-restore",
        dest="restore",
        action="store_false",
        default=None,
        help="do not re-register a restarted master's live nodes",
    )
    p.add_argument(
        "--no-reattach",
        dest="reattach",
        action="store_false",
        default=None,
        help="do not probe remote subscribers (getBusInfo) and re-send publisherUpdate to those that "
        "lost a mirrored publisher",
    )
    return p


def _setting(args: argparse.Namespace, name: str, get_param: Any) -> Any:
    """Command line first, then the private parameter, then the default."""
    value = getattr(args, name)
    if value is not None:
        return value
    return get_param("~" + name, DEFAULTS.get(name))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bridge until SIGINT/SIGTERM; `argv` is sys.argv-like (program name first, ROS remaps allowed).

    Returns the process exit code."""
    import rosgraph
    import rospy

    args = build_parser().parse_args(rospy.myargv(list(argv) if argv is not None else sys.argv)[1:])
    rospy.init_node("master_bridge", disable_signals=True)
    log = logging.getLogger("rosout")  # rospy's logger: console, log file and /rosout

    def get_param(name: str, default: Any) -> Any:
        try:
            return rospy.get_param(name, default)
        except Exception as err:  # noqa: BLE001 -- master down at start-up: fall back to the defaults, say so
            log.warning("cannot read parameter %s (%s); using %r", name, err, default)
            return default

    peer = _setting(args, "peer_master_uri", get_param)
    if not peer:
        log.error("master_bridge needs the peer master URI (--peer or ~peer_master_uri)")
        return 2
    local = _setting(args, "local_master_uri", get_param) or rosgraph.get_master_uri()
    period = float(_setting(args, "period", get_param))
    timeout = float(_setting(args, "timeout", get_param))
    if not (0.01 <= period <= 60 and 0.05 <= timeout <= 60):
        log.error("period must be in [0.01, 60] s and timeout in [0.05, 60] s, got %s and %s", period, timeout)
        return 2
    filters = Filters(
        topics=_globs(_setting(args, "topics", get_param)),
        services=_globs(_setting(args, "services", get_param)),
        exclude_topics=_globs(_setting(args, "exclude_topics", get_param)),
        exclude_services=_globs(_setting(args, "exclude_services", get_param)),
    )
    try:
        sync = MasterSync(
            local,
            peer,
            xmlrpc_proxy_factory(timeout),
            caller_id=rospy.get_name(),
            filters=filters,
            restore=_flag(_setting(args, "restore", get_param)),
            reattach=_flag(_setting(args, "reattach", get_param)),
            log=log,
        )
    except ValueError as err:
        log.error("%s", err)
        return 2
    log.info(
        "master_bridge: local %s <-> peer %s, topics %s (not %s), services %s (not %s), every %.2f s",
        local,
        peer,
        filters.topics,
        filters.exclude_topics,
        filters.services,
        filters.exclude_services,
        period,
    )

    from intradp_ros.ros.diagnostics import NodeDiagnostics

    diagnostics = NodeDiagnostics("bridge", {"masters": sync.health})
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.is_set():
        sync.step()
        stop.wait(period)
    diagnostics.stop()
    removed = sync.cleanup()
    log.info("master_bridge: exiting, removed %d mirrors", removed)
    rospy.signal_shutdown("master_bridge exit")
    return 0
