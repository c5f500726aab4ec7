"""The main demo (`make demo`, scripts/intradp_demo, docs/demo.md): KAPAO-L from a compressed camera, three systems
side by side on the faithful testbed.

The bundled camera bag's `sensor_msgs/CompressedImage` topic (1280x960 JPEG) is replayed into the KAPAO client
(`image_transport: compressed`) on the evaluation testbed (eval/evaluate.py: two network namespaces, a tbf link
whose bucket follows the dilated rate of the outdoor trace, the client in a cgroup CPU quota), once per system:

- Intra-DP: the plan book chooses per bandwidth bucket; a plan that sends the whole input uploads the camera's own
  JPEG bytes (camera passthrough, exact: the server decodes them identically, checked by the handshake's probe);
- server-only sending raw pixels (the seeds' way): the same frames decoded on the robot, the letterboxed pixels sent;
- device-only.

It reuses the evaluation's runs, records, prediction and floor columns and plots (this module only adds the
per-system client settings, the input size choice and the side-by-side report: eval/demo_report.py,
eval/plots.plot_comparison), then prints the health table of the four nodes from the Intra-DP run.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from intradp_ros.eval.demo_report import comparison_rows, format_comparison, headline, plans_run
from intradp_ros.eval.evaluate import (
    EvalConfig,
    Evaluation,
    auto_dilation,
    build_options,
    flags,
    measure_frame_s,
    model_setup,
    trace_label,
)
from intradp_ros.eval.health_table import format_health, missing_nodes
from intradp_ros.eval.testbed import TestbedError
from intradp_ros.eval.workloads import KAPAO_SIZES, scaled_kapao_s
from intradp_ros.results.aggregates import summarize

# Run order (whatever order --systems names them in: `run_order`): raw server-only first, device-only, then
# server_only_jpeg, so the plan book that prices the camera file (solved once that client's probe verified
# passthrough and it handshook again; its counted frames wait for it) is cached before Intra-DP runs. The prediction
# prices each run with its own client's handshake copy (evaluate.Evaluation.handshake_copy).
DEMO_SYSTEMS: Sequence[str] = ("server_only", "server_only_jpeg", "intradp", "device_only")


RUN_ORDER: Sequence[str] = ("server_only", "device_only", "server_only_jpeg", "intradp")  # passthrough last


def run_order(systems: Sequence[str]) -> list[str]:
    """`systems` in RUN_ORDER (unknown names last, as given: the caller refuses them)."""
    known = [s for s in RUN_ORDER if s in systems]
    return known + [s for s in systems if s not in DEMO_SYSTEMS]


# the client mode of each demo system: server_only_jpeg is the server-only mode with the camera's JPEG passthrough
# (what Intra-DP's cost model can now choose where it is fastest: the camera file is a codec option of a whole,
# unbanded input, core/codec_choice.py)
DEMO_MODES: dict[str, str] = {
    "intradp": "intradp",
    "server_only": "server_only",
    "server_only_jpeg": "server_only",
    "device_only": "device_only",
}
DEMO_SIZES: Sequence[tuple[int, int]] = (*KAPAO_SIZES, (384, 512))  # largest first; multiples of 64
DEFAULT_BUDGET_S = 900.0  # the demo's target duration once the profiles are cached (measured: docs/demo.md)
SOLVE_S = 45.0  # one plan-book solve of KAPAO-L (16 buckets at SOLVER_SECONDS) here under load: 36-41 s measured
STARTUP_S = 120.0  # masters, bridge, server start, node starts, and the report (its prediction re-solves the book)
HANDSHAKE_FRAMES = 2  # device-only warm-up frames a distributed client runs while its plan book is solved
# device-only frames (+1 warm-up) the first distributed client times to scale its per-operator profile to real
# frames (client default 3; a frame is 12 s on the 0.1-CPU robot, so the demo times one). Without it the plan book
# believed the robot 1.45x faster than it is (CFS quota periods) and chose device-only for Intra-DP at the outdoor
# rate. The demo's clients share that calibration (the evaluation's calibration_file, cleared at its start), so
# they all send one profile and the server solves two plan books in all: the first client's (no camera
# file yet) and, after its camera probe, the one that prices the camera file (SOLVES)
CALIBRATE_FRAMES = 1
SOLVES = 2
SOLVER_SECONDS = 2.0
SIZE_MEASURED_AT: tuple[int, int] = (512, 640)
# the client's diagnostics once its held plan book has plans that send the camera file (the book the server solves
# after the first probed frame verified passthrough): before it, the counted frames of the first passthrough system
# ran on the book without the camera file while the server's CPU solved the new one (server-only JPEG 1.83x its
# prediction at 1280x960)
CAMERA_READY = "plan_book_camera=yes"


def client_settings(system: str, robot_cpu: float) -> dict[str, str]:
    """What the demo adds to each system's KAPAO client: the compressed camera topic for all; the camera's JPEG
    bytes may travel only for Intra-DP (server-only sends the decoded, letterboxed pixels: the seeds' way); one
    torch thread under a quota below one CPU (more threads burn the quota in spin-waits); one calibration frame
    (CALIBRATE_FRAMES), measured by the first client and reused by the others (calibration_file). The heartbeat
    and report timeouts are dilated by Evaluation.client_argv, as for every evaluation."""
    s = {
        "image_transport": "compressed",
        "camera_passthrough": "false" if system == "server_only" else "true",
        "calibrate_frames": str(CALIBRATE_FRAMES),
    }
    if robot_cpu < 1.0:
        s["threads"] = "1"
    return s


def estimate_demo_s(
    device_frame_s: float,
    frames: int,
    warmup: int,
    systems: Sequence[str],
    calibrate_frames: int = CALIBRATE_FRAMES,
    startup_s: float = STARTUP_S,
    solve_s: float = SOLVE_S,
) -> float:
    """An upper estimate of the demo's duration with a cached per-operator profile: every counted and warm-up frame
    as slow as a device-only frame on the throttled robot, the calibration frames the first client times (the
    others reuse them), HANDSHAKE_FRAMES per distributed client, SOLVES plan-book solves (none once a previous
    demo cached them: this is an upper estimate), plus the start-up."""
    if device_frame_s <= 0 or frames <= 0 or warmup < 0:
        raise ValueError("device_frame_s and frames must be > 0, warmup >= 0")
    distributed = sum(1 for s in systems if s != "device_only")
    clients = distributed + (1 if "device_only" in systems else 0)
    calibration = ((calibrate_frames + 1) if calibrate_frames and distributed else 0) + distributed * HANDSHAKE_FRAMES
    solves = min(clients, SOLVES if distributed else 1) * solve_s
    return startup_s + solves + device_frame_s * (len(systems) * (frames + warmup) + calibration)


def choose_size(
    device_frame_s_at: Callable[[tuple[int, int]], float],
    frames: int,
    warmup: int,
    systems: Sequence[str],
    budget_s: float,
    sizes: Sequence[tuple[int, int]] = DEMO_SIZES,
) -> tuple[tuple[int, int], str]:
    """((H, W), reason): the largest size whose estimated demo duration fits `budget_s` (the smallest if none)."""
    tried = []
    for hw in sizes:
        dev = device_frame_s_at(hw)
        total = estimate_demo_s(dev, frames, warmup, systems)
        tried.append(f"{hw[1]}x{hw[0]}: {dev:.1f} s/frame, ~{total / 60:.1f} min")
        if total <= budget_s:
            return (hw[0], hw[1]), (
                f"{hw[1]}x{hw[0]}, the largest size whose demo fits the {budget_s / 60:g} min budget on this machine "
                f"(device-only frame on the throttled robot, estimated demo: {'; '.join(tried)})"
            )
    h, w = sizes[-1]
    return (h, w), (f"{w}x{h}, the smallest size: none fits the {budget_s / 60:g} min budget ({'; '.join(tried)})")


def frame_cpu_s(model: str, options: dict[str, Any], repeats: int = 2) -> float:
    """CPU seconds of one frame with one torch thread (the least of `repeats`, after a warm-up). CPU time, unlike
    wall time, does not grow when other jobs share the cores (a 0.58 s frame took 10 s of wall time at load
    average 8 on this machine), so the demo's k and size do not depend on what else runs."""
    return measure_frame_s(model, options, repeats, clock=time.thread_time, threads=1)


def cacheable_k(k: float) -> float:
    """k rounded to a multiple of 10 (to an integer below 10, never below 1): the plan book's bucket grid is divided
    by k and the book is cached per grid, so a k that moved by a few percent between runs (measurement noise) would
    make the server solve its plan book again (about 2 minutes for KAPAO-L)."""
    if not (k > 0 and math.isfinite(k)):
        raise ValueError(f"k must be > 0 and finite, got {k!r}")
    return float(max(1, round(k / 10) * 10 if k >= 10 else round(k)))


def torch_threads() -> int:
    """torch's default intra-op threads in this process (what the CPU server runs with)."""
    import torch

    return int(torch.get_num_threads())


@dataclass
class DemoConfig(EvalConfig):
    """The evaluation's configuration with the demo's system names (validated as the client modes they run)."""

    def validate(self) -> None:
        named = self.systems
        self.systems = [DEMO_MODES.get(s, s) for s in named]
        try:
            super().validate()
        finally:
            self.systems = named


class DemoEvaluation(Evaluation):
    """The evaluation with the demo's camera: the compressed topic for every system, passthrough per system."""

    def client_argv(self, system: str) -> list[str]:
        extra = client_settings(system, self.cfg.robot_cpu)
        return super().client_argv(DEMO_MODES.get(system, system)) + flags(extra)

    def driver_argv(self, bag: str, record: Path, system: str) -> list[str]:
        """The evaluation's driver on the compressed topic; a system that may pass the camera file through warms up
        until its client also holds the book that prices it (`CAMERA_READY`), so no counted frame runs on the
        book without the camera file or beside the server's solve of the new one."""
        from intradp_ros.eval.sample_data import COMPRESSED_TOPIC

        argv = super().driver_argv(bag, record, system) + ["--topic", COMPRESSED_TOPIC]
        passthrough = client_settings(system, self.cfg.robot_cpu)["camera_passthrough"] == "true"
        if passthrough and DEMO_MODES.get(system, system) != "device_only":
            i = argv.index("--ready-status") + 1
            argv[i] = f"{argv[i]},{CAMERA_READY}"
        return argv

    def report(self) -> int:
        """The side-by-side table, the headline ratio, the plots and the Intra-DP run's health table."""
        from intradp_ros.eval.plots import plot_comparison, plot_run
        from intradp_ros.eval.stats_recorder import write_csv

        cfg = self.cfg
        k = float(cfg.dilation or 1.0)
        trace = trace_label(cfg.traces[0])
        self._annotate()
        write_csv(self.out_dir / "stats.csv", self.records)
        rows = comparison_rows(summarize(self.records), trace, k, list(cfg.systems))
        h, w = (int(v) for v in str(cfg.input_size).split(","))
        title = f"{cfg.model} {w}x{h} from the 1280x960 JPEG camera, {trace} trace, k = {k:.3g}, "
        title += f"robot {cfg.robot_cpu:g} CPU"
        self.say(f"\n[demo] {title}")
        self.say(format_comparison(rows, k))
        line = headline(rows)
        self.say(f"\n[demo] {line}" if line else "\n[demo] no ratio: Intra-DP or server-only has no frames")
        plans = plans_run(self.records, "intradp")
        if plans:
            self.say(f"[demo] Intra-DP ran: {plans}; raw pixels of the {w}x{h} input are {3 * h * w / 1e3:.1f} kB")
        self.say(
            "[demo] predicted: the cost model's latency of the plan each frame ran, from the profiles of that run's "
            "client's handshake (a plan whose input travels as the camera file is priced at the observed JPEG/pixel "
            "ratio; server-only with the camera JPEG is priced as the JPEG it sends, raw server-only as pixels); "
            "floor: the cheapest upload (the camera file once passthrough is verified) + server compute, or "
            "device-only; x floor = latency / floor per frame"
        )
        pngs = []
        if rows:
            pngs.append(plot_comparison(rows, self.out_dir / f"demo_{trace}.png", title))
            pngs += plot_run(self.records, self.out_dir, "demo_timeline", self.links, k)
        for p in pngs:
            self.say(f"[demo] plot: {p}")
        self.say(f"[demo] per-frame records: {self.out_dir / 'stats.csv'}; node logs: {self.log_dir}")
        if self.problems:
            self.say("[demo] problems:\n  " + "\n  ".join(self.problems[:20]))
        healthy = report_health(self.health.get((trace, "intradp")), self.out)
        ok = bool(rows) and all(r.frames > 0 for r in rows)
        return 0 if ok and healthy else 1


def report_health(statuses: list[dict[str, Any]] | None, out: TextIO) -> bool:
    """Print the health table; False (said loudly) when the run ended without it or a node never reported."""
    print("\n[demo] node health (latest /diagnostics status of each during the Intra-DP run)", file=out)
    if statuses is None:
        print("[demo] FAILED: the eval_driver ended without a health report (see the lines above)", file=out)
        return False
    print(format_health(statuses), file=out)
    missing = missing_nodes(statuses)
    if missing:
        print(
            f"[demo] FAILED: no /diagnostics status from the {', '.join(missing)} node(s) during the run "
            "(check that the node runs, publishes diagnostics and that the bridge mirrors /diagnostics)",
            file=out,
        )
        return False
    return True


def run_demo(
    model: str = "kapao_l6",
    input_size: str = "auto",
    frames: int = 5,
    warmup: int = 1,
    trace: str = "outdoor",
    dilation: float | None = None,
    robot_cpu: float = 0.1,
    systems: Sequence[str] = DEMO_SYSTEMS,
    budget_s: float = DEFAULT_BUDGET_S,
    out_dir: str = "demo_out",
    out: TextIO = sys.stdout,
    key_file: str = "",
) -> int:
    """Run the demo as root (namespaces, tbf, cgroup); returns 0 when every system produced frames and all four
    nodes reported their health."""
    t0 = time.monotonic()
    bad = [s for s in systems if s not in DEMO_MODES]
    if bad:
        raise ValueError(f"the demo compares {', '.join(DEMO_MODES)}, not {', '.join(bad)}")
    systems = run_order(systems)
    if not model.startswith("kapao"):
        raise ValueError(f"the demo runs a KAPAO model from the camera, not {model!r}")
    setup = model_setup(model, "{},{}".format(*SIZE_MEASURED_AT))
    cpu_s = frame_cpu_s(model, build_options(setup))  # one thread, at SIZE_MEASURED_AT
    if input_size == "auto":
        hw, why = choose_size(
            lambda hw: scaled_kapao_s(cpu_s / robot_cpu, SIZE_MEASURED_AT, hw), frames, warmup, systems, budget_s
        )
        input_size = f"{hw[0]},{hw[1]}"
        print(
            f"[demo] input size {why}; measured here: {cpu_s:.2f} CPU s per frame at {SIZE_MEASURED_AT[1]}x"
            f"{SIZE_MEASURED_AT[0]} with one thread, / {robot_cpu:g} CPU quota on the robot, other sizes scaled by "
            "pixels; the first run on a machine also profiles the model and solves the plan book (cached)",
            file=out,
            flush=True,
        )
    if dilation is None:
        hw = tuple(int(v) for v in input_size.split(","))
        server_s = scaled_kapao_s(cpu_s, SIZE_MEASURED_AT, (hw[0], hw[1])) / torch_threads()
        measured_k, why = auto_dilation(model, build_options(model_setup(model, input_size)), server_s)
        dilation = cacheable_k(measured_k)
        print(
            f"[demo] time dilation k = {dilation:g} (measured {why}, rounded to a multiple of 10 so later runs reuse "
            f"the cached plan book); the CPU-server frame is one thread's CPU seconds / {torch_threads()} "
            f"threads (wall time would count the other jobs on this machine: load average {os.getloadavg()[0]:.1f})",
            file=out,
            flush=True,
        )
    cfg = DemoConfig(
        model=model,
        input_size=input_size,
        systems=list(systems),
        traces=[trace],
        frames=frames,
        warmup=warmup,
        robot_cpu=robot_cpu,
        dilation=dilation,
        out=out_dir,
        solver_seconds=SOLVER_SECONDS,
        key_file=key_file,
    )
    code = DemoEvaluation(cfg, out).run()
    print(f"\n[demo] took {time.monotonic() - t0:.0f} s", file=out)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/intradp_demo."""
    import argparse

    p = argparse.ArgumentParser(prog="intradp_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="kapao_l6", help="kapao_s6 / kapao_m6 / kapao_l6")
    p.add_argument(
        "--input-size",
        default="auto",
        help="model input H,W (multiples of 64), or 'auto': the largest size whose demo fits --budget",
    )
    p.add_argument("--frames", type=int, default=5, help="counted frames per system")
    p.add_argument("--warmup", type=int, default=1, help="uncounted warm-up frames per system")
    p.add_argument("--trace", default="outdoor", help="bandwidth trace (indoor, outdoor or a file)")
    p.add_argument(
        "--dilation", default="auto", help="time-dilation factor k, or 'auto' (measured CPU frame / GPU frame)"
    )
    p.add_argument("--robot-cpu", type=float, default=0.1, help="robot cgroup quota (share of one CPU)")
    p.add_argument("--systems", default=",".join(DEMO_SYSTEMS), help=f"comma list of {', '.join(DEMO_MODES)}")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="target seconds of the demo (auto size)")
    p.add_argument("--out", default="demo_out", help="folder for the plots, stats.csv, bags and node logs")
    p.add_argument("--key-file", default="", help="shared secret (mode 600): run server and client authenticated")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "intradp_demo: the demo builds network namespaces, a tbf-shaped link and a cgroup CPU quota: "
            "run it as root (sudo -E make demo)",
            file=sys.stderr,
        )
        return 2
    try:
        return run_demo(
            args.model,
            args.input_size,
            args.frames,
            args.warmup,
            args.trace,
            None if args.dilation == "auto" else float(args.dilation),
            args.robot_cpu,
            [s for s in args.systems.split(",") if s],
            args.budget,
            args.out,
            key_file=args.key_file,
        )
    except (TestbedError, ValueError, OSError) as err:
        print(f"intradp_demo: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("intradp_demo: interrupted; everything was torn down", file=sys.stderr)
        return 130
