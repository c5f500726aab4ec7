"""Every topic and service name of the system, in one place, relative to the node's namespace.

A robot's names are `<base>/<robot>/<leaf>` with base `intradp`, a *relative* name: ROS resolves it against the
node's namespace, so a node started at the root (the default) uses today's `/intradp/<robot>/...`, and the same
node inside `<group ns="r1">` or with ROS_NAMESPACE=r1 uses `/r1/intradp/<robot>/...` without any remapping (and
`<remap>` still applies on top). Nodes that talk to each other (client, server, monitor, probe server) must resolve
to the same names: start them in the same namespace, or give the nodes outside it an absolute base
(`names_base:=/intradp`, a setting of every node).

ROS-free on purpose: the functions build names; rospy resolves them when a publisher, subscriber or service is made
(`resolve` shows what a name becomes, for log lines).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE = "intradp"

# Leaves under <base>/<robot>/ (the message type in brackets)
STATS = "stats"  # client -> anyone: per-frame statistics [InferenceStats]
PLAN = "plan"  # monitor -> client: plan (bucket) switches [PlanSwitch]
PLAN_BOOK = "plan_book"  # client -> monitor: the plan book of the last accepted handshake, latched [String]
BANDWIDTH = "bandwidth"  # monitor -> client: link estimate [BandwidthEstimate]
SERVER_REPORT = "server_report"  # server -> client: arrivals of a request's tiles [ServerReport]
HANDSHAKE = "handshake"  # client -> server service [Handshake]
UP = "up"  # robot -> server tiles [TensorTile]
DOWN = "down"  # server -> robot tiles [TensorTile]
PROBE = "probe"  # monitor -> probe server service [BandwidthProbe]
OUTPUT = "output"  # torchvision client results [Float32MultiArray]
POSES = "poses"  # KAPAO client results [HumanPoses]
ANNOTATED = "annotated"  # KAPAO client: the frame with poses drawn, with `annotate` [Image]
COMPLETED_VOXELS = "completed_voxels"  # AGRNav client results [CompletedVoxels]
COMPLETED_VOXELS_CLOUD = "completed_voxels_cloud"  # AGRNav client results as a cloud [PointCloud2]


def validate_base(base: str) -> str:
    """A base must be a graph name (relative 'intradp', or absolute '/intradp'), not empty or private."""
    text = str(base).strip()
    if not text or text.startswith("~") or text.endswith("/") or "//" in text:
        raise ValueError(f"names base must be a name such as 'intradp' or '/intradp', got {base!r}")
    return text


@dataclass(frozen=True)
class RobotNames:
    """The names of one robot's topics and services: `RobotNames("robot1").stats == "intradp/robot1/stats"`."""

    robot: str
    base: str = DEFAULT_BASE

    def __post_init__(self) -> None:
        validate_base(self.base)
        if not self.robot or "/" in self.robot:
            raise ValueError(f"robot name must be a single name, got {self.robot!r}")

    @property
    def prefix(self) -> str:
        return f"{self.base}/{self.robot}"

    def name(self, leaf: str) -> str:
        """`<base>/<robot>/<leaf>` (a leaf may hold slashes: 'poses/annotated')."""
        return f"{self.prefix}/{leaf.strip('/')}"

    @property
    def stats(self) -> str:
        return self.name(STATS)

    @property
    def plan(self) -> str:
        return self.name(PLAN)

    @property
    def plan_book(self) -> str:
        return self.name(PLAN_BOOK)

    @property
    def bandwidth(self) -> str:
        return self.name(BANDWIDTH)

    @property
    def server_report(self) -> str:
        return self.name(SERVER_REPORT)

    @property
    def handshake(self) -> str:
        return self.name(HANDSHAKE)

    @property
    def up(self) -> str:
        return self.name(UP)

    @property
    def down(self) -> str:
        return self.name(DOWN)

    @property
    def probe(self) -> str:
        return self.name(PROBE)


def resolve(name: str) -> str:
    """What a name becomes for this node (its namespace and remappings applied); the name itself without rospy."""
    try:
        import rospy
    except ImportError:  # pragma: no cover - tooling without ROS
        return name
    return rospy.resolve_name(name)
