"""Scheduler benchmark: solve time of full plan tables, Intra-DP's predicted gain over the best baseline,
and the cost model's fidelity against measured runs over the throttled in-process transport.

How the two sides are made on this CPU-only machine (printed with every result):
- solve time and quality use one measured CPU profile. The server profile is that profile scaled to a
  stated per-inference time (the GPU server it stands for; `--server-ms`, or the measured CPU time when 0),
  the robot profile is the server's times `--ratio` (20).
- fidelity runs both halves in one process (`run_pair`'s executors, in-process transport throttled to the
  bandwidth). The server half runs at this CPU's speed; the robot half runs on a copy of the graph whose
  operator calls each sleep (k-1) times their own measured duration after computing, so every robot
  operator takes k times as long (k = `--ratio`). torch uses one thread so the two halves get one core each.
  The predictions use the server profile measured the same way and the robot profile = k x it.
Figures on these shared 2-core machines are noisy: medians of several runs are reported.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from intradp_ros.core.baselines import LayerPartitions, dsccs_plan, spso_choice
from intradp_ros.core.cost_model import CostModel
from intradp_ros.core.graph import Graph
from intradp_ros.core.plan import Plan
from intradp_ros.core.plan_table import SYSTEMS, build_table, default_cache_dir, default_grid
from intradp_ros.core.profiler import Profile, cached_profile
from intradp_ros.core.solver import Encoding, SolverConfig, solve
from intradp_ros.eval.plan_cli import Progress, format_table, load_graph


# ---------------------------------------------------------------------------------------------- robot slow-down
class SlowRowMap:
    """A row map whose every compute entry point takes longer by sleeping after computing.

    mode "profile": the call lasts k x the profiled time of that node for that many rows (the brief's "each
    takes k times its measured time": robot compute is then exactly what the cost model assumes, and the
    check is on everything else: overlap, link FIFO, waits, server compute, overheads);
    mode "elapsed": it sleeps (k - 1) x the time this very call took (cold caches after each sleep make
    that noticeably more than k x the profile on a busy machine)."""

    def __init__(
        self, inner: Any, k: float, node_profile: Any = None, mode: str = "profile", debt: list | None = None
    ) -> None:
        self.inner, self.k, self.node_profile, self.mode = inner, float(k), node_profile, mode
        self.debt = debt if debt is not None else [0.0]  # seconds still to sleep, shared by a graph's maps

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def need(self, a: int, b: int) -> Any:
        return self.inner.need(a, b)

    def _slow(self, rows: int, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        took = time.perf_counter() - t0
        if self.mode == "profile" and self.node_profile is not None:
            self.debt[0] += self.k * self.node_profile.time(rows) - took
        else:
            self.debt[0] += (self.k - 1.0) * took
        # sleep what is owed; oversleeping (late wake-ups on a busy machine) is paid back by later calls
        if self.debt[0] > 1e-3:
            t1 = time.perf_counter()
            time.sleep(self.debt[0])
            self.debt[0] -= time.perf_counter() - t1
        return out

    def run(self, a: int, b: int, pieces: Sequence[Any], constants: dict) -> Any:
        return self._slow(b - a, self.inner.run, a, b, pieces, constants)

    def call_whole(self, pieces: Sequence[Any], constants: dict) -> Any:  # the executor's whole-range path
        return self._slow(self.inner.extent, self.inner.call_whole, pieces, constants)

    def run_inplace(self, pieces: Sequence[Any], constants: dict) -> Any:  # its in-place element-wise path
        return self._slow(self.inner.extent, self.inner.run_inplace, pieces, constants)


def slowed_graph(g: Graph, k: float, profile: Profile | None = None, mode: str = "profile") -> Graph:
    """A copy of `g` (same fingerprint, same constants) whose operators run k times slower."""
    nodes = []
    debt = [0.0]
    for n in g.nodes:
        c = copy.copy(n)
        if not n.is_input:
            c.rowmap = SlowRowMap(n.rowmap, k, profile.nodes[n.index] if profile is not None else None, mode, debt)
        nodes.append(c)
    out = Graph(nodes, g.constants, g.outputs, g.input_indices, g.method)
    assert out.fingerprint == g.fingerprint
    return out


def measure(
    g: Graph, g_robot: Graph, plan: Plan, x: torch.Tensor, bandwidth_Bps: float, repeats: int, warmup: int = 1
) -> float:
    """Median wall seconds of one inference of `plan` (robot half on `g_robot`) over a throttled in-process link."""
    from intradp_ros.core.executor import ClientHalf, ServerHalf
    from intradp_ros.core.transport import inprocess_pair

    robot_end, server_end = inprocess_pair(bandwidth_Bps)
    server = ServerHalf(g, server_end, [plan], device="cpu", timeout=120.0)
    client = ClientHalf(g_robot, robot_end, device="cpu", timeout=120.0)
    robot_plan = Plan(g_robot, plan.robot, plan.server, plan.name, plan.band_map("robot"), plan.band_map("server"))
    samples = []
    try:
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            client.infer(robot_plan, x)
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    finally:
        client.close()
        server.close()
    return float(statistics.median(samples))


# ---------------------------------------------------------------------------------------------- sections
def server_robot(measured: Profile, ratio: float, server_ms: float) -> tuple[Profile, Profile, str]:
    """(server, robot, description): the server scaled to `server_ms` per inference (0: as measured)."""
    if server_ms > 0:
        k = measured.total() / (server_ms / 1e3)
        server = measured.scaled(1.0 / k, f"server standing for a GPU ({server_ms:g} ms/inference)")
        how = f"server = measured CPU / {k:.1f} ({server_ms:g} ms), robot = {ratio:g} x server"
    else:
        server = measured
        how = f"server = measured CPU ({measured.total() * 1e3:.0f} ms), robot = {ratio:g} x server"
    return server, server.scaled(ratio, f"robot ({ratio:g}x the server)"), how


def section_tables(
    model: str,
    input_size: Sequence[int] | None,
    ratio: float,
    server_ms_list: Sequence[float],
    cache: Path,
    target_s: float,
    cfg: SolverConfig,
    repeats: int,
    head: str | None = None,
) -> None:
    print(
        f"\n=== {model} {tuple(input_size) if input_size else ''}{' head ' + head if head else ''}: full 51-bucket "
        f"table, solve time and quality ==="
    )
    g, x = load_graph(model, input_size, head)
    measured, hit = cached_profile(g, [x], cache, repeats=repeats, progress=Progress("profiling"))
    print(
        f"graph {g.fingerprint}: {len(g.nodes)} nodes {g.counts()}; profile {'cached' if hit else 'measured'} on "
        f"{measured.device.get('name')} ({measured.device.get('threads')} threads): "
        f"{measured.total() * 1e3:.0f} ms/inference"
    )
    grid = default_grid()
    for server_ms in server_ms_list:
        server, robot, how = server_robot(measured, ratio, server_ms)
        t0 = time.perf_counter()
        table = build_table(g, robot, server, grid, config=cfg, progress=Progress("solving"))
        took = time.perf_counter() - t0
        print(f"-- {how}")
        print(
            f"solve time: {took:.1f} s for {len(grid)} buckets (target < {target_s:g} s: "
            f"{'PASS' if took < target_s else 'FAIL'}); {table.meta['evaluations']} evaluations, "
            f"{table.meta['compiled_plans']} distinct plans compiled"
        )
        ratios = []
        for r in table.rows:
            p = r.predictions
            best = min(p[s].latency_s for s in SYSTEMS if s != "intradp")
            assert p["intradp"].latency_s <= best + 1e-12, "Intra-DP predicted above a baseline"
            if 5 <= r.bandwidth_MBps <= 15:
                ratios.append(p["intradp"].latency_s / best)
        print(
            f"quality 5-15 MB/s: Intra-DP / best baseline = {min(ratios):.3f} .. {max(ratios):.3f} "
            f"(target <= 0.85: {'PASS' if max(ratios) <= 0.85 else 'not reached'}); never above a baseline: PASS"
        )
        shown = [r for r in table.rows if r.bandwidth_MBps in (0.5, 1, 2, 5, 10, 15, 20, 30, 50)]
        print("\n".join(format_table(type(table)(table.graph, shown)).splitlines()))


def section_fidelity(
    model: str,
    input_size: Sequence[int] | None,
    ratio: float,
    bandwidths: Sequence[float],
    cache: Path,
    cfg: SolverConfig,
    repeats: int,
    run_repeats: int,
    slowdown: str = "profile",
) -> list[float]:
    print(
        f"\n=== fidelity: {model} {tuple(input_size) if input_size else ''}, robot slowed {ratio:g}x by sleeping "
        f"(mode {slowdown}), in-process link ==="
    )
    g, x = load_graph(model, input_size)
    server, hit = cached_profile(g, [x], cache, repeats=repeats, progress=Progress("profiling"))
    robot = server.scaled(ratio, f"robot ({ratio:g}x slower by sleep)", scale_overhead=False)
    cm = CostModel(g, robot, server)
    print(
        f"graph {len(g.nodes)} nodes; server (this CPU, {server.device.get('threads')} thread) "
        f"{server.total() * 1e3:.0f} ms, robot {robot.total() * 1e3:.0f} ms per inference; "
        f"message overhead {cm.overhead_s * 1e6:.0f} us, executor step overhead {server.step_overhead_s * 1e6:.0f} us"
    )
    g_robot = slowed_graph(g, ratio, server, slowdown)
    with torch.no_grad():  # warm the allocator and kernel caches of this process
        for _ in range(3):
            g.run_local(x)
    lp = LayerPartitions(g, cm)
    enc = Encoding(g, cm, cfg.groups)
    errors: list[float] = []
    done: dict[tuple, float] = {}
    print(f"{'MB/s':>6} {'system':>13} {'predicted ms':>13} {'measured ms':>12} {'error':>7}  transfers")
    for mbps in bandwidths:
        bw = mbps * 1e6
        preds = lp.predictions([bw])
        best_cut = int(np.argmin([p[0].latency_s for p in preds]))
        dsccs = dsccs_plan(g, cm, bw)
        seeds = [enc.layer_cut(len(g.nodes)), enc.layer_cut(0), enc.layer_cut(best_cut)]
        sol = solve(enc, bw, seeds, [("dsccs", cm.compile(dsccs))], cfg)
        plans = {
            "intradp": sol.plan,
            "device_only": lp.plan(len(g.nodes)),
            "server_only": lp.plan(0),
            "dsccs": dsccs,
            "spso_ga": lp.plan(spso_choice(preds, 0, 1.0)),
        }
        plans["row_split_0.5"] = Plan.row_split(g, 0.5)  # a genuinely split plan, tiles both ways
        for name in list(SYSTEMS) + ["row_split_0.5"]:
            plan = plans[name]
            pred = cm.latency(plan, bw)
            n_tr = len(plan.transfers())
            key = (plan.plan_id, mbps if n_tr else None)
            if key not in done:
                done[key] = measure(g, g_robot, plan, x, bw, run_repeats)
            meas = done[key]
            err = (pred - meas) / meas
            errors.append(abs(err))
            print(f"{mbps:6g} {name:>13} {pred * 1e3:13.1f} {meas * 1e3:12.1f} {err * 100:6.1f}%  {n_tr}", flush=True)
    print(
        f"fidelity: max |error| {max(errors) * 100:.1f}%, median {statistics.median(errors) * 100:.1f}% "
        f"(target <= 15%: {'PASS' if max(errors) <= 0.15 else 'FAIL'})"
    )
    return errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_scheduler", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sections", default="tables,fidelity", help="comma list of: tables, fidelity")
    p.add_argument("--ratio", type=float, default=20.0, help="robot/server compute time ratio")
    p.add_argument("--cache-dir", type=Path, default=None, help=f"profile cache (default {default_cache_dir()})")
    p.add_argument("--profile-repeats", type=int, default=3)
    p.add_argument(
        "--vgg-server-ms",
        type=float,
        nargs="*",
        default=[0.0, 5.0],
        help="server time per VGG19 inference the tables assume (0 = as measured here)",
    )
    p.add_argument(
        "--kapao-server-ms",
        type=float,
        nargs="*",
        default=[0.0, 30.0],
        help="server time per KAPAO-L inference the tables assume (0 = as measured here)",
    )
    p.add_argument("--skip-kapao-l", action="store_true", help="tables for VGG19 only")
    p.add_argument("--fid-vgg-size", type=int, nargs=2, default=[112, 112])
    p.add_argument("--fid-kapao-size", type=int, nargs=2, default=[256, 320])
    p.add_argument("--fid-vgg-bw", type=float, nargs="*", default=[0.05, 0.2, 1.0], help="MB/s")
    p.add_argument("--fid-kapao-bw", type=float, nargs="*", default=[1.0, 5.0, 20.0], help="MB/s")
    p.add_argument("--runs", type=int, default=3, help="measured runs per plan and bandwidth (median)")
    p.add_argument("--maxiter", type=int, default=SolverConfig.maxiter)
    p.add_argument(
        "--slowdown",
        choices=("profile", "elapsed"),
        default="profile",
        help="robot operators last k x their profiled time, or k x their own duration",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if ":=" not in a]
    args = build_parser().parse_args(argv)
    cache = args.cache_dir or default_cache_dir()
    sections = set(args.sections.split(","))
    cfg = SolverConfig(maxiter=args.maxiter)
    print(
        f"bench_scheduler: torch {torch.__version__}, robot/server ratio {args.ratio:g}; timings on a shared "
        f"2-core CPU are noisy"
    )
    if "tables" in sections:
        torch.set_num_threads(max(torch.get_num_threads(), 1))
        section_tables(
            "torchvision:vgg19", None, args.ratio, args.vgg_server_ms, cache, 20.0, cfg, args.profile_repeats
        )
        if not args.skip_kapao_l:
            section_tables(
                "kapao_l6", (960, 1280), args.ratio, args.kapao_server_ms, cache, 120.0, cfg, 1, head="candidates"
            )
    if "fidelity" in sections:
        torch.set_num_threads(1)
        section_fidelity(
            "torchvision:vgg19",
            args.fid_vgg_size,
            args.ratio,
            args.fid_vgg_bw,
            cache,
            cfg,
            args.profile_repeats,
            args.runs,
            args.slowdown,
        )
        section_fidelity(
            "kapao_s6",
            args.fid_kapao_size,
            args.ratio,
            args.fid_kapao_bw,
            cache,
            cfg,
            args.profile_repeats,
            args.runs,
            args.slowdown,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
