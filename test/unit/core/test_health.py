"""Node health statuses (core.health): levels, messages and values from plain facts."""

from __future__ import annotations

from intradp_ros.core.health import (
    ERROR,
    OK,
    WARN,
    ClientFacts,
    DropCounter,
    PeerFacts,
    SolveFacts,
    bridge_status,
    client_status,
    monitor_status,
    server_status,
    unreachable_from,
)


def _client(**kw):
    d = dict(
        robot="robot1",
        mode="intradp",
        link_state="up",
        has_plan_book=True,
        handshake_waiting_s=None,
        bucket_mbyte=5.0,
        estimate_age_s=0.3,
        frames_done=10,
        deadline_misses=0,
        local_fallbacks=0,
        dropped={},
        random_weights=False,
    )
    d.update(kw)
    return ClientFacts(**d)


def test_healthy_client_is_ok_and_reports_its_figures():
    h = client_status(_client(dropped={"stale": 3}))
    assert h.level == OK, h.message
    assert h.values["session"] == "up" and h.values["plan_book"] == "received"
    assert h.values["plan_bucket_mbyte_per_s"] == "5" and h.values["dropped_stale"] == "3"
    assert h.values["dropped_total"] == "3"


def test_client_warnings_name_their_cause():
    h = client_status(_client(has_plan_book=False, link_state="connecting", handshake_waiting_s=42.0))
    assert h.level == WARN and "handshake pending for 42 s" in h.message
    h = client_status(_client(random_weights=True))
    assert h.level == WARN and "random weights" in h.message
    h = client_status(_client(estimate_age_s=None))
    assert h.level == WARN and "estimate missing" in h.message
    h = client_status(_client(deadline_misses=2, link_state="down"))
    assert h.level == WARN and "2 deadline misses" in h.message and "link down" in h.message


def test_device_only_client_needs_no_server():
    h = client_status(_client(mode="device_only", has_plan_book=False, link_state="connecting", estimate_age_s=None))
    assert h.level == OK, h.message


def test_only_unsupported_frames_is_an_error():
    h = client_status(_client(frames_done=0, dropped={"unsupported_encoding": 5}))
    assert h.level == ERROR and "5 frames with an unsupported encoding" in h.message
    h = client_status(_client(frames_done=9, dropped={"unsupported_encoding": 1}))
    assert h.level == WARN


def test_drop_counter_logs_first_of_each_cause_then_throttles():
    now = [0.0]
    c = DropCounter(period_s=10.0, clock=lambda: now[0])
    assert c.record("unsupported_encoding", "32FC1") and c.record("malformed", "truncated")
    assert not c.record("unsupported_encoding", "32FC1")
    assert c.record("malformed", "wrong size")  # another reason of the same cause is logged once too
    now[0] = 10.5
    assert c.record("unsupported_encoding", "32FC1")
    assert c.count("unsupported_encoding") == 3 and c.count() == 5 and c.count("malformed") == 2


def test_monitor_freshness_and_probe_failures():
    assert monitor_status("r", 0.2, 80.0, 10.0, 5, 0, "", 2.0).level == OK
    stale = monitor_status("r", 9.0, 80.0, 10.0, 5, 0, "", 2.0)
    assert stale.level == WARN and "stale" in stale.message
    dead = monitor_status("r", None, None, None, 0, 4, "service not found", 2.0)
    assert dead.level == ERROR and "service not found" in dead.message and dead.values["probe_failures"] == "4"


def test_loopback_node_uris_are_unreachable_from_another_host():
    assert unreachable_from("http://127.0.1.1:4321/", "http://10.0.0.2:11311")
    assert unreachable_from("http://localhost:4321/", "http://server:11311")
    assert not unreachable_from("http://127.0.1.1:4321/", "http://127.0.0.1:11312")  # both sides on one host
    assert not unreachable_from("http://10.0.0.1:4321/", "http://10.0.0.2:11311")


def test_bridge_status():
    peers = [PeerFacts("local", "http://a:11311", True, 0), PeerFacts("peer", "http://b:11311", True, 1)]
    h = bridge_status(peers, 7, [])
    assert h.level == OK and h.values["mirrored_registrations"] == "7" and h.values["peer_restarts"] == "1"
    h = bridge_status(peers, 7, ["http://127.0.1.1:1/", "http://127.0.1.1:1/"])
    assert h.level == WARN and h.values["unreachable_node_uris"] == "http://127.0.1.1:1/"
    peers[1].reachable = False
    assert bridge_status(peers, 0, []).level == ERROR


def test_server_status():
    h = server_status("cuda:0", "auto", ["r1", "r2"], ["r1"], ["kapao"], [], {"rss_mb": 900.0})
    assert h.level == OK and h.values["sessions"] == "r1" and h.values["rss_mb"] == "900.0"
    assert "serving 1/2 robots" in h.message
    h = server_status("cpu", "cuda", ["r1"], [], ["kapao"], ["kapao"], {})
    assert h.level == WARN and "asked for cuda" in h.message and "random weights" in h.message
    solving = SolveFacts("ab12", ("r1",), 10.0, 70.0, 3, 51)
    h = server_status("cpu", "cpu", ["r1"], [], ["kapao"], [], {}, [solving])
    assert h.values["solving_ab12"].startswith("3/51 buckets, 10 s of ~70 s")


def test_client_reports_a_renewal_in_flight_and_a_camera_priced_book():
    h = client_status(_client())
    assert h.values["plan_book_renewing"] == "no" and h.values["plan_book_camera"] == "no"
    h = client_status(_client(book_renewing=True, book_camera=True))
    assert h.values["plan_book_renewing"] == "yes" and h.values["plan_book_camera"] == "yes"
    assert h.level == OK, "a renewal keeps the held book: nothing to warn about"
