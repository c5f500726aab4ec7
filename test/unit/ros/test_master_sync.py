"""MasterSync against in-memory masters: mirroring, loops, caller ids, stale removal, cleanup, restarts, outages."""

from __future__ import annotations

import logging

import pytest
from fake_ros_master import FakeMaster, FakeNode, Network

from intradp_ros.ros.master_sync import MIRROR_PREFIX, Filters, MasterSync, is_mirror, mirror_caller_id, mirror_prefix

ROBOT = "http://10.0.0.1:11311"
SERVER = "http://10.0.0.2:11311"
TALKER = "http://10.0.0.1:40001/"
LISTENER = "http://10.0.0.2:40002/"
ADDER = "http://10.0.0.2:40003/"
STRING = "std_msgs/String"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# The default filters of a Bench (one object, as the default argument it replaces was).
BENCH_FILTERS = Filters(topics=["/intradp/*", "/chatter"], services=["/intradp/*"])


class Bench:
    """Two fake masters, some fake nodes, and a MasterSync between them (robot = local, server = peer)."""

    def __init__(self, filters: Filters = BENCH_FILTERS, **kw) -> None:
        self.net = Network()
        self.robot = self.net.add(FakeMaster(ROBOT, pid=100))
        self.server = self.net.add(FakeMaster(SERVER, pid=200))
        self.clock = Clock()
        self.records: list[logging.LogRecord] = []
        self.log = logging.getLogger(f"test_master_sync.{id(self)}")
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False
        handler = logging.Handler()
        handler.emit = self.records.append  # type: ignore[method-assign]
        self.log.addHandler(handler)
        self.sync = self.make_sync(filters, **kw)

    def make_sync(self, filters: Filters, **kw) -> MasterSync:
        return MasterSync(
            ROBOT, SERVER, self.net, caller_id="/master_bridge", filters=filters, log=self.log, clock=self.clock, **kw
        )

    def steps(self, n: int = 1) -> None:
        for _ in range(n):
            self.sync.step()
            self.clock.now += 0.25

    def messages(self, level: int = logging.INFO) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]

    def add_node(self, master: FakeMaster, name: str, uri: str, pubs=(), subs=(), srvs=()) -> FakeNode:
        node = self.net.add(FakeNode(uri, pubs=[(t, STRING) for t in pubs], subs=[(t, STRING) for t in subs]))
        for t in pubs:
            master.registerPublisher(name, t, STRING, uri)
        for t in subs:
            code, _status, current = master.registerSubscriber(name, t, STRING, uri)
            node.publisherUpdate("/master", t, current)  # a rospy subscriber connects to the returned publishers
        for s in srvs:
            master.registerService(
                name, s, "rosrpc://" + uri[len("http://") :].rstrip("/").rsplit(":", 1)[0] + ":5000", uri
            )
        return node


def publishers(master: FakeMaster, topic: str) -> list[tuple[str, str]]:
    return list(master.pubs.get(topic, []))


def robot_mirror(node: str) -> str:
    return mirror_caller_id(mirror_prefix(ROBOT, SERVER), node)


def server_mirror(node: str) -> str:
    return mirror_caller_id(mirror_prefix(SERVER, ROBOT), node)


def test_remote_publisher_is_registered_under_the_real_node_uri_both_ways() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/intradp/r1/up"])
    b.add_node(b.server, "/listener", LISTENER, subs=["/intradp/r1/up"], pubs=["/intradp/r1/down"])
    b.steps()
    assert publishers(b.server, "/intradp/r1/up") == [(robot_mirror("/talker"), TALKER)]
    assert b.server.types["/intradp/r1/up"] == STRING
    assert publishers(b.robot, "/intradp/r1/down") == [(server_mirror("/listener"), LISTENER)]
    # the server-side subscriber was told (by its own master) to connect straight to the robot node
    assert (LISTENER, "/intradp/r1/up", [TALKER]) in b.server.publisher_updates
    # subscribers are not mirrored (a remote master would overwrite their publisher lists)
    assert "/intradp/r1/up" not in b.robot.subs


def test_service_is_mirrored_with_its_rosrpc_uri() -> None:
    b = Bench()
    b.add_node(b.server, "/adder", ADDER, srvs=["/intradp/add"])
    b.steps()
    assert b.robot.lookupService("/client", "/intradp/add")[2] == "rosrpc://10.0.0.2:5000"
    assert b.robot.srvs["/intradp/add"][:2] == (server_mirror("/adder"), ADDER)


def test_globs_select_what_is_synced() -> None:
    b = Bench(
        filters=Filters(topics=["/intradp/*"], services=["/intradp/probe*"], exclude_topics=["/intradp/private/*"])
    )
    b.add_node(
        b.robot,
        "/a",
        "http://10.0.0.1:1/",
        pubs=["/intradp/r1/up", "/intradp/private/x", "/camera", "/rosout"],
        srvs=["/intradp/probe", "/intradp/other"],
    )
    b.steps()
    assert set(b.server.pubs) == {"/intradp/r1/up"}
    assert set(b.server.srvs) == {"/intradp/probe"}


def test_mirrors_are_never_mirrored_back_and_steady_state_makes_no_calls() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.add_node(b.server, "/talker", "http://10.0.0.2:40009/", pubs=["/chatter"])
    b.steps(3)
    assert sorted(c for c, _ in publishers(b.robot, "/chatter")) == sorted(["/talker", server_mirror("/talker")])
    assert sorted(c for c, _ in publishers(b.server, "/chatter")) == sorted(["/talker", robot_mirror("/talker")])
    registrations = b.robot.count("registerPublisher") + b.server.count("registerPublisher")
    b.steps(5)
    assert b.robot.count("registerPublisher") + b.server.count("registerPublisher") == registrations
    assert b.robot.shutdowns == [] and b.server.shutdowns == []  # no caller id was ever bumped


def test_caller_ids_are_unique_per_direction_and_master_pair() -> None:
    assert mirror_prefix(ROBOT, SERVER) != mirror_prefix(SERVER, ROBOT)
    assert mirror_prefix("http://10.0.0.3:11311", SERVER) != mirror_prefix(ROBOT, SERVER)
    assert mirror_prefix(ROBOT + "/", SERVER) == mirror_prefix(ROBOT, SERVER)  # stable across restarts
    mid = robot_mirror("/ns/talker")
    assert mid.startswith(MIRROR_PREFIX) and mid.endswith("/ns/talker") and is_mirror(mid)
    assert not is_mirror("/talker")


def test_a_second_bridge_does_not_pick_up_another_bridges_mirrors() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.steps()
    other_robot = b.net.add(FakeMaster("http://10.0.0.3:11311", pid=300))
    second = MasterSync(other_robot.uri, SERVER, b.net, filters=Filters(topics=["/chatter"]), log=b.log, clock=b.clock)
    second.step()
    assert "/chatter" not in other_robot.pubs  # the robot-1 mirror on the server is not re-exported


def test_vanished_publisher_is_unregistered_on_the_other_master() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps()
    assert publishers(b.server, "/chatter")
    b.robot.unregisterPublisher("/talker", "/chatter", TALKER)
    b.steps()
    assert publishers(b.server, "/chatter") == []
    assert robot_mirror("/talker") not in b.server.nodes
    assert b.server.publisher_updates[-1] == (LISTENER, "/chatter", [])
    assert any("removed mirror" in m for m in b.messages())


def test_restarted_original_with_a_new_uri_is_remirrored_without_bumping() -> None:
    b = Bench(refresh_s=1.0)
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.steps()
    new_uri = "http://10.0.0.1:40111/"
    b.robot.registerPublisher("/talker", "/chatter", STRING, new_uri)  # same name, new process
    b.steps(6)  # past the URI refresh period
    assert publishers(b.server, "/chatter") == [(robot_mirror("/talker"), new_uri)]
    assert b.server.shutdowns == []  # the old mirror was unregistered first, so no shutdown was sent


def test_cleanup_removes_every_mirror_on_both_masters() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter", "/intradp/r1/up"])
    b.add_node(b.server, "/adder", ADDER, srvs=["/intradp/add"], pubs=["/intradp/r1/down"])
    b.steps()
    assert b.sync.mirror_count() == 4
    assert b.sync.cleanup() == 4
    assert not any(is_mirror(c) for m in (b.robot, b.server) for c in m.nodes)
    assert publishers(b.robot, "/chatter") == [("/talker", TALKER)]  # originals untouched
    assert b.server.srvs["/intradp/add"][0] == "/adder"


def test_restarted_bridge_adopts_its_mirrors_and_drops_stale_ones() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.add_node(b.robot, "/old", "http://10.0.0.1:40005/", pubs=["/intradp/r1/up"])
    b.steps()
    # the bridge dies without cleaning up; meanwhile /old exits
    b.robot.unregisterPublisher("/old", "/intradp/r1/up", "http://10.0.0.1:40005/")
    b.sync = b.make_sync(Filters(topics=["/intradp/*", "/chatter"]))
    before = b.server.count("registerPublisher")
    b.steps()
    assert b.server.count("registerPublisher") == before  # the live mirror is adopted, not re-registered
    assert b.sync.adopted == 2 and any("in sync: 1 mirrors (2 adopted" in m for m in b.messages())
    assert publishers(b.server, "/chatter") == [(robot_mirror("/talker"), TALKER)]
    assert publishers(b.server, "/intradp/r1/up") == []
    assert b.sync.cleanup() == 1 and publishers(b.server, "/chatter") == []


def test_master_restart_is_detected_refilled_and_live_nodes_restored() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"], pubs=["/intradp/r1/down"])
    dead = b.add_node(b.server, "/dead", "http://10.0.0.2:40007/", pubs=["/intradp/r1/stats"])
    b.add_node(b.server, "/adder", ADDER, srvs=["/intradp/add"])
    b.steps(2)
    dead.alive = False
    b.server.down = True
    b.steps(2)
    assert any("unreachable" in m for m in b.messages(logging.WARNING))
    # mirrors of server nodes on the robot are kept while the server master is away
    assert publishers(b.robot, "/intradp/r1/down") == [(server_mirror("/listener"), LISTENER)]
    b.server.restart()
    b.steps()  # one step after the master is back does it all
    assert b.server.subs["/chatter"] == [("/listener", LISTENER)]  # restored under its own name
    assert b.server.pubs["/intradp/r1/down"] == [("/listener", LISTENER)]
    assert b.server.srvs["/intradp/add"] == ("/adder", ADDER, "rosrpc://10.0.0.2:5000")
    assert "/intradp/r1/stats" not in b.server.pubs  # the dead node is not restored
    assert publishers(b.server, "/chatter") == [(robot_mirror("/talker"), TALKER)]  # mirror refilled
    assert (LISTENER, "/chatter", [TALKER]) in b.server.publisher_updates
    assert publishers(b.robot, "/intradp/r1/stats") == []  # and its mirror is removed
    assert any("restarted" in m for m in b.messages())


def test_restore_never_bumps_a_new_node_of_the_same_name() -> None:
    b = Bench()
    b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps()
    b.server.restart()
    b.server.registerSubscriber("/listener", "/chatter", STRING, "http://10.0.0.2:49999/")  # a new incarnation
    b.steps()
    assert b.server.subs["/chatter"] == [("/listener", "http://10.0.0.2:49999/")]
    assert b.server.shutdowns == []


def test_restore_can_be_switched_off() -> None:
    b = Bench(restore=False)
    b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps()
    b.server.restart()
    b.steps()
    assert "/chatter" not in b.server.subs


def test_unreachable_peer_is_retried_with_throttled_log_lines_and_no_exception() -> None:
    b = Bench(warn_every_s=10.0)
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.server.down = True
    b.steps(8)  # 2 s
    warnings = b.messages(logging.WARNING)
    assert len(warnings) == 1 and SERVER in warnings[0] and "unreachable" in warnings[0]
    assert "Traceback" not in warnings[0]
    assert not b.sync.peer.reachable and b.server.refused_calls >= 8  # retried every step
    b.steps(40)  # 10 s more: one more reminder
    assert len(b.messages(logging.WARNING)) == 2
    b.server.down = False
    b.steps()
    assert publishers(b.server, "/chatter") == [(robot_mirror("/talker"), TALKER)]
    assert any("reachable after" in m for m in b.messages())


def test_peer_back_with_same_pid_is_resynced_without_restore() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.steps()
    b.server.down = True
    b.steps()
    b.robot.unregisterPublisher("/talker", "/chatter", TALKER)  # changed while the peer was away
    b.server.down = False
    b.steps()
    assert publishers(b.server, "/chatter") == []
    assert not any("restored" in m for m in b.messages())


def test_service_present_on_both_sides_is_not_overwritten() -> None:
    b = Bench()
    b.add_node(b.robot, "/probe_r", "http://10.0.0.1:40020/", srvs=["/intradp/probe"])
    b.add_node(b.server, "/probe_s", "http://10.0.0.2:40021/", srvs=["/intradp/probe"])
    b.steps(3)
    assert b.robot.srvs["/intradp/probe"][0] == "/probe_r"
    assert b.server.srvs["/intradp/probe"][0] == "/probe_s"
    assert len([m for m in b.messages(logging.WARNING) if "both masters" in m]) == 2


def test_same_master_twice_is_refused() -> None:
    with pytest.raises(ValueError):
        MasterSync(ROBOT, ROBOT + "/", Network())


def test_api_error_is_logged_not_raised() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    b.server.refuse.add("registerPublisher")
    b.steps()
    b.steps(8)  # refused again every step, logged once (no log flood at the poll rate)
    assert len([m for m in b.messages(logging.WARNING) if "refused by test" in m]) == 1
    b.server.refuse.clear()
    b.steps()
    assert publishers(b.server, "/chatter") == [(robot_mirror("/talker"), TALKER)]


# ---- subscribers that lost a mirrored publisher (re-advertised at the same URI between two polls) ----------------


def bridge_updates(node: FakeNode) -> list[tuple[str, str, list[str]]]:
    return [u for u in node.updates if u[0] == "/master_bridge"]


def readvertise(b: Bench, listener: FakeNode, topic: str = "/chatter", uri: str = TALKER) -> None:
    """The talker tears its publisher down and advertises it again between two polls: both masters' states look
    unchanged, and the remote subscriber's TCPROS connection died with the old publisher."""
    b.robot.unregisterPublisher("/talker", topic, uri)
    b.robot.registerPublisher("/talker", topic, STRING, uri)
    listener.drop(topic, uri)


def test_subscriber_that_lost_a_readvertised_publisher_is_reconnected_after_the_grace() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps(2)
    assert listener.connected["/chatter"] == {TALKER}  # through the server master's own publisherUpdate
    registrations = b.server.count("registerPublisher") + b.server.count("unregisterPublisher")
    readvertise(b, listener)
    b.steps(2)  # 0.5 s: seen, but within the grace (a normal connect may still be under way)
    assert bridge_updates(listener) == []
    b.steps(2)
    assert bridge_updates(listener) == [("/master_bridge", "/chatter", [TALKER])]
    assert listener.connected["/chatter"] == {TALKER}
    assert b.server.count("registerPublisher") + b.server.count("unregisterPublisher") == registrations
    assert any("sent it publisherUpdate #1" in m for m in b.messages())
    b.steps(20)  # connected again: probed, nothing more sent
    assert len(bridge_updates(listener)) == 1 and b.sync.watch.gaps == {}


def test_connected_subscribers_get_no_publisher_update() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter", "/intradp/r1/up"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter", "/intradp/r1/up"])
    b.steps(20)
    assert listener.calls["getBusInfo"] >= 19  # probed every poll (one call for all its topics)
    assert bridge_updates(listener) == []


def test_publisher_update_carries_the_complete_publisher_list_of_the_subscribers_master() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    local = "http://10.0.0.2:40030/"
    b.add_node(b.server, "/local_talker", local, pubs=["/chatter"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps(2)
    assert listener.connected["/chatter"] == {TALKER, local}
    readvertise(b, listener)
    b.steps(4)
    ((_caller, topic, uris),) = bridge_updates(listener)
    # what the server master would send: roscpp drops connections to publishers missing from the list
    assert topic == "/chatter" and sorted(uris) == sorted([TALKER, local])


def test_no_publisher_update_for_a_dead_or_no_longer_publishing_publisher() -> None:
    b = Bench()
    talker = b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps(2)
    talker.alive = False  # SIGKILL: its registration (and so the mirror) stays, the connection is gone
    listener.drop("/chatter", TALKER)
    b.steps(8)
    talker.alive, talker.pubs = True, []  # answers, but does not publish the topic (any more)
    b.steps(8)
    assert bridge_updates(listener) == []
    assert 1 <= talker.calls.get("getPublications", 0) <= 4  # checked before sending; again only after a backoff


def test_subscriber_that_does_not_answer_is_backed_off_and_logged_once() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps()
    listener.alive = False  # killed, still registered on its master
    b.steps(40)  # 10 s
    assert listener.calls["getBusInfo"] <= 1 + 5  # retried after 1, 2, 4, 8 s
    assert len([m for m in b.messages(logging.WARNING) if "does not answer getBusInfo" in m]) <= 2
    listener.alive = True
    listener.drop("/chatter", TALKER)
    b.steps(4 * 20)  # the backoff is at most 16 s here
    assert bridge_updates(listener) and listener.connected["/chatter"] == {TALKER}


def test_subscriber_that_never_connects_is_not_flooded() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps()
    listener.connects = False  # e.g. a type mismatch: every connection attempt fails
    listener.drop("/chatter", TALKER)
    b.steps(4 * 120)  # 2 min
    sent = len(bridge_updates(listener))
    # 5 sends 1 s apart (a publisher advertised again and again), then 2, 4, 8, 16, 30, 30, ... s apart
    assert 8 <= sent <= 12, sent
    assert len([m for m in b.messages(logging.WARNING) if "does not connect" in m]) <= 6  # at most one per 20 s


def test_probes_per_poll_are_bounded_and_every_subscriber_gets_its_turn() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listeners = [
        b.add_node(b.server, f"/listener{i}", f"http://10.0.0.2:{41000 + i}/", subs=["/chatter"]) for i in range(20)
    ]
    b.steps()
    probed = sum(n.calls.get("getBusInfo", 0) for n in listeners)
    assert probed == b.sync.watch.max_probes
    b.steps(2)
    assert all(n.calls.get("getBusInfo", 0) >= 1 for n in listeners)


def test_slow_nodes_cannot_stall_a_poll_beyond_the_time_budget() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listeners = [
        b.add_node(b.server, f"/listener{i}", f"http://10.0.0.2:{41000 + i}/", subs=["/chatter"]) for i in range(6)
    ]
    b.steps()
    for n in listeners:  # from now on every slave call takes 0.3 s (a node timing out)
        n.on_call = lambda method: setattr(b.clock, "now", b.clock.now + 0.3)
        n.calls.clear()
    t0 = b.clock.now
    b.sync.step()
    budget = b.sync.watch.budget_s
    assert b.clock.now - t0 <= budget + 0.3  # no new call once the budget is spent
    assert sum(n.calls.get("getBusInfo", 0) for n in listeners) == 2


def test_reattach_can_be_switched_off() -> None:
    b = Bench(reattach=False)
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    b.steps(2)
    readvertise(b, listener)
    b.steps(20)
    assert "getBusInfo" not in listener.calls and bridge_updates(listener) == []


def test_malformed_bus_info_is_treated_as_no_answer() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", TALKER, pubs=["/chatter"])
    listener = b.add_node(b.server, "/listener", LISTENER, subs=["/chatter"])
    listener.getBusInfo = lambda caller_id: [1, "bus info", [["x"]]]  # type: ignore[method-assign]
    b.steps(8)
    assert any("does not answer getBusInfo" in m for m in b.messages(logging.WARNING))
    assert bridge_updates(listener) == []


def test_loopback_node_uri_is_flagged_once_and_shown_in_health() -> None:
    b = Bench()
    b.add_node(b.robot, "/talker", "http://127.0.1.1:40001/", pubs=["/intradp/r1/up", "/intradp/r1/stats"])
    b.add_node(b.robot, "/good", TALKER, pubs=["/intradp/r1/plan"])
    b.steps(3)
    warnings = [m for m in b.messages(logging.WARNING) if "127.0.1.1" in m]
    assert len(warnings) == 1 and "ROS_IP" in warnings[0], warnings
    h = b.sync.health()
    assert h.level == 1 and h.values["unreachable_node_uris"] == "http://127.0.1.1:40001/"
    assert h.values["mirrored_registrations"] == "3" and h.values["peer_reachable"] == "yes"


def test_health_shows_an_unreachable_peer() -> None:
    b = Bench()
    b.steps()
    assert b.sync.health().level == 0
    b.server.down = True
    b.steps()
    assert b.sync.health().level == 2 and b.sync.health().values["peer_reachable"] == "no"
