"""Generic torchvision client (`torchvision_client`): sensor_msgs/Image in, the model's output out.

Any `torchvision:<name>` model (e.g. torchvision:resnet18) through the same client runtime; the frame is
letterboxed to the model input and the first output is published flattened as std_msgs/Float32MultiArray on
`intradp/<robot>/output` (relative to the node's namespace) (for classifiers: the logits), with InferenceStats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rospy
import torch
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from intradp_ros.models.camera_input import sample_profile_input
from intradp_ros.models.letterbox import letterbox
from intradp_ros.ros import names
from intradp_ros.ros.client_node import ClientAdapter, ClientRuntime, run_client
from intradp_ros.ros.kapao_client import check_image
from intradp_ros.ros.node_params import Spec
from intradp_ros.ros.sensor_conversion import image_to_rgb

SPEC: Spec = {
    "expected_size": (list, [], "H W every frame must have (empty: any size is letterboxed)"),
    "max_pixels": (int, 4096 * 4096, "frames with more pixels are dropped"),
}


class TorchvisionAdapter(ClientAdapter):
    input_type = Image
    default_input_topic = "camera/image_raw"  # relative: follows the node's namespace

    def configure(self, settings: dict[str, Any]) -> None:
        if not str(settings["model"]).startswith("torchvision:"):
            raise ValueError(f"torchvision_client needs a torchvision:<name> model, got {settings['model']!r}")
        self.expected = [int(v) for v in settings["expected_size"] or []]
        self.max_pixels = int(settings["max_pixels"])

    def setup(self, runtime: ClientRuntime) -> None:
        self.input_hw = tuple(runtime.replica.example.shape[-2:])
        self.pub = rospy.Publisher(runtime.names.name(names.OUTPUT), Float32MultiArray, queue_size=5)

    def profile_input(self, example: torch.Tensor) -> tuple[torch.Tensor, str]:
        """The bundled photograph letterboxed like a frame (models/camera_input.sample_profile_input)."""
        return sample_profile_input(example)

    def convert(self, msg: Image) -> tuple[torch.Tensor, Any]:
        check_image(msg, self.expected, self.max_pixels)
        x, _info = letterbox(image_to_rgb(msg), self.input_hw)
        return x, None

    def postprocess(self, outputs: Any, ctx: Any) -> torch.Tensor:
        out = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return out.detach().cpu().float().reshape(-1)

    def publish(self, result: torch.Tensor, ctx: Any, header: Any, request_id: int) -> None:
        msg = Float32MultiArray()
        msg.layout.dim = [MultiArrayDimension(label="values", size=int(result.numel()), stride=int(result.numel()))]
        msg.data = result.numpy().tolist()
        self.pub.publish(msg)


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/torchvision_client."""
    return run_client(TorchvisionAdapter(), "torchvision_client", __doc__.split("\n\n")[0], SPEC, argv)
