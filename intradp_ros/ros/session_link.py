"""The handshake protocol's ROS call: `handshake_call(names)` is the `HandshakeCall` that
intradp_ros.core.robot_session.SessionProtocol uses on a robot (the client nodes and the IntraDP API's remote path).
"""

from __future__ import annotations

from intradp_ros.core.robot_session import HandshakeCall, HandshakeReply, SessionIds
from intradp_ros.ros.handshake import call_handshake, full_request, heartbeat_request
from intradp_ros.ros.names import RobotNames


def handshake_call(names: RobotNames) -> HandshakeCall:
    """A call of `names.handshake` (resolved in the node's namespace), bounded by its timeout, as a plain reply."""

    def call(ids: SessionIds, profile_json: str, timeout: float) -> HandshakeReply:
        fields = (ids.robot, ids.model_id, ids.weights_fingerprint, ids.graph_fingerprint)
        request = full_request(*fields, profile_json) if profile_json else heartbeat_request(*fields)
        out = call_handshake(ids.robot, request, timeout, service=names.handshake)
        if out.response is None:
            return HandshakeReply(answered=False, reason=out.reason)
        r = out.response
        return HandshakeReply(
            answered=True,
            accepted=bool(r.accepted),
            reason=str(r.error),
            plan_table_json=str(r.plan_table_json),
            server_device=str(r.server_device),
        )

    return call
