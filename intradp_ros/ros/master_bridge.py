"""The `master_bridge` node: a thin rospy shell around `MasterSync` (see intradp_ros/ros/master_sync.py).

Settings (`BridgeSettings`, by the one loader of ros/node_params.py): defaults < private parameters
(launch/bridge.launch) < command line (`--peer-master-uri`/`--peer`, `--restore false`/`--no-restore`, ...):
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
from dataclasses import dataclass
from typing import Any

from intradp_ros.ros import node_params
from intradp_ros.ros.master_sync import Filters, MasterSync, xmlrpc_proxy_factory
from intradp_ros.ros.node_params import ParamLookup, Spec, from_mapping, resolve, setting, spec_of


@dataclass
class BridgeSettings:
    """The bridge's settings (defaults < private parameters < command line, `ros/node_params.py`)."""

    peer_master_uri: str = setting("", "peer master URI, e.g. http://10.0.0.2:11311 (required; also --peer)")
    local_master_uri: str = setting("", "local master URI (default: ROS_MASTER_URI; also --local)")
    topics: list = setting(list(Filters.topics), "topic globs to sync, comma or space separated")
    services: list = setting(list(Filters.services), "service globs to sync, comma or space separated")
    exclude_topics: list = setting(list(Filters.exclude_topics), "topic globs never synced")
    exclude_services: list = setting(list(Filters.exclude_services), "service globs never synced")
    period: float = setting(0.25, "poll period in seconds, in [0.01, 60]")
    timeout: float = setting(1.0, "timeout of one XML-RPC call in seconds, in [0.05, 60]")
    restore: bool = setting(True, "re-register a restarted master's live nodes (also --no-restore)")
    reattach: bool = setting(
        True,
        "probe remote subscribers (getBusInfo) and re-send publisherUpdate to those that lost a mirrored publisher "
        "(also --no-reattach)",
    )

    def __post_init__(self) -> None:
        for name in ("topics", "services", "exclude_topics", "exclude_services"):
            setattr(self, name, [str(g) for g in getattr(self, name)])

    def check(self) -> None:
        """ValueError naming the setting that cannot run."""
        if not self.peer_master_uri:
            raise ValueError("master_bridge needs the peer master URI (--peer or ~peer_master_uri)")
        if not 0.01 <= self.period <= 60:
            raise ValueError(f"setting period={self.period!r}: must be in [0.01, 60] s")
        if not 0.05 <= self.timeout <= 60:
            raise ValueError(f"setting timeout={self.timeout!r}: must be in [0.05, 60] s")

    def filters(self) -> Filters:
        return Filters(
            topics=self.topics,
            services=self.services,
            exclude_topics=self.exclude_topics,
            exclude_services=self.exclude_services,
        )


SPEC: Spec = spec_of(BridgeSettings)
DESCRIPTION = (
    "Sync topic/service registrations between the local ROS master and a peer master (peer-to-peer data, no relay)."
)


def build_parser() -> argparse.ArgumentParser:
    """The loader's options (--peer-master-uri, --restore BOOL, ...) plus the bridge's short forms kept from before."""
    p = node_params.build_parser("master_bridge", DESCRIPTION, SPEC)
    p.add_argument("--peer", dest="peer_master_uri", help="same as --peer-master-uri")
    p.add_argument("--local", dest="local_master_uri", help="same as --local-master-uri")
    p.add_argument("--no-restore", dest="restore", action="store_const", const=False, help="same as --restore false")
    p.add_argument("--no-reattach", dest="reattach", action="store_const", const=False, help="same as --reattach false")
    return p


def load_settings(args: argparse.Namespace | None, params: ParamLookup | None = None) -> BridgeSettings:
    """The bridge's settings; ValueError naming a bad or missing one."""
    settings = from_mapping(BridgeSettings, resolve(SPEC, args, params=params))
    settings.check()
    return settings


def _tolerant_params(log: logging.Logger) -> ParamLookup:
    """Private parameters, or none when the master is down at start-up (the bridge outlives masters): says so."""

    failed: list[str] = []

    def lookup(name: str) -> tuple[bool, Any]:
        if failed:
            return False, None
        try:
            return node_params.private_params(name)
        except Exception as err:  # noqa: BLE001 -- master down at start-up: fall back to the defaults, say so
            failed.append(name)
            log.warning("cannot read private parameters (%s); using the defaults and the command line", err)
            return False, None

    return lookup


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bridge until SIGINT/SIGTERM; `argv` is sys.argv-like (program name first, ROS remaps allowed).

    Returns the process exit code."""
    import rosgraph
    import rospy

    args = build_parser().parse_args(node_params.cli_args(list(argv) if argv is not None else sys.argv))
    rospy.init_node("master_bridge", disable_signals=True)
    log = logging.getLogger("rosout")  # rospy's logger: console, log file and /rosout
    try:
        settings = load_settings(args, _tolerant_params(log))
    except ValueError as err:
        log.error("master_bridge: %s", err)
        return 2
    peer = settings.peer_master_uri
    local = settings.local_master_uri or rosgraph.get_master_uri()
    period = settings.period
    filters = settings.filters()
    try:
        sync = MasterSync(
            local,
            peer,
            xmlrpc_proxy_factory(settings.timeout),
            caller_id=rospy.get_name(),
            filters=filters,
            restore=settings.restore,
            reattach=settings.reattach,
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
