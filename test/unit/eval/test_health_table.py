"""The demo's health table: statuses matched to the four nodes, the newest kept, missing nodes named."""

from __future__ import annotations

from intradp_ros.core.health import ERROR, OK, WARN
from intradp_ros.eval.health_table import HealthBook, format_health, missing_nodes, role_of


def _book_with_all_four() -> HealthBook:
    book = HealthBook()
    book.add("kapao_client_robot1: session", "robot1", WARN, "random weights", {"session": "up", "plan_book": "none"})
    book.add("bandwidth_monitor_robot1: bandwidth", "robot1", OK, "ok", {"estimate_mbit_per_s": "3.10"})
    book.add("master_bridge: masters", "bridge", OK, "both masters reachable", {"mirrored_registrations": "12"})
    book.add("intradp_server: server", "server", ERROR, "no cuda", {"device": "cpu", "robots": "robot1"})
    return book


def test_role_of_matches_the_task_not_the_node_name() -> None:
    assert role_of("kapao_client_robot7: session") == "client"
    assert role_of("my/ns/monitor: bandwidth") == "monitor"
    assert role_of("anything: masters") == "bridge"
    assert role_of("intradp_server: server") == "server"
    assert role_of("intradp_server: other task") is None
    assert role_of("session") is None  # no "<node>: " prefix: not one of ours


def test_the_newest_report_of_a_status_wins_and_reports_are_counted() -> None:
    book = HealthBook()
    book.add("c: session", "robot1", WARN, "waiting for the plan book", {"plan_book": "none"})
    book.add("c: session", "robot1", OK, "session up", {"plan_book": "received"})
    (status,) = book.statuses()
    assert status["level"] == OK
    assert status["message"] == "session up"
    assert status["values"] == {"plan_book": "received"}
    assert status["reports"] == 2


def test_missing_nodes_names_each_role_that_never_reported() -> None:
    book = _book_with_all_four()
    assert missing_nodes(book.statuses()) == []
    without_bridge = [s for s in book.statuses() if not s["name"].endswith(": masters")]
    assert missing_nodes(without_bridge) == ["bridge"]
    assert missing_nodes([]) == ["client", "monitor", "bridge", "server"]


def test_table_has_a_row_per_node_with_level_message_and_key_values() -> None:
    table = format_health(_book_with_all_four().statuses())
    lines = table.splitlines()
    assert lines[0].split() == ["node", "status", "level", "reports", "message"]
    body = lines[2:]
    rows = {line.split()[0]: i for i, line in enumerate(body) if not line.startswith(" ")}
    assert list(rows) == ["client", "monitor", "bridge", "server"]  # robot side first, then the server

    def row_and_values(role: str) -> tuple[str, str]:
        return body[rows[role]], body[rows[role] + 1]

    client, client_values = row_and_values("client")
    assert " WARN " in client and "random weights" in client
    assert client_values.split() == ["session=up,", "plan_book=none"]
    monitor, monitor_values = row_and_values("monitor")
    assert " OK " in monitor and monitor_values.strip() == "estimate_mbit_per_s=3.10"
    assert row_and_values("bridge")[1].strip() == "mirrored_registrations=12"
    server, server_values = row_and_values("server")
    assert " ERROR " in server and server_values.strip() == "device=cpu, robots=robot1"


def test_table_marks_a_node_that_never_reported_and_clips_long_messages() -> None:
    book = HealthBook()
    book.add("c: session", "robot1", OK, "x" * 200, {})
    table = format_health(book.statuses(), message_width=40)
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if not line.startswith(" ")}
    assert "x" * 37 + "..." in rows["client"] and "x" * 41 not in rows["client"]
    for role in ("monitor", "bridge", "server"):
        assert "NONE" in rows[role] and "never reported" in rows[role]
        assert rows[role].split()[4] == "0"  # reports seen
