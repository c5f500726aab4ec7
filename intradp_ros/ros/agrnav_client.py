"""AGRNav client (`agrnav_client`, launch/agrnav_client.launch): occupancy point cloud in, completed voxels out.

Subscribes sensor_msgs/PointCloud2 on `input_topic` (AGRNav's `/sdf_map/occupancy_inflate`), voxelises it
(AGRNav's grid: 0.1 m voxels from (-10, -10, -0.1), 256x256x32; a reduced test grid scales the voxel so the
same area is covered), runs SCONet through the generic client runtime and publishes what AGRNav's planner
reads: std_msgs/Float64MultiArray on `/non_intersection_coordinates` (x0, y0, z0, x1, ... voxel indices of
voxels predicted occupied that were empty), plus a PointCloud2 of the completed voxels' centres on
`/intradp/<robot>/completed_voxels_cloud`, intradp_ros/CompletedVoxels on `/intradp/<robot>/completed_voxels`
and InferenceStats; the completed-voxel cloud carries a `label` field (uint32 class id) for rviz. NaN/Inf
points are skipped like upstream AGRNav (`nan_policy` drop_points, the default: counted, logged throttled);
`nan_policy: drop_frame` drops such clouds whole. Truncated or malformed clouds are logged and dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import rospy
import torch
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Float64MultiArray

from intradp_ros.core.sparse import SparseRows
from intradp_ros.models.profile_inputs import scan_profile_input
from intradp_ros.models.voxels import (
    AGRNAV_GRID,
    CompletedVoxels,
    completed_voxels,
    completed_voxels_from_sparse,
    grid_to_model_input,
    predicted_classes,
    scaled_grid,
    voxelize,
)
from intradp_ros.msg import CompletedVoxels as CompletedVoxelsMsg
from intradp_ros.ros import names
from intradp_ros.ros.client_node import ClientAdapter, ClientRuntime, run_client
from intradp_ros.ros.node_params import Spec
from intradp_ros.ros.sensor_conversion import (
    SensorConversionError,
    completed_voxels_to_msg,
    completed_voxels_to_planner_msg,
    completed_voxels_to_pointcloud2,
    pointcloud2_to_xyz,
)

SPEC: Spec = {
    "voxel_size": (float, 0.0, "voxel edge (m); 0: AGRNav's 0.1 m scaled to cover 25.6 m with the model's grid"),
    "origin": (list, list(AGRNAV_GRID.origin), "grid corner x y z (m)"),
    "nan_policy": (
        str,
        "drop_points",
        "drop_points (skip NaN/Inf points, like AGRNav) or drop_frame (log and drop clouds holding any)",
    ),
    "max_points": (int, 5_000_000, "clouds with more points are dropped"),
    "planner_topic": (str, "non_intersection_coordinates", "AGRNav planner input"),
}


class AgrnavAdapter(ClientAdapter):
    """PointCloud2 -> occupancy grid (uint8, model layout); logits -> completed voxels."""

    input_type = PointCloud2
    default_input_topic = "sdf_map/occupancy_inflate"  # relative: follows the node's namespace

    def configure(self, settings: dict[str, Any]) -> None:
        if settings["nan_policy"] not in ("drop_frame", "drop_points"):
            raise ValueError(f"nan_policy must be drop_frame or drop_points, got {settings['nan_policy']!r}")
        if len(settings["origin"]) != 3:
            raise ValueError(f"origin must be x y z, got {settings['origin']}")
        self.settings = settings
        self.nan_points_skipped = 0

    def model_options(self, settings: dict[str, Any]) -> dict[str, Any]:
        head = settings.get("head") or "completion"
        if head not in ("completion", "logits"):
            raise ValueError(f"head must be 'completion' or 'logits', got {head!r}")
        return {"head": "completion"} if head == "completion" else {}

    def setup(self, runtime: ClientRuntime) -> None:
        s = self.settings
        self.spec = scaled_grid(runtime.replica.example.shape[-3:], s["voxel_size"], s["origin"])
        self.planner_pub = rospy.Publisher(s["planner_topic"], Float64MultiArray, queue_size=2)
        self.cloud_pub = rospy.Publisher(runtime.names.name(names.COMPLETED_VOXELS_CLOUD), PointCloud2, queue_size=2)
        self.voxels_pub = rospy.Publisher(runtime.names.name(names.COMPLETED_VOXELS), CompletedVoxelsMsg, queue_size=2)
        rospy.loginfo(
            "agrnav client: grid %s voxels of %.3f m from %s",
            self.spec.size_xyz,
            self.spec.voxel_size,
            self.spec.origin,
        )

    def profile_input(self, example: torch.Tensor) -> tuple[torch.Tensor, str]:
        """A realistic scan's occupancy in this client's grid (models/sample_scene.scan_occupancy): codec ratios
        on a random 0/1 example never compress (a bit-packed scan does a hundredfold), so the robot's profile
        priced bit-packed + zstd at ratio 1.0 and its plans never sent the grid compressed."""
        s = self.settings
        return scan_profile_input(example, scaled_grid(example.shape[-3:], s["voxel_size"], s["origin"]))

    def convert(self, msg: PointCloud2) -> tuple[torch.Tensor, Any]:
        if int(msg.width) * int(msg.height) > self.settings["max_points"]:
            raise SensorConversionError(f"cloud has {msg.width * msg.height} points > max_points")
        xyz = pointcloud2_to_xyz(msg)
        bad = ~np.isfinite(xyz).all(axis=1)
        if bad.any():
            if self.settings["nan_policy"] == "drop_frame":
                raise SensorConversionError(
                    f"cloud has {int(bad.sum())} NaN/Inf points of {len(xyz)} (nan_policy drop_frame)"
                )
            self.nan_points_skipped += int(bad.sum())
            rospy.loginfo_throttle(
                10.0,
                f"agrnav client: skipped {int(bad.sum())} NaN/Inf points of {len(xyz)} in cloud "
                f"{msg.header.frame_id} ({self.nan_points_skipped} so far; nan_policy drop_points)",
            )
            xyz = xyz[~bad]
        x = grid_to_model_input(voxelize(xyz, self.spec))
        return x, x

    def postprocess(self, outputs: Any, ctx: Any) -> CompletedVoxels:
        if isinstance(outputs, SparseRows):
            return completed_voxels_from_sparse(outputs.cpu(), self.spec)
        logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return completed_voxels(predicted_classes(logits.detach().cpu())[0], ctx, self.spec)

    def publish(self, result: CompletedVoxels, ctx: Any, header: Any, request_id: int) -> None:
        self.planner_pub.publish(completed_voxels_to_planner_msg(result))
        self.voxels_pub.publish(completed_voxels_to_msg(result, header, request_id))
        if self.cloud_pub.get_num_connections() > 0:
            self.cloud_pub.publish(completed_voxels_to_pointcloud2(result, header))


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/agrnav_client."""
    return run_client(AgrnavAdapter(), "agrnav_client", __doc__.split("\n\n")[0], SPEC, argv)
