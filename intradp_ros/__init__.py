"""intradp_ros: Intra-DP collaborative inference (robot + GPU server) for ROS 1.

The three-line API::

    from intradp_ros import IntraDP
    idp = IntraDP(server="host")
    idp.start_client(model)      # from now on model(x) runs distributed

Importing the package never imports rospy or torch; the API is loaded on first use.
"""

from pkgutil import extend_path
from typing import Any

# The generated message/service modules live in the catkin devel space (intradp_ros.msg, .srv); let them
# join this package even when the source tree is found first on sys.path (e.g. running from the repo root).
__path__ = extend_path(__path__, __name__)

__all__ = ["IntraDP"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "IntraDP":
        from intradp_ros.api import IntraDP

        return IntraDP
    raise AttributeError(f"module 'intradp_ros' has no attribute {name!r}")
