"""`rosrun intradp_ros plan ...` (also runs without a ROS master): profile a model, build or load its plan
table over a bandwidth grid, print per-bandwidth predicted latency and robot energy of every system, write
the table as JSON (what the client and the bandwidth monitor load), a CSV and a PNG plot.

Profiles: pass measured ones (`--robot-profile`, `--server-profile`, JSON from `--save-profile` on each
machine), or let the tool profile the model here and derive the missing side by a stated speed ratio
(`--measured-as server --ratio 20`: the measured profile is the server's, the robot is 20x slower).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from intradp_ros.core.graph import Graph
from intradp_ros.core.plan_table import SYSTEMS, PlanTable, build_table, cached_table, default_cache_dir, make_grid
from intradp_ros.core.power import PowerModel
from intradp_ros.core.profiler import Profile, cached_profile, profile_graph
from intradp_ros.core.solver import SolverConfig


# ---------------------------------------------------------------------------------------------- model + profiles
def load_graph(
    model: str, input_size: Sequence[int] | None = None, head: str | None = None
) -> tuple[Graph, torch.Tensor]:
    """Build a registry model (random weights) and capture its graph with an example input; `head` picks a
    deployment head (KAPAO 'candidates', SCONet 'completion': the graphs the robot clients run)."""
    from intradp_ros.core import capture
    from intradp_ros.models import build

    kwargs: dict = {}
    if input_size:
        kwargs["input_size"] = tuple(int(v) for v in input_size)
    if head:
        kwargs["head"] = head
    m = build(model, **kwargs).eval()
    x = m.input_spec.example()
    return capture(m, x, check=False), x


class Progress:
    """A one-line text progress bar on stderr (redrawn at most every 0.5 s; only the last line when not a TTY)."""

    def __init__(self, label: str, stream=None, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.t0 = self.last = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int, note: str = "") -> None:
        now = time.perf_counter()
        final = done >= total
        if not final and (not self.tty or now - self.last < 0.5):
            return
        self.last = now
        frac = done / max(total, 1)
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {now - self.t0:6.1f}s {note[:50]:50s}")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def profiles_for(
    g: Graph,
    x: torch.Tensor,
    robot_file: str | None,
    server_file: str | None,
    measured_as: str,
    ratio: float,
    cache_dir: Path | None,
    repeats: int,
    quiet: bool = False,
) -> tuple[Profile, Profile, str]:
    """(robot, server, how they were obtained): files where given, else measured here and derived by `ratio`."""
    robot = Profile.from_json(Path(robot_file).read_text(), g) if robot_file else None
    server = Profile.from_json(Path(server_file).read_text(), g) if server_file else None
    how = []
    if robot is None or server is None:
        prog = None if quiet else Progress("profiling")
        if cache_dir is not None:
            here, hit = cached_profile(g, [x], cache_dir, repeats=repeats, progress=prog)
            how.append(f"measured here ({'cached' if hit else 'fresh'}: {here.device.get('name')})")
        else:
            here = profile_graph(g, [x], repeats=repeats, progress=prog)
            how.append(f"measured here ({here.device.get('name')})")
        if robot is None and server is None:
            if measured_as == "server":
                server, robot = here, _derived_robot(here, ratio)
            else:
                robot, server = here, _derived_server(here, ratio)
            how.append(f"measured profile is the {measured_as}'s; the other side derived by ratio {ratio:g}")
        elif robot is None:
            robot = _derived_robot(server, ratio)
            how.append(f"robot derived from the server file by ratio {ratio:g}")
        else:
            server = _derived_server(robot, ratio)
            how.append(f"server derived from the robot file by ratio {ratio:g}")
    else:
        how.append("both profiles from files")
    return robot, server, "; ".join(how)


def _derived_robot(server: Profile, ratio: float) -> Profile:
    """The robot `ratio` x slower in its operators; its codecs (CPU work) ROBOT_CPU_OVER_HOST x this CPU's."""
    from intradp_ros.eval.workloads import ROBOT_CPU_OVER_HOST

    return server.scaled(ratio, f"robot ({ratio:g}x slower than the server)", codec_factor=ROBOT_CPU_OVER_HOST)


def _derived_server(robot: Profile, ratio: float) -> Profile:
    """The server `ratio` x faster in its operators (a GPU); its codecs run on a CPU as fast as this one."""
    return robot.scaled(1.0 / ratio, f"server ({ratio:g}x faster than the robot)", codec_factor=1.0)


# ---------------------------------------------------------------------------------------------- output
def format_table(table: PlanTable) -> str:
    """Per bandwidth: predicted latency (ms) and robot energy (J) of every system, and Intra-DP's ratio to the best
    baseline."""
    head = f"{'MB/s':>6} | " + " | ".join(f"{s:>17}" for s in SYSTEMS) + " | ratio | Intra-DP codecs"
    sub = f"{'':>6} | " + " | ".join(f"{'ms':>8} {'J':>8}" for _ in SYSTEMS) + " |"
    lines = [head, sub, "-" * len(head)]
    for r in table.rows:
        p = r.predictions
        best = min(p[s].latency_s for s in SYSTEMS if s != "intradp")
        cells = " | ".join(f"{p[s].latency_s * 1e3:8.1f} {p[s].energy_j:8.3f}" for s in SYSTEMS)
        ratio = p["intradp"].latency_s / best
        lines.append(f"{r.bandwidth_MBps:6g} | {cells} | {ratio:5.3f} | {r.plan.codec_brief()}")
    return "\n".join(lines)


def write_csv(table: PlanTable, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "bandwidth_MBps",
                "system",
                "latency_s",
                "energy_j",
                "robot_compute_s",
                "server_compute_s",
                "transmit_s",
                "robot_idle_s",
                "bytes_up",
                "bytes_down",
                "transfers",
                "source",
            ]
        )
        for r in table.rows:
            for s in SYSTEMS:
                p = r.predictions[s]
                w.writerow(
                    [
                        r.bandwidth_MBps,
                        s,
                        p.latency_s,
                        p.energy_j,
                        p.robot_compute_s,
                        p.server_compute_s,
                        p.transmit_s,
                        p.robot_idle_s,
                        p.bytes_up,
                        p.bytes_down,
                        p.transfers,
                        r.source if s == "intradp" else s,
                    ]
                )


def plot_table(table: PlanTable, path: Path, title: str = "") -> None:
    """PNG: predicted latency (and robot energy) against bandwidth for every system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bw = table.bandwidths
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s in SYSTEMS:
        style = dict(lw=2.5, color="k") if s == "intradp" else dict(lw=1.2, ls="--")
        ax1.plot(bw, [r.predictions[s].latency_s * 1e3 for r in table.rows], label=s, **style)
        ax2.plot(bw, [r.predictions[s].energy_j for r in table.rows], label=s, **style)
    ax1.set(xlabel="bandwidth (MB/s)", ylabel="predicted latency (ms)", yscale="log", title=title or "latency")
    ax2.set(xlabel="bandwidth (MB/s)", ylabel="robot energy per inference (J)", yscale="log", title="energy")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model",
        default="torchvision:vgg19",
        help="registry name (kapao_s6, kapao_l6, sconet, torchvision:vgg19, ...)",
    )
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="model input rows and columns")
    p.add_argument(
        "--head",
        default=None,
        help="deployment head: KAPAO 'candidates' or SCONet 'completion' (sparse "
        "outputs, what the robot clients run); default: upstream outputs",
    )
    p.add_argument("--robot-profile", help="robot profile JSON (from --save-profile on the robot)")
    p.add_argument("--server-profile", help="server profile JSON (from --save-profile on the server)")
    p.add_argument(
        "--measured-as",
        choices=("server", "robot"),
        default="server",
        help="which side a profile measured here stands for (default server)",
    )
    p.add_argument("--ratio", type=float, default=20.0, help="robot/server compute time ratio for a derived side")
    p.add_argument("--repeats", type=int, default=3, help="profiling repeats per tile size (median)")
    p.add_argument("--save-profile", help="write the profile measured here to this JSON file and exit")
    p.add_argument("--grid", help="comma-separated bandwidths in MB/s (overrides --grid-min/max/step)")
    p.add_argument("--grid-min", type=float, default=0.5)
    p.add_argument("--grid-max", type=float, default=50.0)
    p.add_argument("--grid-step", type=float, default=1.0)
    p.add_argument("--compute-w", type=float, default=PowerModel.compute_w, help="robot power computing (W)")
    p.add_argument("--transmit-w", type=float, default=PowerModel.transmit_w, help="robot power transmitting (W)")
    p.add_argument("--standby-w", type=float, default=PowerModel.standby_w, help="robot power in standby (W)")
    p.add_argument("--deadline", type=float, default=1.0, help="SPSO-GA-style deadline (s)")
    p.add_argument("--overhead-s", type=float, help="per-message transport overhead (default: the robot profile's)")
    p.add_argument("--groups", type=int, default=SolverConfig.groups)
    p.add_argument("--maxiter", type=int, default=SolverConfig.maxiter)
    p.add_argument("--popsize", type=int, default=SolverConfig.popsize)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--table-seconds",
        type=float,
        default=SolverConfig.table_seconds,
        help="search time budget for the whole table, shared over the buckets",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help=f"profile and table cache (default {default_cache_dir()})"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the caches")
    p.add_argument("--out", type=Path, help="write the plan table JSON here")
    p.add_argument("--csv", type=Path, help="write per-bandwidth predictions of every system as CSV")
    p.add_argument("--plot", type=Path, help="write a PNG of latency and energy against bandwidth")
    p.add_argument("--json", action="store_true", help="print the table JSON on stdout instead of the text table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if ":=" not in a]  # rosrun/roslaunch remaps
    args = build_parser().parse_args(argv)
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    try:
        g, x = load_graph(args.model, args.input_size, args.head)
    except Exception as e:  # noqa: BLE001 - report any model/capture failure as a usage error
        print(f"plan: cannot build/capture {args.model!r}: {e}", file=sys.stderr)
        return 2
    if args.save_profile:
        prog = None if args.quiet else Progress("profiling")
        prof = profile_graph(g, [x], repeats=args.repeats, progress=prog)
        Path(args.save_profile).write_text(prof.to_json())
        print(
            f"profile of {args.model} ({len(g.nodes)} nodes, graph {g.fingerprint}) on {prof.device.get('name')}: "
            f"{prof.total() * 1e3:.1f} ms per inference -> {args.save_profile}"
        )
        return 0
    robot, server, how = profiles_for(
        g, x, args.robot_profile, args.server_profile, args.measured_as, args.ratio, cache, args.repeats, args.quiet
    )
    grid = (
        [float(v) for v in args.grid.split(",")]
        if args.grid
        else make_grid(args.grid_min, args.grid_max, args.grid_step)
    )
    power = PowerModel(args.compute_w, args.transmit_w, args.standby_w)
    cfg = SolverConfig(
        groups=args.groups, maxiter=args.maxiter, popsize=args.popsize, seed=args.seed, table_seconds=args.table_seconds
    )
    prog = None if args.quiet else Progress("solving")
    t0 = time.perf_counter()
    if cache is not None:
        table, hit = cached_table(g, robot, server, grid, power, cfg, args.deadline, args.overhead_s, cache, prog)
    else:
        table, hit = build_table(g, robot, server, grid, power, cfg, args.deadline, args.overhead_s, prog), False
    took = time.perf_counter() - t0
    table.meta.setdefault("profiles", how)
    if args.out:
        args.out.write_text(table.to_json())
    if args.csv:
        write_csv(table, args.csv)
    if args.plot:
        plot_table(
            table, args.plot, f"{args.model}: robot {robot.total() * 1e3:.0f} ms, server {server.total() * 1e3:.0f} ms"
        )
    if args.json:
        print(table.to_json())
    else:
        print(
            f"model {args.model}: {len(g.nodes)} nodes, graph {g.fingerprint}; "
            f"input {g.nodes[g.input_indices[0]].nbytes} B"
        )
        print(
            f"profiles: {how}; robot {robot.total() * 1e3:.1f} ms, server {server.total() * 1e3:.1f} ms per inference"
        )
        print(f"table: {len(table.rows)} buckets, {'from cache' if hit else f'solved in {took:.1f} s'}")
        print(format_table(table))
        for what, path in (("table", args.out), ("csv", args.csv), ("plot", args.plot)):
            if path:
                print(f"{what}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
