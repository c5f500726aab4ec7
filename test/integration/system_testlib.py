"""Shared pieces of the system rostests (kapao_system, agrnav_system, faults): start the server, clients and
feeders inside a Testbed, collect their JSON lines, and check results against local inference on the same
frames and InferenceStats for consistency. Every wait is bounded; the Testbed removes every process it started.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FEEDER = HERE / "system_feeder.py"

# Random weights (no checkpoint is downloaded): seed 6 is one where KAPAO's person class wins in some cells, so
# the thresholds below give ~20 poses per frame and the comparison with local inference is not empty.
KAPAO = {
    "model": "kapao_s6",
    "size_opt": ["--input-size", "256,320", "--seed", "6"],
    "config": {"name": "kapao_s6", "input_size": [256, 320], "seed": 6},
}
SCONET = {
    "model": "sconet",
    "size_opt": ["--grid-xzy", "64,32,64", "--seed", "0"],
    "config": {"name": "sconet", "grid_xzy": [64, 32, 64], "seed": 0},
}
KAPAO_THR = {"conf": 0.0004, "conf_kp": 0.0004}
# What the clients actually run: the sparse deployment heads (the server builds them from the configs above).
SERVED_HEADS = {"kapao": {"head": "candidates", "candidate_conf": 0.0004}, "sconet": {"head": "completion"}}


def served_graph(kind, model):
    """The graph of the replica the client runs (its plan book is made for this graph, not the reference's)."""
    from intradp_ros.core.session import ModelConfig
    from intradp_ros.models.replica import load_replica

    return load_replica(ModelConfig.from_dict({**model["config"], **SERVED_HEADS[kind]})).graph


def skip_reason():
    """Why the system tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root: the Testbed builds network namespaces and tc qdiscs"
    return None


class SystemTestCase(unittest.TestCase):
    """A rostest suite on one System: skipped without root, `start(system)` runs the scenario once, and the
    System is torn down whatever happens. `setup_began` is when setUpClass began (monotonic clock)."""

    tag = "system"
    system = None
    setup_began = 0.0

    @classmethod
    def setUpClass(cls):
        why = skip_reason()
        if why:
            raise unittest.SkipTest(why)
        cls.setup_began = time.monotonic()
        cls.system = System(cls.tag).up()
        try:
            cls.start(cls.system)
        except BaseException:
            cls.system.down()
            raise

    @classmethod
    def start(cls, system):
        raise NotImplementedError

    @classmethod
    def tearDownClass(cls):
        if cls.system is not None:
            cls.system.down()


class Lines:
    """JSON lines of a process, collected by a thread (bounded by the process's lifetime)."""

    def __init__(self, proc, log_path=None):
        self.items = []
        self._lock = threading.Lock()
        self._log = open(log_path, "w") if log_path else None
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc):
        for line in proc.stdout:
            if self._log:
                self._log.write(line)
                self._log.flush()
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                with self._lock:
                    self.items.append(obj)

    def of(self, kind):
        with self._lock:
            return [r for r in self.items if r.get("kind") == kind]

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return predicate()


class System:
    """A Testbed with masters, bridge, server and clients; `down()` removes everything."""

    def __init__(self, name, rate_mbit=400.0):
        from intradp_ros.eval.testbed import Testbed

        self.tb = Testbed(rate_mbit=rate_mbit, name=name)
        self.cache = tempfile.mkdtemp(prefix=f"intradp_{name}_")
        self.logdir = Path(os.environ.get("INTRADP_TEST_LOGS", self.cache))
        self.env = {"INTRADP_CACHE": self.cache, "PYTHONUNBUFFERED": "1"}
        self.procs = {}

    def log(self, name):
        return open(self.logdir / f"{name}.log", "w")

    def up(self):
        from intradp_ros.eval.nodes import start_bridge

        self.tb.start_masters()
        self.bridge = start_bridge(self.tb, "robot", log=self.log("bridge"))
        return self

    def start_bridge(self):
        from intradp_ros.eval.nodes import start_bridge

        self.bridge = start_bridge(self.tb, "robot", log=self.log("bridge2"))

    def start_server(self, models, robots, extra=(), tag="server"):
        from intradp_ros.eval.nodes import script_argv

        argv = script_argv(
            "intradp_server",
            "--robots",
            ",".join(robots),
            "--models",
            json.dumps([m["config"] for m in models]),
            "--server-speedup",
            "4",
            "--grid",
            "1,5,20,50",
            "--maxiter",
            "4",
            "--popsize",
            "8",
            "--request-timeout",
            "5",
            "--profile-repeats",
            "1",
            *extra,
        )
        p = self.tb.spawn(
            "server", argv, env=self.env, stdout=self.log(tag), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.procs[tag] = p
        return p

    def start_client(self, kind, robot, model, extra=(), tag=None):
        from intradp_ros.eval.nodes import script_argv

        script = "kapao_client" if kind == "kapao" else "agrnav_client"
        opts = ["--conf", str(KAPAO_THR["conf"]), "--conf-kp", str(KAPAO_THR["conf_kp"])] if kind == "kapao" else []
        if kind == "kapao":
            opts += ["--input-topic", f"/camera/{robot}/image_raw"]
        else:
            opts += ["--input-topic", f"/sdf_map/{robot}/occupancy_inflate"]
        argv = script_argv(
            script,
            "--robot",
            robot,
            "--model",
            model["model"],
            *model["size_opt"],
            "--initial-bandwidth",
            "50",
            "--profile-repeats",
            "1",
            *opts,
            *extra,
            f"__name:={script}_{robot}",
        )
        tag = tag or f"client_{robot}"
        p = self.tb.spawn(
            "robot", argv, env=self.env, stdout=self.log(tag), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.procs[tag] = p
        return p

    def start_feeder(self, kind, robot, args, tag=None):
        argv = [sys.executable, str(FEEDER), kind, "--robot", robot, *args]
        tag = tag or f"feeder_{robot}"
        p = self.tb.spawn(
            "robot",
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self.log(tag + "_err"),
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.procs[tag] = p
        return Lines(p, self.logdir / f"{tag}.jsonl")

    def feed_phase(self, kind, robot, args, phase, timeout=150):
        """One feeder phase on `robot`'s client topic, waited for (bounded): its lines."""
        lines = self.start_feeder(kind, robot, args, tag=f"feeder_{phase}")
        if not lines.wait_for(lambda: lines.of("done") or lines.of("error"), timeout=timeout):
            raise AssertionError(f"feeder phase {phase} did not finish within {timeout} s")
        return lines

    def down(self):
        self.tb.down()


# ------------------------------------------------------------------------------------------------ references
class LocalReference:
    """Local forward + post-processing of the feeder's frames, as the client would do without a server."""

    def __init__(self, kind, model, frames, compressed=False):
        import torch

        from intradp_ros.core.session import ModelConfig
        from intradp_ros.models.replica import load_replica

        torch.set_num_threads(1)
        self.kind = kind
        self.rep = load_replica(ModelConfig.from_dict(model["config"]))
        sys.path.insert(0, str(HERE))
        import system_feeder

        self.frames = system_feeder.kapao_frames(frames) if kind == "kapao" else system_feeder.cloud_frames(frames)
        if compressed:  # what the robot sees of a JPEG camera: the decoded files, not the frames before encoding
            from intradp_ros.core.codecs.camera import decode_camera_bytes

            self.frames = [decode_camera_bytes(b, 1 << 26) for b in system_feeder.kapao_jpegs(frames)]
        self._cache = {}

    def result(self, index):
        if index in self._cache:
            return self._cache[index]
        import torch

        if self.kind == "kapao":
            from intradp_ros.models.kapao_postprocess import KapaoThresholds, poses_from_detections
            from intradp_ros.models.letterbox import letterbox

            x, info = letterbox(self.frames[index], tuple(self.rep.example.shape[-2:]))
            det = self.rep.forward_local(x)[0]
            thr = KapaoThresholds(conf=KAPAO_THR["conf"], conf_kp=KAPAO_THR["conf_kp"])
            out = ({"poses": poses_from_detections(det, info, thr)}, det)
        else:
            from intradp_ros.models.voxels import completed_voxels, grid_to_model_input, scaled_grid, voxelize

            spec = scaled_grid(self.rep.example.shape[-3:])
            x = grid_to_model_input(voxelize(self.frames[index], spec))
            logits = self.rep.forward_local(x)
            cv = completed_voxels(logits.argmax(1).to(torch.uint8)[0], x, spec)
            out = ({"indices": cv.indices, "classes": cv.classes, "x": x}, logits)
        self._cache[index] = out
        return out


def distributed(s):
    """A stats line of a frame that really ran on both sides: tiles went up and came down, no local fallback."""
    return s["tiles_up"] > 0 and s["tiles_down"] > 0 and not s["fell_back"]


def frame_index(frame_id):
    """'f7' or 'f7_23' -> 7."""
    return int(str(frame_id)[1:].split("_")[0])


def compare_kapao(ref, got):
    """None when the published poses equal the local ones (coordinates within 0.05 px, scores within 1e-4)."""
    want = ref["poses"]
    have = got["poses"]
    if len(want) != len(have):
        return f"{len(have)} poses published, {len(want)} locally"
    for i, (w, h) in enumerate(zip(want, have)):
        if not np.allclose(np.asarray(w.box, np.float64), h["box"], atol=0.05):
            return f"pose {i}: box {h['box']} != {w.box.tolist()}"
        if abs(float(w.score) - h["score"]) > 1e-4:
            return f"pose {i}: score {h['score']} != {w.score}"
        if not np.allclose(np.asarray(w.keypoints, np.float64), np.asarray(h["kps"]), atol=0.05):
            return f"pose {i}: keypoints differ"
    return None


def kapao_mismatches(ref, results):
    """(mismatch lines, poses compared) of published results {frame id: result} against local inference (`ref`)."""
    bad, total = [], 0
    for fid, got in results.items():
        want, _det = ref.result(frame_index(fid))
        total += len(want["poses"])
        why = compare_kapao(want, got)
        if why:
            bad.append(f"{fid}: {why}")
    return bad, total


def compare_voxels(ref, logits, got, tie_tol=1e-4):
    """None when the published completed voxels equal the local ones, except voxels whose two best local
    logits are within `tie_tol` (float summation order may flip such an argmax; their count is bounded)."""
    want = dict(zip(ref["indices"].tolist(), ref["classes"].tolist()))
    have = dict(zip(got["indices"], got["classes"]))
    diff = [k for k in set(want) | set(have) if want.get(k) != have.get(k)]
    if not diff:
        return None
    top2 = logits[0].topk(2, dim=0).values  # [2, X, Z, Y]
    gap = (top2[0] - top2[1]).permute(0, 2, 1).reshape(-1)  # flat (x, y, z)
    ties = [k for k in diff if float(gap[k]) <= tie_tol]
    if len(ties) == len(diff) and len(diff) <= 10:
        return None
    return f"{len(diff)} voxels differ ({len(diff) - len(ties)} not near-ties), e.g. {diff[:5]}"


def up_tile_bytes(tiles, payload_only=True):
    """request id -> payload bytes of each up tile the feeder saw on the wire, in order (`payload_only`: without
    control tiles, which carry no rows and which InferenceStats do not count)."""
    up = {}
    for t in tiles:
        if t["dir"] == "up" and not (payload_only and t.get("control")):
            up.setdefault(t["request_id"], []).append(t["bytes"])
    return up


def check_stats(stats, tiles=None, tol=1e-6):
    """Problems with InferenceStats records: breakdown adds up, non-negative, bytes match the payload tiles seen.

    A frame that fell back locally counts only the tiles delivered before it ended (the tile ledger's rule): a
    server's answer that arrives after the local fallback is on the wire but not in its stats, so there the stats
    must not exceed the wire, and the upload must match exactly. Control tiles (start, abort) carry no rows and are
    not counted."""
    problems = []
    per_req = {}
    for t in tiles or []:
        if t.get("control"):
            continue
        d = per_req.setdefault(t["request_id"], {"up": [0, 0], "down": [0, 0]})
        d[t["dir"]][0] += t["bytes"]
        d[t["dir"]][1] += 1
    for s in stats:
        total = s["compute_s"] + s["transmit_only_s"] + s["wait_s"]
        if abs(total - s["latency_s"]) > tol:
            problems.append(f"{s['frame']}: {total} != latency {s['latency_s']}")
        if min(s["compute_s"], s["transmit_only_s"], s["wait_s"], s["transmit_s"]) < 0:
            problems.append(f"{s['frame']}: negative share")
        if s["transmit_s"] > s["latency_s"] + tol:
            problems.append(f"{s['frame']}: transmit_s {s['transmit_s']} > latency")
        if tiles is not None:
            d = per_req.get(s["request_id"], {"up": [0, 0], "down": [0, 0]})
            down = [s["bytes_down"], s["tiles_down"]]
            late_ok = s.get("fell_back") and all(a <= b for a, b in zip(down, d["down"]))
            if [s["bytes_up"], s["tiles_up"]] != d["up"] or (down != d["down"] and not late_ok):
                problems.append(
                    f"{s['frame']}: stats bytes/tiles up {s['bytes_up']}/{s['tiles_up']} down "
                    f"{s['bytes_down']}/{s['tiles_down']}, on the wire {d}"
                )
    return problems
