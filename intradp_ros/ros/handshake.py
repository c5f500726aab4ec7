"""The client/server handshake on `/intradp/<robot>/handshake` (intradp_ros/Handshake).

Full handshake (client_profile_json set): the server checks model id, weights and graph fingerprints against
its replica, caches the client's profile, and answers with its own profile, its device and the plan book
(plan table JSON plus every mode's plans, `intradp_ros.core.plan_book`). Heartbeat (client_profile_json
empty): "is my session still there?" — accepted only when the server holds a session for this robot with the
same model; a restarted server answers "no session" and the client makes a full handshake again.

Service calls are made from a worker thread with a bounded wait, so a hung server never blocks the client.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

import rospy

from intradp_ros.srv import Handshake, HandshakeRequest, HandshakeResponse

from intradp_ros.core.robot_session import NO_SESSION  # noqa: F401 - the protocol's word, re-exported
from intradp_ros.ros.names import RobotNames


def handshake_service(robot: str) -> str:
    return RobotNames(robot).handshake


def server_report_topic(robot: str) -> str:
    return RobotNames(robot).server_report


@dataclass
class HandshakeOutcome:
    """What a call gave: the response, or why there is none (service missing, timeout, call failed)."""

    response: Optional[HandshakeResponse]
    error: str = ""

    @property
    def accepted(self) -> bool:
        return self.response is not None and bool(self.response.accepted)

    @property
    def reason(self) -> str:
        if self.response is None:
            return self.error
        return self.response.error


def call_handshake(
    robot: str, request: HandshakeRequest, timeout: float, service: Optional[str] = None
) -> HandshakeOutcome:
    """Call the robot's handshake service (or `service`), waiting at most `timeout` seconds in all."""
    box: dict = {}
    name = service or handshake_service(robot)

    def work() -> None:
        try:
            proxy = rospy.ServiceProxy(name, Handshake)
            box["response"] = proxy(request)
        except (rospy.ServiceException, rospy.ROSException, OSError) as e:
            box["error"] = f"{name}: {e}"
        except Exception as e:  # noqa: BLE001 - any transport failure is a failed call
            box["error"] = f"{name}: {type(e).__name__}: {e}"

    t = threading.Thread(target=work, name="intradp-handshake", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return HandshakeOutcome(None, f"{name}: no answer within {timeout:g} s")
    if "response" in box:
        return HandshakeOutcome(box["response"])
    return HandshakeOutcome(None, box.get("error", f"{name}: failed"))


def heartbeat_request(robot: str, model_id: str, weights_fp: str, graph_fp: str) -> HandshakeRequest:
    return HandshakeRequest(
        robot=robot,
        model_id=model_id,
        weights_fingerprint=weights_fp,
        graph_fingerprint=graph_fp,
        client_profile_json="",
    )


def full_request(robot: str, model_id: str, weights_fp: str, graph_fp: str, profile_json: str) -> HandshakeRequest:
    return HandshakeRequest(
        robot=robot,
        model_id=model_id,
        weights_fingerprint=weights_fp,
        graph_fingerprint=graph_fp,
        client_profile_json=profile_json,
    )
