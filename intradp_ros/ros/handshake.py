"""The client/server handshake on `/intradp/<robot>/handshake` (intradp_ros/Handshake).

Full handshake (client_profile_json set): the server checks model id, weights and graph fingerprints against
its replica, caches the client's profile, and answers with its own profile, its device and the plan book
(plan table JSON plus every mode's plans, `intradp_ros.core.plan_book`). Heartbeat (client_profile_json
empty): "is my session still there?" — accepted only when the server holds a session for this robot with the
same model; a restarted server answers "no session" and the client makes a full handshake again.

Camera passthrough: every request carries the robot's JPEG/PNG decoder identity, every answer the server's;
a heartbeat may carry a camera probe (one frame's CODEC_CAMERA payload) that the server decodes and compares
(`camera_fields`), so the robot passes camera bytes through only after its first frame decoded identically.

Authentication (docs/security.md; the fields are empty without a key file): a full handshake carries the
client's nonce, its proof of the shared secret and, when it renews a live session, proof of that session's key;
the server answers with its nonce and proof. A heartbeat (and a camera probe) proves the session key over a fresh
nonce. ros/session_link.py fills them from core/session_auth.ClientKeys; the server checks them before anything
else (ros/server_node.py).

Service calls are made from a worker thread with a bounded wait, so a hung server never blocks the client.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rospy

from intradp_ros.core.codecs.camera import DecoderIdentity, local_decoder, split_payload
from intradp_ros.core.robot_session import NO_SESSION  # noqa: F401 - the protocol's word, re-exported
from intradp_ros.core.session_auth import ClientKeys
from intradp_ros.core.tile import TileError
from intradp_ros.ros.names import RobotNames
from intradp_ros.ros.remembered_service import RememberingServiceProxy
from intradp_ros.srv import Handshake, HandshakeRequest, HandshakeResponse


def handshake_service(robot: str) -> str:
    return RobotNames(robot).handshake


def server_report_topic(robot: str) -> str:
    return RobotNames(robot).server_report


@dataclass
class HandshakeOutcome:
    """What a call gave: the response, or why there is none (service missing, timeout, call failed)."""

    response: HandshakeResponse | None
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
    robot: str, request: HandshakeRequest, timeout: float, service: str | None = None
) -> HandshakeOutcome:
    """Call the robot's handshake service (or `service`), waiting at most `timeout` seconds in all."""
    box: dict = {}
    name = service or handshake_service(robot)

    def work() -> None:
        try:
            proxy = RememberingServiceProxy(name, Handshake)  # works while the local master is away
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
        decoder_json=local_decoder().to_json(),
    )


def full_request(robot: str, model_id: str, weights_fp: str, graph_fp: str, profile_json: str) -> HandshakeRequest:
    return HandshakeRequest(
        robot=robot,
        model_id=model_id,
        weights_fingerprint=weights_fp,
        graph_fingerprint=graph_fp,
        client_profile_json=profile_json,
        decoder_json=local_decoder().to_json(),
    )


def camera_probe_request(robot: str, model_id: str, weights_fp: str, graph_fp: str, payload: bytes) -> HandshakeRequest:
    """A heartbeat that also asks the server to check one camera frame decodes to the robot's model input."""
    req = heartbeat_request(robot, model_id, weights_fp, graph_fp)
    req.camera_probe = bytes(payload)
    return req


def camera_fields(req: HandshakeRequest, input_shape: Sequence[int]) -> dict[str, Any]:
    """Server side: the answer's decoder identity and, for a probe, why its decode differs ('' if identical).

    `input_shape`: the served model's input shape; the probe is decoded exactly as a CODEC_CAMERA tile would be.
    """
    from intradp_ros.models.camera_input import decode_camera_tile  # registers the codec too

    fields: dict[str, Any] = {"server_decoder_json": local_decoder().to_json(), "camera_probe_error": ""}
    probe = bytes(req.camera_probe) if req.camera_probe else b""
    if not probe:
        return fields
    mine = local_decoder()
    theirs = DecoderIdentity.from_json(req.decoder_json)
    if theirs != mine:
        fields["camera_probe_error"] = f"decoder differs: robot {theirs}, server {mine}"
        return fields
    try:
        split_payload(probe)
        decode_camera_tile(probe, tuple(int(d) for d in input_shape))
    except TileError as e:
        fields["camera_probe_error"] = e.reason
    return fields


def probe_camera(
    robot: str, ids: Sequence[str], payload: bytes, timeout: float, keys: ClientKeys | None = None
) -> tuple[bool | None, str]:
    """Ask the server whether one camera frame decodes to the robot's model input there (with `keys`, the probe
    proves the session key like a heartbeat: an authenticated server decodes nothing for a stranger).

    Returns (True, '') for an identical decode, (False, why) for a mismatch (the robot must send pixels), and
    (None, why) when there was no usable answer (no server, refused heartbeat, an older server): ask again later.
    """
    robot_id, model_id, weights_fp, graph_fp = ids
    req = camera_probe_request(robot_id, model_id, weights_fp, graph_fp, payload)
    if keys is not None:
        beat = keys.beat()
        req.nonce, req.proof = beat.nonce, beat.proof
    out = call_handshake(robot, req, timeout)
    resp = out.response
    if not out.accepted or resp is None:
        return None, out.reason
    if not resp.server_decoder_json:
        return None, "server does not report a camera decoder (older server)"
    if resp.camera_probe_error:
        return False, str(resp.camera_probe_error)
    return True, ""
