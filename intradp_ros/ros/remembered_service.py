"""A service proxy that keeps working while the local ROS master is away.

rospy's ServiceProxy asks the master for the service's address (lookupService) on every call. When the robot's
roscore crashes or restarts, every handshake heartbeat therefore failed with "unable to contact master" and the
client sent every frame local for the whole outage, although the server and the direct tile connections were up.
`RememberingServiceProxy` remembers the last address the master gave for each service name (process-wide) and
uses it when the lookup fails; the call itself then says whether the server is really there (a stale address
fails to connect, the same result as before). When the master is back (the bridge re-registers the mirrors), the
lookups succeed again and refresh the address.
"""

from __future__ import annotations

import threading
from typing import Any

import rospy

_known: dict[str, str] = {}
_lock = threading.Lock()
MAX_NAMES = 256


class RememberingServiceProxy(rospy.ServiceProxy):
    """rospy.ServiceProxy whose address lookup falls back to the last address the master gave for the service."""

    def _get_service_uri(self, request: Any) -> str:  # rospy's lookup hook (the only place it asks the master)
        try:
            uri = super()._get_service_uri(request)
        except rospy.ServiceException:
            with _lock:
                uri = _known.get(self.resolved_name)
            if uri is None:
                raise
            self.uri = uri
            return uri
        if uri:
            with _lock:
                if self.resolved_name not in _known and len(_known) >= MAX_NAMES:
                    _known.pop(next(iter(_known)))
                _known[self.resolved_name] = uri
        return str(uri)


def forget(name: str | None = None) -> None:
    """Drop the remembered address of `name` (all when None); for tests."""
    with _lock:
        if name is None:
            _known.clear()
        else:
            _known.pop(name, None)
