#!/usr/bin/env python3
"""Test node for the system rostests (runs on the robot master inside the Testbed).

Publishes frames to a client (KAPAO: camera frames of scikit-image's astronaut picture; AGRNav: clouds of the
seeded procedural scene), optionally bad ones, collects the client's results, InferenceStats and the payload
sizes of the tiles on /intradp/<robot>/up|down, and prints everything as JSON lines on stdout for the test:
  {"kind": "result", "frame": i, "request_id", "t", ...result...}   {"kind": "stats", ...}
  {"kind": "tiles", "request_id", "dir", "bytes"}                    {"kind": "sent", "frame": i, "t"}
  {"kind": "done", ...}
With --compressed (KAPAO) the frames go as JPEG sensor_msgs/CompressedImage on image_transport's
/camera/<robot>/image_raw/compressed (`kapao_jpegs`: the same frames, JPEG quality 90).
Modes: closed loop (`--closed`: send frame i, wait for its result, bounded by --frame-timeout) or a fixed rate
for `--duration` seconds. Every loop is bounded in count and time.
"""

import argparse
import json
import sys
import threading
import time

import numpy as np
import rospy
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from intradp_ros.core.tile import FLAGS_WITHOUT_PAYLOAD
from intradp_ros.msg import CompletedVoxels, HumanPoses, InferenceStats, TensorTile

OUT_LOCK = threading.Lock()


def emit(obj):
    with OUT_LOCK:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def kapao_frames(n, width=640, height=480):
    from intradp_ros.eval.sample_data import camera_frames, load_picture

    return [
        np.ascontiguousarray(f) for f in camera_frames(load_picture("astronaut"), frames=n, width=width, height=height)
    ]


def kapao_jpegs(n):
    """The KAPAO frames as JPEG files (quality 90, Pillow), what a compressed camera topic carries."""
    from intradp_ros.ros.sensor_conversion import rgb_to_compressed

    return [bytes(rgb_to_compressed(f, fmt="jpeg", quality=90).data) for f in kapao_frames(n)]


def jpeg_msg(data, frame_id):
    msg = CompressedImage(format="jpeg", data=data)
    msg.header.frame_id = frame_id
    msg.header.stamp = rospy.Time.now()
    return msg


def cloud_frames(n):
    from intradp_ros.eval.sample_data import SceneConfig
    from intradp_ros.eval.sample_data import cloud_frames as frames

    return list(frames(SceneConfig(frames=n)))


def image_msg(rgb, frame_id, encoding="rgb8"):
    from intradp_ros.ros.sensor_conversion import rgb_to_image

    msg = rgb_to_image(rgb, encoding="rgb8")
    msg.header.frame_id = frame_id
    msg.header.stamp = rospy.Time.now()
    msg.encoding = encoding
    return msg


def cloud_msg(xyz, frame_id):
    from intradp_ros.ros.sensor_conversion import xyz_to_pointcloud2

    msg = xyz_to_pointcloud2(xyz)
    msg.header.frame_id = frame_id
    msg.header.stamp = rospy.Time.now()
    return msg


def encoded_images(rgb):
    """(frame id, Image) of the frame in every supported encoding (mono16 big-endian, the rest as they come)."""
    from intradp_ros.models.image_encodings import SUPPORTED_ENCODINGS, encode_rgb

    out = []
    for enc in SUPPORTED_ENCODINGS:
        big = enc == "mono16"
        data, step = encode_rgb(rgb, enc, is_bigendian=big)
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=enc, is_bigendian=int(big), step=step, data=data)
        msg.header.frame_id = f"enc_{enc}"
        msg.header.stamp = rospy.Time.now()
        out.append((msg.header.frame_id, msg))
    return out


def bad_messages(kind, good):
    """(name, message) of each bad-input case."""
    if kind == "kapao":
        out = [
            ("encoding", image_msg(good, "bad_encoding", "32FC1")),
            ("size", image_msg(np.ascontiguousarray(good[:100, :120]), "bad_size")),
        ]
        trunc = image_msg(good, "bad_truncated")
        trunc.data = trunc.data[: len(trunc.data) // 2]
        out.append(("truncated", trunc))
        return out
    trunc = cloud_msg(good, "bad_truncated")
    trunc.data = trunc.data[: len(trunc.data) // 3]
    nan = good.copy()
    nan[::7] = np.nan
    return [("truncated", trunc), ("nan", cloud_msg(nan, "bad_nan"))]


def send_bad_tiles(ns, own_subscribers):
    """Tiles with a payload that does not match their shape, and with an unknown plan id, on up and down."""
    up = rospy.Publisher(f"{ns}/up", TensorTile, queue_size=10)
    down = rospy.Publisher(f"{ns}/down", TensorTile, queue_size=10)
    deadline = time.monotonic() + 10.0
    need = 1 + own_subscribers  # the peer (server on up, client on down) plus this feeder's own tile listeners
    while (up.get_num_connections() < need or down.get_num_connections() < need) and time.monotonic() < deadline:
        time.sleep(0.05)
    wrong_size = TensorTile(
        robot=ns.split("/")[-1],
        request_id=7,
        plan_id=1,
        node_id=0,
        axis=2,
        row_start=0,
        row_stop=4,
        dtype="uint8",
        shape=[1, 3, 4, 320],
        codec=0,
        flags=0,
        data=bytes(100),
    )
    unknown_plan = TensorTile(
        robot=ns.split("/")[-1],
        request_id=8,
        plan_id=123456,
        node_id=0,
        axis=2,
        row_start=0,
        row_stop=1,
        dtype="uint8",
        shape=[1, 3, 1, 320],
        codec=0,
        flags=0,
        data=bytes(960),
    )
    for name, msg in (("wrong_size", wrong_size), ("unknown_plan", unknown_plan)):
        emit({"kind": "bad_tile_sent", "case": name, "t": time.time()})
        up.publish(msg)
        down.publish(msg)
        time.sleep(0.3)
    up.unregister()
    down.unregister()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("kapao", "agrnav"))
    p.add_argument("--robot", default="robot1")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--closed", action="store_true")
    p.add_argument("--rate", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--frame-timeout", type=float, default=10.0)
    p.add_argument("--bad", action="store_true", help="send the bad-input cases before the good frames")
    p.add_argument(
        "--warm-until-distributed",
        action="store_true",
        help="send warm-up frames (1 Hz) until a frame ran split with the server (bounded by --wait-ready)",
    )
    p.add_argument(
        "--switch-bucket",
        type=float,
        default=0.0,
        help="after the closed-loop frames, publish a PlanSwitch to this bucket (MB/s)",
    )
    p.add_argument("--bad-tiles", action="store_true", help="publish malformed tiles on up and down first")
    p.add_argument("--wait-ready", type=float, default=60.0, help="wait for the client's subscription (s)")
    p.add_argument("--tiles", action="store_true", help="also sum tile payloads per request")
    p.add_argument("--compressed", action="store_true", help="KAPAO: JPEG CompressedImage on <image topic>/compressed")
    p.add_argument(
        "--until-status",
        default="",
        help="only wait (bounded by --wait-ready) until a /diagnostics status of the robot holds this key=value, "
        "emit {kind: status} and stop",
    )
    p.add_argument(
        "--encodings",
        action="store_true",
        help="after the closed-loop frames, send the first frame once in every supported Image encoding (enc_<name>)",
    )
    args = p.parse_args(rospy.myargv()[1:])
    rospy.init_node(f"system_feeder_{args.robot}", anonymous=True)
    ns = f"/intradp/{args.robot}"
    results = {}
    cv = threading.Condition()

    def on_poses(msg):
        poses = [
            {"box": list(p.box), "score": p.score, "kps": [[k.x, k.y, k.confidence] for k in p.keypoints]}
            for p in msg.poses
        ]
        rec = {
            "kind": "result",
            "frame": msg.header.frame_id,
            "request_id": msg.request_id,
            "t": time.time(),
            "poses": poses,
        }
        emit(rec)
        with cv:
            results[msg.header.frame_id] = rec
            cv.notify_all()

    def on_voxels(msg):
        idx = np.frombuffer(np.asarray(msg.indices, dtype=np.uint32).tobytes(), np.uint32)
        cls = np.frombuffer(msg.classes if isinstance(msg.classes, bytes) else bytes(msg.classes), np.uint8)
        rec = {
            "kind": "result",
            "frame": msg.header.frame_id,
            "request_id": msg.request_id,
            "t": time.time(),
            "indices": idx.tolist(),
            "classes": cls.tolist(),
        }
        emit(rec)
        with cv:
            results[msg.header.frame_id] = rec
            cv.notify_all()

    distributed = threading.Event()

    def on_stats(msg):
        if msg.tiles_up > 0 and msg.tiles_down > 0 and not msg.fell_back_local:
            distributed.set()
        emit(
            {
                "kind": "stats",
                "frame": msg.header.frame_id,
                "t": time.time(),
                "request_id": msg.request_id,
                "mode": msg.mode,
                "plan_id": msg.plan_id,
                "plan_name": msg.plan_name,
                "latency_s": msg.latency_s,
                "compute_s": msg.robot_compute_s,
                "transmit_only_s": msg.robot_transmit_only_s,
                "wait_s": msg.robot_wait_s,
                "server_compute_s": msg.server_compute_s,
                "transmit_s": msg.transmit_s,
                "bytes_up": msg.bytes_up,
                "bytes_down": msg.bytes_down,
                "tiles_up": msg.tiles_up,
                "tiles_down": msg.tiles_down,
                "fell_back": msg.fell_back_local,
                "error": msg.error,
                "energy_j": msg.energy_j,
                "dropped_bad": msg.frames_dropped_bad,
                "dropped_stale": msg.frames_dropped_stale,
                "dropped_replaced": msg.frames_dropped_replaced,
            }
        )

    def on_tile(direction):
        def cb(msg):
            # control tiles (start, abort) carry no rows: InferenceStats count payload tiles only
            control = bool(msg.flags & FLAGS_WITHOUT_PAYLOAD)
            emit(
                {
                    "kind": "tiles",
                    "request_id": msg.request_id,
                    "dir": direction,
                    "bytes": len(msg.data),
                    "control": control,
                }
            )

        return cb

    if args.kind == "kapao":
        rospy.Subscriber(f"{ns}/poses", HumanPoses, on_poses, queue_size=50)
        if args.compressed:
            pub = rospy.Publisher(f"/camera/{args.robot}/image_raw/compressed", CompressedImage, queue_size=1)
            frames = kapao_jpegs(args.frames)
            make = jpeg_msg
        else:
            pub = rospy.Publisher(f"/camera/{args.robot}/image_raw", Image, queue_size=1)
            frames = kapao_frames(args.frames)
            make = image_msg
    else:
        rospy.Subscriber(f"{ns}/completed_voxels", CompletedVoxels, on_voxels, queue_size=50)
        pub = rospy.Publisher(f"/sdf_map/{args.robot}/occupancy_inflate", PointCloud2, queue_size=1)
        frames = cloud_frames(args.frames)
        make = cloud_msg
    rospy.Subscriber(f"{ns}/stats", InferenceStats, on_stats, queue_size=100)
    statuses = {}

    def on_diagnostics(msg):
        for st in msg.status:
            statuses[st.name] = {
                "kind": "diagnostics",
                "name": st.name,
                "hardware_id": st.hardware_id,
                "level": int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level),
                "message": st.message,
                "values": {kv.key: kv.value for kv in st.values},
            }

    from diagnostic_msgs.msg import DiagnosticArray

    rospy.Subscriber("/diagnostics", DiagnosticArray, on_diagnostics, queue_size=50)
    if args.until_status:
        key, _, want = args.until_status.partition("=")

        def matching():
            return [
                st
                for st in list(statuses.values())
                if st["hardware_id"] == args.robot and st["values"].get(key) == want
            ]

        deadline = time.monotonic() + args.wait_ready
        while not matching() and time.monotonic() < deadline and not rospy.is_shutdown():
            time.sleep(0.1)
        found = matching()
        emit({"kind": "status", "t": time.time(), "found": bool(found), "status": found[0] if found else None})
        emit({"kind": "done", "results": 0})
        return 0
    if args.tiles:
        rospy.Subscriber(f"{ns}/up", TensorTile, on_tile("up"), queue_size=1000, buff_size=64 << 20)
        rospy.Subscriber(f"{ns}/down", TensorTile, on_tile("down"), queue_size=1000, buff_size=64 << 20)
    deadline = time.monotonic() + args.wait_ready
    while pub.get_num_connections() == 0 and time.monotonic() < deadline and not rospy.is_shutdown():
        time.sleep(0.05)
    if pub.get_num_connections() == 0:
        emit({"kind": "error", "error": "client never subscribed"})
        return 1
    emit({"kind": "ready", "t": time.time()})
    if args.bad:
        for name, msg in bad_messages(args.kind, frames[0]):
            emit({"kind": "bad_sent", "case": name, "t": time.time()})
            pub.publish(msg)
            time.sleep(0.5)
    if args.warm_until_distributed:
        deadline = time.monotonic() + args.wait_ready
        i = 0
        last = None
        while not distributed.is_set() and time.monotonic() < deadline and not rospy.is_shutdown():
            last = f"w{i % len(frames)}_{i}"
            pub.publish(make(frames[i % len(frames)], last))
            i += 1
            distributed.wait(1.0)
        with cv:  # let the client finish the last warm-up frame, so the first real frame is not stale
            cv.wait_for(lambda: last in results or rospy.is_shutdown(), timeout=args.frame_timeout)
        emit({"kind": "warm", "distributed": distributed.is_set(), "frames": i, "t": time.time()})
    if args.closed:
        for i, f in enumerate(frames):
            fid = f"f{i}"
            emit({"kind": "sent", "frame": fid, "t": time.time()})
            pub.publish(make(f, fid))
            with cv:
                cv.wait_for(lambda fid=fid: fid in results or rospy.is_shutdown(), timeout=args.frame_timeout)
            if fid not in results:
                emit({"kind": "timeout", "frame": fid})
        if args.switch_bucket > 0:  # the client applies the latest PlanSwitch from the next frame on
            from intradp_ros.msg import PlanSwitch

            plan_pub = rospy.Publisher(f"{ns}/plan", PlanSwitch, queue_size=1, latch=True)
            plan_pub.publish(PlanSwitch(robot=args.robot, mode="intradp", bucket_mbyte_per_s=args.switch_bucket))
            emit({"kind": "switch_sent", "bucket": args.switch_bucket, "t": time.time()})
            time.sleep(1.0)
        if args.bad_tiles:  # after the frames, so the server's session (and its subscription) exists
            send_bad_tiles(ns, 1 if args.tiles else 0)
            for i in range(2):  # the nodes keep working after them
                fid = f"g{i}_after"
                emit({"kind": "sent", "frame": fid, "t": time.time()})
                pub.publish(make(frames[i], fid))
                with cv:
                    cv.wait_for(lambda fid=fid: fid in results or rospy.is_shutdown(), timeout=args.frame_timeout)
        if args.encodings and args.kind == "kapao":
            for fid, msg in encoded_images(frames[0]):
                emit({"kind": "sent", "frame": fid, "t": time.time()})
                pub.publish(msg)
                with cv:
                    cv.wait_for(lambda fid=fid: fid in results or rospy.is_shutdown(), timeout=args.frame_timeout)
    else:
        end = time.monotonic() + args.duration
        i = 0
        while time.monotonic() < end and not rospy.is_shutdown():
            fid = f"f{i % len(frames)}_{i}"
            emit({"kind": "sent", "frame": fid, "t": time.time()})
            pub.publish(make(frames[i % len(frames)], fid))
            i += 1
            time.sleep(1.0 / args.rate)
    time.sleep(2.5)  # late stats, one more diagnostics period
    for st in list(statuses.values()):
        emit(st)
    emit({"kind": "done", "results": len(results)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
