"""The handshake protocol's ROS call: `handshake_call(names, keys)` is the `HandshakeCall` that
intradp_ros.core.robot_session.SessionProtocol uses on a robot (the client nodes and the IntraDP API's remote path).

With `keys` holding a shared secret (core/session_auth.ClientKeys), every full handshake carries a fresh nonce and
proofs and installs the new session key for tiles once the server proved the secret too; every heartbeat proves
the session key. A server that answers without proof is refused here: tiles never go to an impostor or to an
unauthenticated server.
"""

from __future__ import annotations

from intradp_ros.core.auth import AuthError
from intradp_ros.core.robot_session import HandshakeCall, HandshakeReply, SessionIds
from intradp_ros.core.session_auth import ClientKeys
from intradp_ros.ros.handshake import call_handshake, full_request, heartbeat_request
from intradp_ros.ros.names import RobotNames


def handshake_call(names: RobotNames, keys: ClientKeys | None = None) -> HandshakeCall:
    """A call of `names.handshake` (resolved in the node's namespace), bounded by its timeout, as a plain reply."""

    def call(ids: SessionIds, profile_json: str, timeout: float) -> HandshakeReply:
        fields = (ids.robot, ids.model_id, ids.weights_fingerprint, ids.graph_fingerprint)
        hello = None
        if profile_json:
            request = full_request(*fields, profile_json)
            if keys is not None and keys.enabled:
                hello = keys.hello()
                request.nonce, request.proof, request.renew_proof = hello.nonce, hello.proof, hello.renew
        else:
            request = heartbeat_request(*fields)
            if keys is not None and keys.enabled:
                beat = keys.beat()
                request.nonce, request.proof = beat.nonce, beat.proof
        out = call_handshake(ids.robot, request, timeout, service=names.handshake)
        if out.response is None:
            return HandshakeReply(answered=False, reason=out.reason)
        r = out.response
        if hello is not None and r.accepted and keys is not None:
            try:
                keys.accepted(hello, bytes(r.server_nonce), bytes(r.server_proof))
            except AuthError as e:
                return HandshakeReply(answered=True, accepted=False, reason=f"server not authenticated: {e}")
        return HandshakeReply(
            answered=True,
            accepted=bool(r.accepted),
            reason=str(r.error),
            plan_table_json=str(r.plan_table_json),
            server_device=str(r.server_device),
            server_profile_json=str(r.server_profile_json),
        )

    return call
