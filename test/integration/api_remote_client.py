#!/usr/bin/env python3
"""Robot side of api_remote.test: the three-line API against a real intradp_server, one JSON line per event.

Runs inside the Testbed's robot namespace (ROS_MASTER_URI = the robot's master, bridged to the server's).
First `IntraDP(server=<a URI where no master answers>)` must raise RemoteUnavailable (before this process
becomes a node); then, per mode, `IntraDP(server="ros")`, `start_client(model)` and `model(x)` for a few
frames, each compared here with the same model's local forward on the same input.
Lines: {"kind": "unreachable"|"frame"|"done"|"error", ...}.
"""

import argparse
import json
import sys
import time
import traceback

import torch


def emit(**obj):
    print(json.dumps(obj), flush=True)


def tensors_of(value):
    """Every tensor of a (nested) model output, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_of(v)]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in tensors_of(value[k])]
    return []


def compare(ref, got):
    """(max abs difference, output scale, problem or None) of two model outputs."""
    want, have = tensors_of(ref), tensors_of(got)
    if len(want) != len(have) or not want:
        return float("inf"), 0.0, f"{len(have)} output tensors, {len(want)} locally"
    diff, scale = 0.0, 0.0
    for w, h in zip(want, have):
        if w.shape != h.shape or w.dtype != h.dtype:
            return float("inf"), 0.0, f"output {tuple(h.shape)}/{h.dtype} != local {tuple(w.shape)}/{w.dtype}"
        diff = max(diff, float((w.double() - h.double()).abs().max()))
        scale = max(scale, float(w.double().abs().max()))
    return diff, scale, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--robot", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input-size", required=True, help="H,W")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument(
        "--modes", default="intradp", help="comma-separated; one per process is safest (see api_remote_test)"
    )
    ap.add_argument("--unreachable", default="", help="first check that this master URI (nothing answers) raises")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--bandwidth", type=float, default=50.0, help="MB/s: picks the plan book's bucket")
    args = ap.parse_args()

    torch.set_num_threads(1)
    from intradp_ros import IntraDP
    from intradp_ros.models import build
    from intradp_ros.ros.remote_session import RemoteUnavailable

    torch.manual_seed(args.seed)  # the server's replica: same registry name, size and seed
    model = build(args.model, input_size=tuple(int(v) for v in args.input_size.split(","))).eval()
    inputs = [model.input_spec.example(seed=100 + i) for i in range(args.frames)]
    with torch.no_grad():
        refs = [model(x) for x in inputs]

    # 1) no master at the address: a clear RemoteUnavailable, quickly
    if args.unreachable:
        idp = IntraDP(server=args.unreachable, robot=args.robot, timeout=args.timeout)
        idp.start_client(model)
        t0 = time.monotonic()
        try:
            model(inputs[0])
            emit(kind="unreachable", raised=None, seconds=time.monotonic() - t0)
        except RemoteUnavailable as e:
            emit(kind="unreachable", raised="RemoteUnavailable", message=str(e), seconds=time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            emit(kind="unreachable", raised=type(e).__name__, message=str(e), seconds=time.monotonic() - t0)
        finally:
            idp.stop()

    # 2) the real server through this robot's (bridged) master
    for mode in args.modes.split(","):
        plan = (
            {} if mode == "intradp" else {"plan": mode}
        )  # intradp is the remote default: the three lines as documented
        idp = IntraDP(
            server="ros", robot=args.robot, timeout=args.timeout, bandwidth_bytes_per_s=args.bandwidth * 1e6, **plan
        )
        idp.start_client(model)
        try:
            for i, x in enumerate(inputs):
                t0 = time.monotonic()
                with torch.no_grad():
                    y = model(x)
                seconds = time.monotonic() - t0
                diff, scale, problem = compare(refs[i], y)
                st = idp.last_stats
                emit(
                    kind="frame",
                    mode=mode,
                    index=i,
                    max_abs=diff,
                    scale=scale,
                    problem=problem,
                    seconds=seconds,
                    fallbacks=idp.local_fallbacks,
                    plan=idp.last_plan.name if idp.last_plan else None,
                    stats=None
                    if st is None
                    else {
                        k: getattr(st, k)
                        for k in ("tiles_in", "bytes_in", "tiles_out", "bytes_out", "compute_s", "wait_s", "total_s")
                    },
                )
        finally:
            idp.stop()
    emit(kind="done")


if __name__ == "__main__":
    try:
        main()
    except BaseException as e:  # noqa: BLE001 - one error line for the test, then a non-zero exit
        emit(kind="error", error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-2000:])
        sys.exit(1)
