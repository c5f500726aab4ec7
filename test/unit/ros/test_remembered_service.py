"""The handshake's service proxy keeps the last address the master gave, for when the local master is away."""

from __future__ import annotations

import pytest

rospy = pytest.importorskip("rospy")

from intradp_ros.ros import remembered_service
from intradp_ros.ros.remembered_service import RememberingServiceProxy
from intradp_ros.srv import Handshake, HandshakeRequest


def test_the_last_address_is_used_while_the_master_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    remembered_service.forget()
    answers: list[object] = ["rosrpc://server:4711", rospy.ServiceException("unable to contact master")]

    def lookup(self, request):  # rospy's own lookup: first the master answers, then it is gone
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(rospy.ServiceProxy, "_get_service_uri", lookup)
    req = HandshakeRequest()
    assert (
        RememberingServiceProxy("/intradp/robot1/handshake", Handshake)._get_service_uri(req) == "rosrpc://server:4711"
    )
    proxy = RememberingServiceProxy("/intradp/robot1/handshake", Handshake)
    assert proxy._get_service_uri(req) == "rosrpc://server:4711"  # master away: the remembered address
    assert proxy.uri == "rosrpc://server:4711"


def test_without_a_remembered_address_the_lookup_error_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    remembered_service.forget()

    def lookup(self, request):
        raise rospy.ServiceException("unable to contact master")

    monkeypatch.setattr(rospy.ServiceProxy, "_get_service_uri", lookup)
    with pytest.raises(rospy.ServiceException, match="unable to contact master"):
        RememberingServiceProxy("/intradp/robot9/handshake", Handshake)._get_service_uri(HandshakeRequest())
