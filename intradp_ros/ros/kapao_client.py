"""KAPAO client (`kapao_client`, launch/kapao_client.launch): sensor_msgs/Image or CompressedImage in, poses out.

Subscribes `input_topic` (Image: rgb8, bgr8 or mono8) or, with `image_transport: compressed`, image_transport's
`<input_topic>/compressed` (CompressedImage: JPEG or PNG), letterboxes to the model input (numpy/torch views, no
per-pixel loops), runs the generic client runtime (intradp_ros.ros.client_node), post-processes the
detections (NMS, keypoint fusion, original-frame coordinates) and publishes intradp_ros/HumanPoses on
`/intradp/<robot>/poses`, InferenceStats on `/intradp/<robot>/stats` and, with `annotate`, the frame with
boxes and keypoints drawn on `/intradp/<robot>/annotated`. Frames with an unsupported encoding, a corrupt
buffer or (with `expected_size`) another size are logged and dropped.

Camera passthrough (compressed input, `camera_passthrough` on): when a plan sends the whole input to the server,
the camera's own JPEG/PNG bytes go up instead of the letterboxed pixels (docs/wire.md). The first frame is
probed first: the server decodes it and compares the robot's hash of the model input; only after an identical
decode are bytes passed through. A mismatch (other decoder) turns passthrough off with one warning: the client
then sends pixels. Until the probe is answered frames go as pixels too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import rospy
import torch
from sensor_msgs.msg import CompressedImage, Image

from intradp_ros.core.codec_choice import CAMERA_MAX_RATIO, camera_profile
from intradp_ros.core.codecs.profile import CodecProfile
from intradp_ros.core.sparse import SparseRows
from intradp_ros.core.tile import CODEC_CAMERA
from intradp_ros.models.camera_input import (
    camera_frame_of,
    camera_model_input,
    drop_camera_frame,
    sample_profile_input,
)
from intradp_ros.models.kapao_postprocess import KapaoThresholds, Pose, poses_from_candidate_sets, poses_from_detections
from intradp_ros.models.letterbox import LetterboxInfo
from intradp_ros.msg import HumanPoses
from intradp_ros.ros import names
from intradp_ros.ros.client_node import ClientAdapter, ClientRuntime, run_client
from intradp_ros.ros.handshake import probe_camera
from intradp_ros.ros.node_params import Spec
from intradp_ros.ros.sensor_conversion import (
    SensorConversionError,
    compressed_to_kapao_input,
    compressed_topic,
    image_to_kapao_input,
    image_to_rgb,
    poses_to_msg,
    rgb_to_compressed,
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
    "image_transport": (str, "raw", "raw: Image on input_topic; compressed: CompressedImage on input_topic/compressed"),
    "camera_passthrough": (
        bool,
        True,
        "compressed input: send the camera's JPEG/PNG bytes when a plan sends the input",
    ),
    "camera_probe_period": (float, 5.0, "seconds between camera probes while the server has not answered one"),
    "jpeg_reencode_quality": (
        int,
        0,
        "LOSSY, opt-in: raw Image frames are JPEG-encoded at this quality (0: off, exact)",
    ),
}
IMAGE_TRANSPORTS = ("raw", "compressed")

SKELETON = [(5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (11, 12), (5, 11), (6, 12), (11, 13), (13, 15), (12, 14), (14, 16)]


def kapao_head_options(head: str, thr: KapaoThresholds) -> dict[str, Any]:
    """Model options for a KAPAO head: the candidate head filters at the thresholds' candidate confidence (part
    of the model id, so the server's replica filters the same way; left out when it is the default)."""
    if head == "detections":
        return {}  # upstream outputs: the registry's default head
    if head != "candidates":
        raise ValueError(f"head must be 'candidates' or 'detections', got {head!r}")
    opts: dict[str, Any] = {"head": "candidates"}
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

    def box(x1: float, y1: float, x2: float, y2: float, color: tuple[int, int, int], t: int = 2) -> None:
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


class CameraPassthrough:
    """Whether camera bytes may replace pixels: unknown until the server decoded a probe frame identically."""

    RATIO_DRIFT = 1.25  # the ratio sent moves only when the observed mean left [sent / this, sent x this]

    def __init__(self, enabled: bool, probe_period: float) -> None:
        self.state = "unknown" if enabled else "off"
        self.probe_period = probe_period
        self._last_probe = -1e9
        self._lock = threading.Lock()
        self.keys: Any = None  # the runtime's ClientKeys: an authenticated server wants probes proven like heartbeats
        self.frames = 0  # camera frames seen
        self.mean_ratio = 0.0  # running mean of camera payload bytes / model-input pixel bytes
        self.sent_ratio: float | None = None  # the ratio the profile carries (a change re-handshakes)
        self.sent_frames = 0  # frames its mean was over (fixed with it: the entry must not change per frame)

    def observe(self, frame: Any, x: torch.Tensor) -> None:
        """Count one camera frame's payload against the pixels it stands for (the cost model's ratio)."""
        pixels = x.numel() * x.element_size()
        if pixels <= 0:
            return
        with self._lock:
            self.frames += 1
            self.mean_ratio += (len(frame.payload()) / pixels - self.mean_ratio) / self.frames

    def codec_profile(self) -> CodecProfile | None:
        """The robot's camera entry once passthrough is verified: the observed ratio, ~0 encode (the file is
        already there). The ratio sent follows the running mean only when it drifts past RATIO_DRIFT, so the
        plan book is not solved again for every frame."""
        with self._lock:
            if self.state != "on" or self.frames == 0 or not 0 < self.mean_ratio <= CAMERA_MAX_RATIO:
                return None
            sent = self.sent_ratio
            if sent is None or not sent / self.RATIO_DRIFT <= self.mean_ratio <= sent * self.RATIO_DRIFT:
                self.sent_ratio = sent = round(self.mean_ratio, 4)
                self.sent_frames = self.frames
            return camera_profile("robot", max(sent, 1e-4), samples=self.sent_frames)

    def gate(self, x: torch.Tensor, robot: str, ids: Sequence[str], timeout: float) -> torch.Tensor:
        """`x` keeps its camera bytes only once passthrough is verified; probes the server when due."""
        frame = camera_frame_of(x)
        if frame is not None:
            self.observe(frame, x)
        if frame is None or self.state == "off":
            return drop_camera_frame(x)
        if self.state == "on":
            return x
        now = time.monotonic()
        with self._lock:
            due = now - self._last_probe >= self.probe_period
            if due:
                self._last_probe = now
        if due:
            args = (robot, ids, frame.payload(), timeout) + ((self.keys,) if self.keys is not None else ())
            ok, why = probe_camera(*args)
            if ok:
                self.state = "on"
                rospy.loginfo("client %s: camera passthrough on (the server decodes frames identically)", robot)
                return x
            if ok is False:
                self.state = "off"
                rospy.logwarn("client %s: camera passthrough off, sending pixels: %s", robot, why)
            else:
                rospy.logdebug("client %s: camera probe unanswered (%s); sending pixels meanwhile", robot, why)
        return drop_camera_frame(x)


class KapaoAdapter(ClientAdapter):
    """Image or CompressedImage -> letterboxed uint8 input; detections -> poses."""

    input_type: Any = Image
    default_input_topic = "camera/image_raw"  # relative: follows the node's namespace

    def configure(self, settings: dict[str, Any]) -> None:
        self.thr = KapaoThresholds(
            conf=settings["conf"], iou=settings["iou"], conf_kp=settings["conf_kp"], iou_kp=settings["iou_kp"]
        )
        self.expected = [int(v) for v in settings["expected_size"] or []]
        if self.expected and len(self.expected) != 2:
            raise ValueError(f"expected_size must be H W, got {self.expected}")
        self.max_pixels = int(settings["max_pixels"])
        self.annotate = bool(settings["annotate"])
        transport = str(settings.get("image_transport") or "raw")
        if transport not in IMAGE_TRANSPORTS:
            raise ValueError(f"image_transport must be one of {', '.join(IMAGE_TRANSPORTS)}, got {transport!r}")
        self.compressed = transport == "compressed"
        if self.compressed:  # image_transport's convention: the runtime subscribes <input_topic>/compressed
            self.input_type = CompressedImage
            settings["input_topic"] = compressed_topic(settings["input_topic"])
        self.reencode = int(settings.get("jpeg_reencode_quality", 0) or 0)
        if not 0 <= self.reencode <= 100:
            raise ValueError(f"jpeg_reencode_quality must be 0 (off) or 1..100, got {self.reencode}")
        if self.reencode and self.compressed:
            raise ValueError("jpeg_reencode_quality applies to raw Image input, not to image_transport compressed")
        if self.reencode:
            rospy.logwarn(
                "kapao_client: LOSSY mode: frames are JPEG re-encoded at quality %d; results are not exact "
                "(measured pixel error logged with the first frame; output deviation: bench_lossy, docs/wire.md)",
                self.reencode,
            )
        self._reported_reencode = False
        self.passthrough = CameraPassthrough(
            (self.compressed or self.reencode > 0) and bool(settings.get("camera_passthrough", True)),
            float(settings.get("camera_probe_period", 5.0)),
        )

    def model_options(self, settings: dict[str, Any]) -> dict[str, Any]:
        return kapao_head_options(settings.get("head") or "candidates", self.thr)

    def codec_profiles(self) -> list[CodecProfile]:
        """The verified camera passthrough as a codec the plan book prices (core/codec_choice.py)."""
        entry = self.passthrough.codec_profile()
        return [entry] if entry is not None else []

    def profile_input(self, example: torch.Tensor) -> tuple[torch.Tensor, str]:
        """A real picture (the bundled sample photograph) letterboxed like a frame: codec ratios on a camera-like
        input, not on the random example, which never compresses."""
        return sample_profile_input(example)

    def setup(self, runtime: ClientRuntime) -> None:
        self.input_hw = tuple(runtime.replica.example.shape[-2:])
        self.poses_pub = rospy.Publisher(runtime.names.name(names.POSES), HumanPoses, queue_size=5)
        self.image_pub = (
            rospy.Publisher(runtime.names.name(names.ANNOTATED), Image, queue_size=2) if self.annotate else None
        )
        r = runtime.replica
        self.robot = runtime.robot
        self.ids = (runtime.robot, r.model_id, r.weights_fingerprint, r.graph_fingerprint)
        self.probe_timeout = max(2.0, float(runtime.s.get("heartbeat_timeout", 1.0)))  # a decode takes ~50 ms
        keys = getattr(runtime, "keys", None)
        self.passthrough.keys = keys if keys is not None and keys.enabled else None
        if self.passthrough.state != "off":  # [wire] the sender may pick CODEC_CAMERA for a tagged whole input
            runtime.half.sender.codecs = runtime.half.sender.codecs | {CODEC_CAMERA}

    def convert(self, msg: Any) -> tuple[torch.Tensor, Any]:
        if isinstance(msg, CompressedImage):
            x, info, rgb = compressed_to_kapao_input(msg, self.input_hw, self.max_pixels)
            h, w = rgb.shape[:2]
            if self.expected and (h, w) != (self.expected[0], self.expected[1]):
                raise SensorConversionError(f"image is {w}x{h}, expected {self.expected[1]}x{self.expected[0]}")
            return self.passthrough.gate(x, self.robot, self.ids, self.probe_timeout), (info, rgb)
        check_image(msg, self.expected, self.max_pixels)
        if self.reencode:
            return self._reencoded(msg)
        x, info = image_to_kapao_input(msg, self.input_hw)
        return x, (info, msg)

    def _reencoded(self, msg: Image) -> tuple[torch.Tensor, Any]:
        """The opt-in lossy mode: the frame as a JPEG of `jpeg_reencode_quality`, decoded like a camera's."""
        rgb = image_to_rgb(msg)
        jpeg = bytes(rgb_to_compressed(rgb, fmt="jpeg", quality=self.reencode).data)
        x, info, decoded = camera_model_input(jpeg, self.input_hw, self.max_pixels)
        if not self._reported_reencode:
            self._reported_reencode = True
            err = np.abs(decoded.astype(np.int16) - rgb.astype(np.int16))
            rospy.logwarn(
                "kapao_client: JPEG re-encode q%d on the first frame: %d bytes (%.3fx raw), mean |pixel error| "
                "%.2f, max %d",
                self.reencode,
                len(jpeg),
                len(jpeg) / rgb.nbytes,
                float(err.mean()),
                int(err.max()),
            )
        return self.passthrough.gate(x, self.robot, self.ids, self.probe_timeout), (info, decoded)

    def postprocess(self, outputs: Any, ctx: Any) -> list[Pose]:
        info: LetterboxInfo = ctx[0]
        if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], SparseRows):
            return poses_from_candidate_sets([o.cpu() for o in outputs], info, self.thr)
        det = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return poses_from_detections(det.detach().cpu().float(), info, self.thr)

    def publish(self, result: list[Pose], ctx: Any, header: Any, request_id: int) -> None:
        self.poses_pub.publish(poses_to_msg(result, header, request_id))
        if self.image_pub is not None and self.image_pub.get_num_connections() > 0:
            frame: Any | None = ctx[1]
            rgb = frame if isinstance(frame, np.ndarray) else image_to_rgb(frame)
            self.image_pub.publish(rgb_to_image(draw_poses(rgb, result), header))


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/kapao_client."""
    return run_client(KapaoAdapter(), "kapao_client", __doc__.split("\n\n")[0], SPEC, argv)
