"""Testbed pieces that need no root: argument validation, addressing, replay schedule, CLI parsing, ss parsing."""

import ipaddress
import threading
import time

import pytest

from intradp_ros.eval import cgroup, netns, shaping, testbed
from intradp_ros.eval.sockets import parse_ss
from intradp_ros.eval.testbed import Testbed, TestbedError, TraceReplay, replay_schedule
from intradp_ros.eval.testbed_cli import parse_command


@pytest.mark.parametrize("name", ["idp", "a", "demo_1", "abcdefgh"])
def test_good_names(name):
    assert testbed.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "has-dash", "abcdefghi", "sp ace", None, "é"])
def test_bad_names(name):
    with pytest.raises(ValueError):
        testbed.validate_name(name)


@pytest.mark.parametrize("rate,expected", [(90, 90.0), ("12.5", 12.5), (0, shaping.MIN_RATE_MBIT)])
def test_rates_are_validated_and_zero_is_clamped(rate, expected):
    assert shaping.validate_rate(rate) == expected


@pytest.mark.parametrize("rate", [-1, float("nan"), float("inf"), "fast", None])
def test_bad_rates(rate):
    with pytest.raises(ValueError):
        shaping.validate_rate(rate)


@pytest.mark.parametrize("fraction", [0, -0.5, 1e6, "x", float("nan")])
def test_bad_cpu_fractions(fraction):
    with pytest.raises(ValueError):
        cgroup.validate_cpu_fraction(fraction)


def test_cpu_fraction_of_one_cpu_is_fine():
    assert cgroup.validate_cpu_fraction(0.25) == 0.25


@pytest.mark.parametrize(
    "kwargs", [{"rate_mbit": -5}, {"name": "bad-name"}, {"master_port": 0}, {"master_port": "11311"}]
)
def test_testbed_validates_arguments_before_touching_the_system(kwargs, monkeypatch):
    def no_system(*a, **k):
        raise AssertionError("argument validation must come first")

    monkeypatch.setattr(netns, "create_namespace", no_system)
    with pytest.raises(ValueError):
        Testbed(**kwargs)


def test_testbed_needs_root(monkeypatch):
    monkeypatch.setattr(testbed.os, "geteuid", lambda: 1000)
    monkeypatch.setattr("intradp_ros.eval.sysexec.os.geteuid", lambda: 1000)
    with pytest.raises(TestbedError, match="needs root"):
        Testbed(rate_mbit=90)


def test_link_addresses_are_a_private_slash30_and_differ_per_index():
    seen = set()
    for index in (0, 1, 2, 12345, 2**21 - 1):
        a = netns.link_addresses(index)
        net = ipaddress.ip_network(f"{a.robot_ip}/30", strict=False)
        assert ipaddress.ip_address(a.server_ip) in net
        assert a.robot_ip not in (str(net.network_address), str(net.broadcast_address))
        assert a.server_ip != a.robot_ip and net.is_private
        seen.add(net)
    assert len(seen) == 5
    with pytest.raises(ValueError):
        netns.link_addresses(-1)


def test_replay_schedule_follows_speed_and_loops():
    samples = [(0.0, 10.0), (0.5, 20.0), (1.0, 30.0)]
    assert replay_schedule(samples) == [(0.0, 10.0), (0.5, 20.0), (1.0, 30.0)]
    assert replay_schedule(samples, speed=2.0) == [(0.0, 10.0), (0.25, 20.0), (0.5, 30.0)]
    # one pass lasts 1.5 s (last time + one period), so the second pass starts there
    assert [t for t, _ in replay_schedule(samples, loop_index=1)] == [1.5, 2.0, 2.5]
    for bad in (0, -1, float("inf"), "x"):
        with pytest.raises(ValueError):
            replay_schedule(samples, speed=bad)


class FakeTestbed:
    """Records set_rate calls; signals when the replay reached the last sample."""

    def __init__(self, last_rate):
        self.rates = []
        self.last_rate = last_rate
        self.reached = threading.Event()

    def set_rate(self, rate):
        self.rates.append(rate)
        if rate == self.last_rate:
            self.reached.set()


def test_trace_replay_applies_each_changed_rate_in_order():
    fake = FakeTestbed(last_rate=5.0)
    # samples 0.4 s apart: a replay thread late by less than that applies every one
    replay = TraceReplay(fake, [(0.0, 10.0), (0.4, 10.0), (0.8, 20.0), (1.2, 5.0)], speed=1.0, loop=False)
    replay.start()
    replay.join(timeout=10)
    assert not replay.is_alive()
    assert fake.rates == [10.0, 20.0, 5.0]  # the repeated 10.0 is not re-applied
    assert replay.changes == 3 and replay.skipped == 0 and replay.error is None


def test_trace_replay_behind_the_trace_skips_to_the_current_rate():
    class SlowTestbed(FakeTestbed):
        def set_rate(self, rate):
            time.sleep(0.3)  # a tc call on a loaded host: every later sample is already due afterwards
            super().set_rate(rate)

    fake = SlowTestbed(last_rate=5.0)
    replay = TraceReplay(fake, [(0.0, 10.0), (0.01, 30.0), (0.02, 20.0), (0.03, 5.0)], speed=1.0, loop=False)
    replay.start()
    replay.join(timeout=10)
    assert not replay.is_alive()
    assert fake.rates == [10.0, 5.0]  # the stale 30 and 20 are never applied
    assert replay.skipped == 2 and replay.changes == 2 and replay.error is None


def test_trace_replay_stops_when_asked_and_keeps_errors():
    fake = FakeTestbed(last_rate=-1)
    replay = TraceReplay(fake, [(0.0, 1.0), (100.0, 2.0)], speed=1.0, loop=True)
    replay.start()
    replay.stop()
    replay.join(timeout=10)
    assert not replay.is_alive()
    assert 2.0 not in fake.rates

    class Broken:
        def set_rate(self, rate):
            raise TestbedError("the testbed is down")

    failing = TraceReplay(Broken(), [(0.0, 1.0)], speed=1.0, loop=False)
    failing.start()
    failing.join(timeout=10)
    assert isinstance(failing.error, TestbedError)


def test_cgroup_wrap_keeps_the_argv_and_joins_the_group_first():
    group = cgroup.CpuGroup("intradp-test")
    argv = group.wrap(["ip", "netns", "exec", "ns", "echo", "a b"])
    assert argv[:3] == ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"']
    assert argv[3] == str(cgroup.CPU_ROOT / "intradp-test" / "cgroup.procs")
    assert argv[4:] == ["ip", "netns", "exec", "ns", "echo", "a b"]


@pytest.mark.parametrize(
    "words,expected",
    [
        (["--", "robot", "rostopic", "list"], ["robot", "rostopic", "list"]),
        (["server", "ls"], ["server", "ls"]),
        (["shell"], ["shell"]),
        (["cleanup"], ["cleanup"]),
    ],
)
def test_cli_commands(words, expected):
    assert parse_command(words) == expected


@pytest.mark.parametrize("words", [[], ["--"], ["robot"], ["laptop", "ls"], ["shell", "extra"]])
def test_cli_rejects_unknown_forms(words):
    with pytest.raises(ValueError):
        parse_command(words)


SS_SAMPLE = """\
0      0      10.0.0.1:36545 10.0.0.2:43154 users:(("python3",pid=8220,fd=8))
\t bbr wscale:10,10 rto:204 mss:1448 bytes_sent:20971900 bytes_acked:20971900 bytes_received:310 segs_out:9
0      0      10.0.0.1:11311 10.0.0.1:42060 users:(("rosmaster",pid=8197,fd=6))
\t cubic rto:204 bytes_acked:4447 bytes_received:3805
0      0      [::1]:5000 [::1]:6000
"""


def test_parse_ss_reads_endpoints_pids_and_counters():
    conns = parse_ss(SS_SAMPLE)
    assert len(conns) == 3
    first = conns[0]
    assert first.local == ("10.0.0.1", 36545) and first.peer == ("10.0.0.2", 43154)
    assert first.pids == (8220,)
    assert first.bytes_acked == 20971900 and first.bytes_received == 310
    assert conns[1].pids == (8197,) and conns[1].bytes_received == 3805
    assert conns[2].local == ("::1", 5000) and conns[2].pids == () and conns[2].bytes_acked == 0


def test_spawned_processes_write_unbuffered_and_see_their_side(monkeypatch):
    # readers wait for the nodes' lines as they come; a fresh machine has no PYTHONUNBUFFERED of its own, and
    # a Python child writing into a pipe would hold its lines until it exits
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.setenv("ROS_NAMESPACE", "/group")
    tb = Testbed.__new__(Testbed)
    tb.robot = testbed.Side("robot", "t-robot", "t-r", "10.1.2.1", 11311)
    tb.server = testbed.Side("server", "t-server", "t-s", "10.1.2.2", 11312)
    env = tb.env("server")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["ROS_MASTER_URI"] == "http://10.1.2.2:11312"
    assert env["ROS_IP"] == env["ROS_HOSTNAME"] == "10.1.2.2"
    assert "ROS_NAMESPACE" not in env
