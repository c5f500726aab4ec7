"""The demo's health table: the latest /diagnostics status of each of the four nodes, without ROS.

The eval_driver (robot side) hands every DiagnosticStatus it sees to a `HealthBook` as a plain dict; at the end it
emits the book's statuses as one `{"kind": "health", ...}` JSON line, and the demo prints them with
`format_health` and fails when `missing_nodes` names a node that never reported. Statuses are matched to nodes by
their task name: diagnostic_updater names a status "<node name>: <task>", and the tasks are fixed by
ros/diagnostics.py (client "session", bandwidth monitor "bandwidth", bridge "masters", server "server"), while the
node names change with the robot name and launch files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intradp_ros.core.health import LEVEL_NAMES

# node role -> the diagnostic_updater task its status carries (ros/diagnostics.py, launch order robot to server)
NODE_TASKS: dict[str, str] = {"client": "session", "monitor": "bandwidth", "bridge": "masters", "server": "server"}
# the few values worth a column per role (the full set is in `rostopic echo /diagnostics`)
KEY_VALUES: dict[str, tuple[str, ...]] = {
    "client": ("session", "plan_book", "plan_bucket_mbyte_per_s", "frames_done", "dropped_total", "weights"),
    "monitor": ("estimate_mbit_per_s", "sample_age_s", "probes_ok", "probe_failures"),
    "bridge": ("local_reachable", "peer_reachable", "mirrored_registrations", "unreachable_node_uris"),
    "server": ("device", "robots", "sessions", "replicas"),
}


def role_of(status_name: str) -> str | None:
    """The node role of a status named "<node>: <task>" (None for statuses of other nodes)."""
    _, sep, task = status_name.rpartition(": ")
    if not sep:
        return None
    for role, wanted in NODE_TASKS.items():
        if task == wanted:
            return role
    return None


@dataclass
class HealthBook:
    """Latest status per status name, plus how many reports each name got."""

    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, hardware_id: str, level: int, message: str, values: Mapping[str, str]) -> None:
        """Keep this report as the newest of `name` (a level outside diagnostic_msgs' four shows as its number)."""
        self.reports[name] = self.reports.get(name, 0) + 1
        self.latest[name] = {
            "name": name,
            "hardware_id": hardware_id,
            "level": int(level),
            "message": message,
            "values": dict(values),
            "reports": self.reports[name],
        }

    def statuses(self) -> list[dict[str, Any]]:
        return [self.latest[k] for k in sorted(self.latest)]


def missing_nodes(statuses: Iterable[Mapping[str, Any]]) -> list[str]:
    """The roles (client, monitor, bridge, server) that no status in `statuses` belongs to."""
    seen = {role_of(str(s.get("name", ""))) for s in statuses}
    return [role for role in NODE_TASKS if role not in seen]


def _key_values(role: str | None, values: Mapping[str, str]) -> str:
    keys = KEY_VALUES.get(role or "", ())
    return ", ".join(f"{k}={values[k]}" for k in keys if k in values)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_health(statuses: Sequence[Mapping[str, Any]], message_width: int = 60) -> str:
    """A table: one row per status (node role, status name, level, reports seen, message), the four roles first,
    each followed by an indented line of its key values; a role that never reported gets a row saying so."""
    rows: list[tuple[tuple[str, ...], str]] = []
    order = {role: i for i, role in enumerate(NODE_TASKS)}
    ranked = sorted(statuses, key=lambda s: (order.get(role_of(str(s["name"])) or "", len(order)), str(s["name"])))
    for s in ranked:
        role = role_of(str(s["name"]))
        level = LEVEL_NAMES.get(int(s["level"]), str(s["level"]))
        cells = (
            role or "other",
            str(s["name"]),
            level,
            str(s.get("reports", "")),
            _clip(str(s["message"]), message_width),
        )
        rows.append((cells, _key_values(role, s.get("values", {}))))
    for role in missing_nodes(statuses):
        rows.append(((role, f"(task '{NODE_TASKS[role]}')", "NONE", "0", "never reported on /diagnostics"), ""))
    head = ("node", "status", "level", "reports", "message")
    widths = [max(len(r[i]) for r in [head, *(cells for cells, _ in rows)]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(head), "  ".join("-" * w for w in widths)]
    for cells, values in rows:
        lines.append(line(cells))
        if values:
            lines.append(" " * (widths[0] + 2) + values)
    return "\n".join(lines)
