"""ros/diagnostics: a node's counters into core.health, and a Health into a DiagnosticStatus (no master)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

pytest.importorskip("diagnostic_updater")

from diagnostic_updater import DiagnosticStatusWrapper

from intradp_ros.core.health import DropCounter, Health
from intradp_ros.ros.diagnostics import NodeDiagnostics, client_facts


def test_client_facts_read_the_runtime() -> None:
    drops = DropCounter()
    drops.record("unsupported_encoding", "32FC1")
    rt = SimpleNamespace(
        robot="robot1",
        mode="intradp",
        health=SimpleNamespace(state="up"),
        book=object(),
        handshake_since=None,
        bucket=5.0,
        estimate_at=time.monotonic() - 2.0,
        frames_done=7,
        deadline_misses=1,
        local_fallbacks=2,
        drops=drops,
        slot=SimpleNamespace(stale=3, replaced=4),
        cfg=SimpleNamespace(weights=""),
    )
    f = client_facts(rt)
    assert f.has_plan_book and f.link_state == "up" and f.random_weights
    assert f.dropped == {"unsupported_encoding": 1, "stale": 3, "replaced_by_newer": 4}
    assert 1.9 < f.estimate_age_s < 10 and f.handshake_waiting_s is None
    assert not f.book_renewing and not f.book_camera


def test_client_facts_show_the_renewal_and_the_camera_priced_book() -> None:
    from intradp_ros.core.tile import CODEC_CAMERA, CODEC_WEBP

    raw, webp, camera = (SimpleNamespace(codecs=c) for c in ({}, {(0, "up"): CODEC_WEBP}, {(0, "up"): CODEC_CAMERA}))
    rt = SimpleNamespace(
        robot="robot1",
        mode="intradp",
        health=SimpleNamespace(state="up"),
        book=SimpleNamespace(plans=[raw, webp]),
        session=SimpleNamespace(renewing=True),
        handshake_since=None,
        bucket=5.0,
        estimate_at=None,
        frames_done=0,
        deadline_misses=0,
        local_fallbacks=0,
        drops=DropCounter(),
        slot=SimpleNamespace(stale=0, replaced=0),
        cfg=SimpleNamespace(weights=""),
    )
    f = client_facts(rt)
    assert f.book_renewing and not f.book_camera
    rt.book.plans.append(camera)
    rt.session.renewing = False
    f = client_facts(rt)
    assert f.book_camera and not f.book_renewing


def test_a_health_fills_the_status_and_a_failing_one_shows_as_error() -> None:
    stat = NodeDiagnostics._task(lambda: Health(1, "careful", {"a": "1"}))(DiagnosticStatusWrapper())
    assert stat.level == 1 and stat.message == "careful" and [(v.key, v.value) for v in stat.values] == [("a", "1")]

    def broken() -> Health:
        raise KeyError("x")

    stat = NodeDiagnostics._task(broken)(DiagnosticStatusWrapper())
    assert stat.level == 2 and "status failed: KeyError" in stat.message
