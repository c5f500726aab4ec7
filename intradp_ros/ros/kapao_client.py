"""KAPAO client (`kapao_client`, launch/kapao_client.launch): sensor_msgs/Image in, human poses out.

Subscribes `input_topic` (rgb8, bgr8 or mono8), letterboxes to the model input (numpy/torch views, no
per-pixel loops), runs the generic client runtime (intradp_ros.ros.client_node), post-processes the
detections (NMS, keypoint fusion, original-frame coordinates) and publishes intradp_ros/HumanPoses on
`/intradp/<robot>/poses`, InferenceStats on `/intradp/<robot>/stats` and, with `annotate`, the frame with
boxes and keypoints drawn on `/intradp/<robot>/annotated`. Frames with an unsupported encoding, a corrupt
buffer or (with `expected_size`) another size are logged and dropped.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import rospy
import torch
from sensor_msgs.msg import Image

from intradp_ros.core.sparse import SparseRows
from intradp_ros.models.kapao_postprocess import KapaoThresholds, Pose, poses_from_candidate_sets, poses_from_detections
from intradp_ros.models.letterbox import LetterboxInfo
from intradp_ros.msg import HumanPoses
from intradp_ros.ros.client_node import ClientAdapter, ClientRuntime, run_client
from intradp_ros.ros.node_params import Spec
from intradp_ros.ros.sensor_conversion import (
    SensorConversionError,
    image_to_kapao_input,
    image_to_rgb,
    poses_to_msg,
    rgb_to_image,
)

SPEC: Spec = {
    "conf": (float, KapaoThresholds.conf, "person confidence threshold"),
    "iou": (float, KapaoThresholds.iou, "person NMS IoU"),
    "conf_kp": (float, KapaoThresholds.conf_kp, "keypoint-object confidence threshold"),
    "iou_kp": (float, KapaoThresholds.iou_kp, "keypoint-object NMS IoU"),
    "expected_size": (list, [], "H W every frame must have (empty: any size is letterboxed)"),
    "max_pixels": (int, 4096 * 4096, "frames with more pixels are dropped"),
    "annotate": (bool, False, "publish the frame with poses drawn on /intradp/<robot>/annotated"),
}

SKELETON = [(5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (11, 12), (5, 11), (6, 12), (11, 13), (13, 15), (12, 14), (14, 16)]


def kapao_head_options(head: str, thr: KapaoThresholds) -> Dict[str, Any]:
    """Model options for a KAPAO head: the candidate head filters at the thresholds' candidate confidence (part
    of the model id, so the server's replica filters the same way; left out when it is the default)."""
    if head == "detections":
        return {}  # upstream outputs: the registry's default head
    if head != "candidates":
        raise ValueError(f"head must be 'candidates' or 'detections', got {head!r}")
    opts: Dict[str, Any] = {"head": "candidates"}
    if thr.candidate_conf != KapaoThresholds().candidate_conf:
        opts["candidate_conf"] = thr.candidate_conf
    return opts


def check_image(msg: Image, expected_hw: Sequence[int], max_pixels: int) -> None:
    """Raise SensorConversionError for a frame of the wrong or an absurd size."""
    h, w = int(msg.height), int(msg.width)
    if h * w > max_pixels:
        raise SensorConversionError(f"image {w}x{h} exceeds max_pixels={max_pixels}")
    if expected_hw and (h, w) != (int(expected_hw[0]), int(expected_hw[1])):
        raise SensorConversionError(f"image is {w}x{h}, expected {int(expected_hw[1])}x{int(expected_hw[0])}")


def draw_poses(rgb: np.ndarray, poses: Sequence[Pose]) -> np.ndarray:
    """A copy of the frame with boxes (green), keypoints (red squares) and limbs (yellow points) drawn."""
    img = np.array(rgb, dtype=np.uint8, copy=True)
    h, w = img.shape[:2]

    def box(x1: float, y1: float, x2: float, y2: float, color: Tuple[int, int, int], t: int = 2) -> None:
        x1, x2 = sorted((int(np.clip(x1, 0, w - 1)), int(np.clip(x2, 0, w - 1))))
        y1, y2 = sorted((int(np.clip(y1, 0, h - 1)), int(np.clip(y2, 0, h - 1))))
        img[y1 : y1 + t, x1 : x2 + 1] = color
        img[max(y2 - t + 1, 0) : y2 + 1, x1 : x2 + 1] = color
        img[y1 : y2 + 1, x1 : x1 + t] = color
        img[y1 : y2 + 1, max(x2 - t + 1, 0) : x2 + 1] = color

    for p in poses:
        box(*[float(v) for v in p.box], color=(0, 255, 0))
        kp = np.asarray(p.keypoints)
        for a, b in SKELETON:
            xs = np.linspace(kp[a, 0], kp[b, 0], 20)
            ys = np.linspace(kp[a, 1], kp[b, 1], 20)
            ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
            img[ys[ok].astype(int), xs[ok].astype(int)] = (255, 255, 0)
        for x, y, _c in kp:
            box(x - 2, y - 2, x + 2, y + 2, color=(255, 0, 0), t=2)
    return img


class KapaoAdapter(ClientAdapter):
    """Image -> letterboxed uint8 input; detections -> poses."""

    input_type = Image
    default_input_topic = "camera/image_raw"  # relative: follows the node's namespace

    def configure(self, settings: Dict[str, Any]) -> None:
        self.thr = KapaoThresholds(
            conf=settings["conf"], iou=settings["iou"], conf_kp=settings["conf_kp"], iou_kp=settings["iou_kp"]
        )
        self.expected = [int(v) for v in settings["expected_size"] or []]
        if self.expected and len(self.expected) != 2:
            raise ValueError(f"expected_size must be H W, got {self.expected}")
        self.max_pixels = int(settings["max_pixels"])
        self.annotate = bool(settings["annotate"])

    def model_options(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        return kapao_head_options(settings.get("head") or "candidates", self.thr)

    def setup(self, runtime: ClientRuntime) -> None:
        ns = runtime.names.prefix
        self.input_hw = tuple(runtime.replica.example.shape[-2:])
        self.poses_pub = rospy.Publisher(f"{ns}/poses", HumanPoses, queue_size=5)
        self.image_pub = rospy.Publisher(f"{ns}/annotated", Image, queue_size=2) if self.annotate else None

    def convert(self, msg: Image) -> Tuple[torch.Tensor, Any]:
        check_image(msg, self.expected, self.max_pixels)
        x, info = image_to_kapao_input(msg, self.input_hw)
        return x, (info, msg)

    def postprocess(self, outputs: Any, ctx: Any) -> List[Pose]:
        info: LetterboxInfo = ctx[0]
        if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], SparseRows):
            return poses_from_candidate_sets([o.cpu() for o in outputs], info, self.thr)
        det = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return poses_from_detections(det.detach().cpu().float(), info, self.thr)

    def publish(self, result: List[Pose], ctx: Any, header: Any, request_id: int) -> None:
        self.poses_pub.publish(poses_to_msg(result, header, request_id))
        if self.image_pub is not None and self.image_pub.get_num_connections() > 0:
            self.image_pub.publish(rgb_to_image(draw_poses(image_to_rgb(ctx[1]), result), header))


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/kapao_client."""
    return run_client(KapaoAdapter(), "kapao_client", __doc__.split("\n\n")[0], SPEC, argv)
