"""Engine benchmark (`scripts/bench_engine`) and the small models that exercise the engine.

Models: a U-Net with transposed convolutions and skips, and a detection head that loops over levels
with shape-dependent Python checks (does not fx-trace). The engine's tests use them too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyUNet(nn.Module):
    """U-Net: 3 levels, max-pool down, ConvTranspose2d up, concatenated skips, raw uint8 input
    normalised inside the graph (so raw rows can travel)."""

    def __init__(self, c: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)
        self.enc1, self.enc2, self.enc3 = _block(3, c), _block(c, 2 * c), _block(2 * c, 4 * c)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = _block(4 * c, 2 * c)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1)
        self.dec1 = _block(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


class LoopDetect(nn.Module):
    """Multi-level detection head in the YOLO style: a loop over levels, a shape check in Python
    (defeats torch.fx), per-level decode with a registered full-extent grid buffer, and a final
    reshape + concat (global)."""

    def __init__(self, c: int = 8, levels: int = 2, hw: tuple[int, int] = (32, 32)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.SiLU())
        self.downs = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for _ in range(levels))
        self.heads = nn.ModuleList(nn.Conv2d(c, 2 * 5, 1) for _ in range(levels))
        h, w = hw
        for i in range(levels):
            hh, ww = h // 2 ** (i + 1), w // 2 ** (i + 1)
            yv, xv = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing="ij")
            self.register_buffer(f"grid{i}", torch.stack((xv, yv), 2).view(1, 1, hh, ww, 2).float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(x)
        z, raw = [], []
        for i, (down, head) in enumerate(zip(self.downs, self.heads)):
            x = down(x)
            p = head(x)
            bs, _, ny, nx = p.shape
            grid = getattr(self, f"grid{i}")
            if grid.shape[2:4] != p.shape[2:4]:  # Python control flow on shapes: fx cannot trace it
                raise ValueError("grid does not fit")
            p = p.view(bs, 2, 5, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            raw.append(p)
            y = p.sigmoid()
            xy = (y[..., 0:2] * 2 - 0.5 + grid) * (2 ** (i + 1))
            y = torch.cat((xy, y[..., 2:]), -1)
            z.append(y.view(bs, -1, 5))
        return torch.cat(z, 1), raw


# ============================================================================================ benchmark
PAPER_COUNTS = {  # local / global operator counts from the seed paper's table
    "densenet121": (428, 3),
    "resnet50": (341, 3),
    "resnext50_32x4d": (342, 3),
    "vgg19_bn": (73, 5),
    "convnext_tiny": (340, 6),
    "regnet_x_1_6gf": (231, 3),
}


def _median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    import statistics
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_overhead(name: str = "resnet50", side: int = 224, repeats: int = 15) -> dict:
    """Device-only plan through the client executor vs plain model(x), calls interleaved so that the
    drift of a shared CPU hits both alike; medians."""
    import statistics
    import time

    import torchvision

    from intradp_ros.core import Plan, capture
    from intradp_ros.core.executor import ClientHalf
    from intradp_ros.core.transport import inprocess_pair

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, side, side)
    g = capture(model, x)
    plan = Plan.device_only(g)
    robot_end, _server_end = inprocess_pair()
    client = ClientHalf(g, robot_end)
    plain, ex = [], []
    try:
        with torch.no_grad():
            for i in range(repeats + 2):
                for fn, acc in (((lambda: model(x)), plain), ((lambda: client.infer(plan, x)), ex))[
                    :: 1 if i % 2 else -1
                ]:
                    t0 = time.perf_counter()
                    fn()
                    if i >= 2:
                        acc.append(time.perf_counter() - t0)
    finally:
        client.close()
    t_plain, t_exec = statistics.median(plain), statistics.median(ex)
    ratios = sorted(e / p for p, e in zip(plain, ex))  # adjacent pairs see the same CPU load
    return {
        "model": name,
        "input": side,
        "nodes": len(g),
        "plain_s": t_plain,
        "executor_s": t_exec,
        "overhead": statistics.median(ratios) - 1.0,
        "overhead_iqr": (ratios[len(ratios) // 4] - 1.0, ratios[(3 * len(ratios)) // 4] - 1.0),
    }


def bench_overlap(side: int = 256, repeats: int = 3, ratio: float = 1.0, server_device: str | None = None) -> dict:
    """Robot computes the top half of every tensor while the bottom half of the raw input goes up and the
    server's half of the result comes down (Plan.halo_split(0.5): no mid-way exchange), over a throttled
    in-process link whose rate makes the transfer time (up + down) = ratio * robot compute.

    Without overlap the frame would take compute + path; with perfect overlap max(compute, path).
    overlap ratio = (compute + path - total) / min(compute, path): 1 is perfect overlap, 0 none."""
    import time

    from intradp_ros.core import Plan, capture
    from intradp_ros.core.executor import ClientHalf, ServerHalf, default_server_device
    from intradp_ros.core.transport import inprocess_pair

    torch.manual_seed(0)
    model = TinyUNet(c=8).eval()
    x = torch.randint(0, 256, (1, 3, side, side), dtype=torch.uint8)
    g = capture(model, x)
    plan = Plan.halo_split(g, 0.5)
    nbytes = plan.bytes("robot->server") + plan.bytes("server->robot")
    dev = server_device or str(default_server_device())

    def run(bw: float | None) -> tuple[float, object, object]:
        robot_end, server_end = inprocess_pair(bw)
        server = ServerHalf(g, server_end, [plan], device=dev)
        client = ClientHalf(g, robot_end)
        try:
            with torch.no_grad():
                client.infer(plan, x)  # warm-up
                runs = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    client.infer(plan, x)
                    runs.append((time.perf_counter() - t0, client.last_stats, server.last_stats))
            runs.sort(key=lambda r: r[0])
            return runs[len(runs) // 2]  # the median run
        finally:
            client.close()
            server.close()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core per half: robot and server do not fight over the pool
    try:
        t_free, st_free, sst_free = run(None)  # unthrottled: robot and server compute times
        compute = st_free.compute_s
        server = sst_free.compute_s if sst_free else 0.0
        bw = nbytes / (ratio * compute)
        transfer = nbytes / bw
        t_total, st, sst = run(bw)
    finally:
        torch.set_num_threads(threads)
    path = transfer + server  # the server's part: up, compute, down
    serial = compute + path
    best = max(compute, path)
    overlap = (serial - t_total) / min(compute, path)
    return {
        "input": side,
        "bytes": nbytes,
        "bandwidth_MBps": bw / 1e6,
        "compute_s": compute,
        "transfer_s": transfer,
        "server_compute_s": server,
        "server_device": dev,
        "path_s": path,
        "total_s": t_total,
        "serial_s": serial,
        "max_s": best,
        "overlap_ratio": overlap,
        "unthrottled_s": t_free,
    }


def operator_counts() -> list[dict]:
    """Local/global counts per zoo model beside the seed paper's (inputs 224x224)."""
    import torchvision

    from intradp_ros.core import capture

    rows = []
    for name, (p_local, p_global) in PAPER_COUNTS.items():
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).eval()
        g = capture(model, torch.randn(1, 3, 224, 224), check=False)
        ops = [n for n in g.nodes if not n.is_input]
        split = sum(1 for n in ops if n.kind != "global" and n.axis is not None)
        unsplit = sum(1 for n in ops if n.kind != "global" and n.axis is None)
        glob = sum(1 for n in ops if n.kind == "global")
        rows.append(
            {
                "model": name,
                "local": split + unsplit,
                "global": glob,
                "row_split_local": split,
                "whole_tail": unsplit,
                "paper_local": p_local,
                "paper_global": p_global,
            }
        )
    return rows


STREAM_MODELS = {  # name -> (builder, input), the set; "kapao_l_hd" only where time allows. KAPAO-L runs
    # with the robot's deployment head (sparse candidates): its upstream maps would make the download dominate
    "vgg19": ("vgg19", (224, 224)),
    "resnet50": ("resnet50", (224, 224)),
    "kapao_l": ("kapao_l6", (512, 640)),
    "kapao_l_hd": ("kapao_l6", (960, 1280)),
}
SWEEP = (2, 4, 8, 16, 32)


def _stream_model(key: str) -> tuple[torch.nn.Module, torch.Tensor]:
    name, (h, w) = STREAM_MODELS[key]
    torch.manual_seed(0)
    if name.startswith("kapao"):
        from intradp_ros.models import registry

        model = registry.build(name, input_size=(h, w), head="candidates")
        return model.eval(), model.input_spec.example(seed=1)
    import torchvision

    return getattr(torchvision.models, name)(weights=None).eval(), torch.randn(1, 3, h, w)


def bench_band_overhead(g: object, x: torch.Tensor, k: int = 8, repeats: int = 5) -> dict:
    """Seconds each extra band costs the stage: device-only with every bandable node in k bands against one
    band, in the same client, calls interleaved; (t_k - t_1) / (steps_k - steps_1), medians."""
    import statistics
    import time

    from intradp_ros.core import Plan
    from intradp_ros.core.runtime.halves import ClientHalf
    from intradp_ros.core.transport import inprocess_pair

    one = Plan.device_only(g)
    many = one.with_bands(k, aligned=False)
    robot_end, _server_end = inprocess_pair()
    client = ClientHalf(g, robot_end)
    t1, tk, s1, sk = [], [], 0, 0
    try:
        with torch.no_grad():
            for i in range(repeats + 1):
                for plan, acc in ((one, t1), (many, tk))[:: 1 if i % 2 else -1]:
                    t0 = time.perf_counter()
                    client.infer(plan, x)
                    if i:
                        acc.append(time.perf_counter() - t0)
                    st = client.last_stats
                    if plan is one:
                        s1 = st.steps
                    else:
                        sk = st.steps
    finally:
        client.close()
    extra = max(sk - s1, 1)
    per = sorted((b - a) / extra for a, b in zip(t1, tk))
    return {
        "k": k,
        "steps_1": s1,
        "steps_k": sk,
        "one_s": statistics.median(t1),
        "banded_s": statistics.median(tk),
        "per_band_s": per[len(per) // 2],
    }


def bench_streaming(
    key: str,
    repeats: int = 3,
    sweep: tuple[int, ...] = SWEEP,
    ratios: tuple[float, ...] = (1.0,),
    server_device: str | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Server-only in one band against k bands over the throttled in-process link, at bandwidths where the
    upload takes `ratio` x the server's compute: the solver's k (banded cost model) and a sweep. Measured
    and predicted ratios (banded / one band) side by side, with the floor (perfect overlap of upload and
    server compute: max of the two plus the download, over the measured one-band time). Each k is measured
    interleaved with one band (`measure_pair`), so a load that drifts during the sweep moves both."""
    import os
    import statistics
    import time

    from intradp_ros.core import Plan, capture
    from intradp_ros.core.cost_model import CostModel
    from intradp_ros.core.plan import DOWN, UP
    from intradp_ros.core.profiler import profile_graph
    from intradp_ros.core.runtime.halves import ClientHalf, ServerHalf
    from intradp_ros.core.runtime.stage import default_server_device
    from intradp_ros.core.solver import choose_bands
    from intradp_ros.core.transport import inprocess_pair

    model, x = _stream_model(key)
    g = capture(model, x)
    dev = server_device or str(default_server_device())
    t0 = time.perf_counter()
    prof = profile_graph(g, [x], "cpu", warmup=1, repeats=2, band_overhead=True)
    server_prof = prof if dev == "cpu" else profile_graph(g, [x], dev, warmup=1, repeats=2, band_overhead=True)
    cm = CostModel(g, prof, server_prof)
    log(
        f"  {key}: {len(g)} nodes, input {tuple(x.shape)} {x.dtype}, profiled in {time.perf_counter() - t0:.0f} s "
        f"(step overhead {prof.step_overhead_s * 1e6:.0f} us, message overhead {cm.overhead_s * 1e6:.0f} us, "
        f"band factors {' '.join(f'{k}:{f:.2f}' for k, f in sorted(server_prof.band_factors.items())) or 'none'}, "
        f"tile wire work {prof.tile_send_s * 1e6:.0f} us "
        f"+ {prof.tile_send_s_per_byte * 1e12:.0f} us/MB sent, {server_prof.tile_recv_s * 1e6:.0f} us "
        f"+ {server_prof.tile_recv_s_per_byte * 1e12:.0f} us/MB received)"
    )
    one = Plan.server_only(g)
    up_bytes, down_bytes = one.bytes(UP), one.bytes(DOWN)

    def measure(plan: Plan, bw: float | None, n: int) -> tuple[float, float]:
        """(median seconds, median server compute seconds) of n requests after one warm-up."""
        robot_end, server_end = inprocess_pair(bw)
        server = ServerHalf(g, server_end, [plan], device=dev)
        client = ClientHalf(g, robot_end)
        times, comp = [], []
        try:
            with torch.no_grad():
                for i in range(n + 1):
                    t = time.perf_counter()
                    client.infer(plan, x)
                    if i:
                        times.append(time.perf_counter() - t)
                        deadline = time.perf_counter() + 5.0
                        while server.last_stats is None and time.perf_counter() < deadline:
                            time.sleep(0.01)
                        comp.append(server.last_stats.compute_s if server.last_stats else 0.0)
        finally:
            client.close()
            server.close()
        return statistics.median(times), statistics.median(comp)

    _, server_s = measure(one, None, max(1, repeats // 2))
    # calibrate: the per-operator profile (one op at a time) and the measured server-only compute differ on a
    # shared CPU; scale both profiles so the one-band server compute is the measured one (calibrate_to_frames)
    raw = sum(server_prof.time(n.index, n.extent) for n in g.nodes if not n.is_input)
    factor = server_s / max(raw, 1e-9)
    cm = CostModel(g, prof.scaled(factor, "robot"), server_prof.scaled(factor, "server"))
    log(
        f"  {key}: profile calibrated x{factor:.2f} to the measured server compute "
        f"({raw * 1e3:.0f} -> {server_s * 1e3:.0f} ms)"
    )

    def measure_pair(plan: Plan, bw: float, n: int) -> tuple[float, float]:
        """(median one-band seconds, median `plan` seconds) of n requests each, interleaved (order alternating)
        after one warm-up of each: both under the same load, so their ratio survives a load that drifts."""
        robot_end, server_end = inprocess_pair(bw)
        server = ServerHalf(g, server_end, [one, plan], device=dev)
        client = ClientHalf(g, robot_end)
        t1: list[float] = []
        tk: list[float] = []
        try:
            with torch.no_grad():
                for i in range(n + 1):
                    for p, acc in ((one, t1), (plan, tk))[:: 1 if i % 2 else -1]:
                        t = time.perf_counter()
                        client.infer(p, x)
                        if i:
                            acc.append(time.perf_counter() - t)
        finally:
            client.close()
            server.close()
        return statistics.median(t1), statistics.median(tk)

    rows = []
    for ratio in ratios:
        bw = up_bytes / (ratio * server_s)
        choice = choose_bands(cm, one, bw)
        t_one, _ = measure(one, bw, repeats)
        p_one = cm.latency(one, bw)
        floor = max(up_bytes / bw, server_s) + down_bytes / bw
        log(
            f"  {key} upload/server compute {ratio:g}: {up_bytes / 1e6:.2f} MB up at {bw / 1e6:.3f} MB/s, server "
            f"compute {server_s * 1e3:.0f} ms on {dev}; one band {t_one * 1e3:.0f} ms measured, "
            f"{p_one * 1e3:.0f} ms predicted; floor {floor * 1e3:.0f} ms ({floor / t_one:.2f}x); "
            f"solver k = {choice.bands}"
        )
        ks = ([choice.bands] if choice.bands > 1 else []) + [k for k in sweep if k != choice.bands]
        for k in ks:
            plan = one.with_bands(k)
            pair_one, t_k = measure_pair(plan, bw, repeats)
            p_k = cm.latency(plan, bw)
            row = {
                "model": key,
                "ratio": ratio,
                "bandwidth_MBps": bw / 1e6,
                "k": k,
                "solver": k == choice.bands,
                "one_s": pair_one,
                "banded_s": t_k,
                "measured": t_k / pair_one,
                "predicted": p_k / p_one,
                "floor": floor / t_one,
                "max_bands": plan.max_bands(),
                "load": os.getloadavg()[0],
            }
            rows.append(row)
            log(
                f"    k={k:<3d}{' (solver)' if row['solver'] else '         '} {t_k * 1e3:7.0f} ms (one band "
                f"{pair_one * 1e3:.0f} ms, interleaved; predicted {p_k * 1e3:.0f} / {p_one * 1e3:.0f} ms)  measured "
                f"{row['measured']:.2f}x  predicted {row['predicted']:.2f}x  floor {row['floor']:.2f}x  "
                f"(load {row['load']:.1f})"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        description="Engine benchmark: executor overhead, transfer/compute overlap, "
        "operator counts. Timings on shared CPUs are noisy."
    )
    ap.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats")
    ap.add_argument("--only", choices=["overhead", "overlap", "counts", "streaming"], action="append")
    ap.add_argument(
        "--models",
        default="vgg19,kapao_l,resnet50",
        help="streaming: models to run (vgg19, resnet50, kapao_l = KAPAO-L 512x640, kapao_l_hd = 1280x960)",
    )
    ap.add_argument("--server-device", default=None, help="streaming: server half device (default: cuda if any)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for the overhead runs (default 1: two OpenMP teams spinning on a "
        "shared 2-core machine make timings meaningless)",
    )
    args = ap.parse_args(argv)
    only = set(args.only or ["overhead", "overlap", "counts"])  # streaming: --only streaming (minutes)
    torch.set_num_threads(max(1, args.threads))
    if "overhead" in only:
        print("== device-only plan through the executor vs plain model(x) (median of repeats)")
        for name, side in (("resnet50", 160 if args.quick else 224), ("mobilenet_v3_large", 224)):
            r = bench_overhead(name, side, repeats=5 if args.quick else 21)
            lo, hi = r["overhead_iqr"]
            print(
                f"  {r['model']:<20} {r['input']}x{r['input']}  {r['nodes']} nodes  plain {r['plain_s'] * 1e3:8.1f} ms"
                f"  executor {r['executor_s'] * 1e3:8.1f} ms  overhead {r['overhead'] * 100:+5.1f}% "
                f"(median of paired runs; quartiles {lo * 100:+.1f}% .. {hi * 100:+.1f}%)"
            )
    if "overlap" in only:
        print("== overlap: top half on the robot while the bottom half travels (throttled in-process link)")
        for ratio in (0.5, 1.0, 2.0):
            r = bench_overlap(128 if args.quick else 320, repeats=3 if args.quick else 5, ratio=ratio)
            print(
                f"  transfer/compute {ratio:3.1f}: {r['bytes'] / 1e6:.2f} MB at {r['bandwidth_MBps']:.2f} MB/s  "
                f"robot compute {r['compute_s'] * 1e3:.0f} ms  server path {r['path_s'] * 1e3:.0f} ms (transfer "
                f"{r['transfer_s'] * 1e3:.0f} + server compute {r['server_compute_s'] * 1e3:.0f} "
                f"on {r['server_device']})  "
                f"total {r['total_s'] * 1e3:.0f} ms  (sum {r['serial_s'] * 1e3:.0f}, ideal {r['max_s'] * 1e3:.0f})  "
                f"overlap ratio {r['overlap_ratio']:.2f}"
            )
    if "streaming" in only:
        print(
            "== streaming: server-only in one band vs k bands, throttled in-process link (timings noisy on shared CPUs)"
        )
        for key in [m.strip() for m in args.models.split(",") if m.strip()]:
            model, x = _stream_model(key)
            from intradp_ros.core import capture

            r = bench_band_overhead(capture(model, x), x, k=8, repeats=3 if args.quick else 5)
            print(
                f"  {key}: per-band overhead {r['per_band_s'] * 1e6:.0f} us ({r['steps_1']} -> {r['steps_k']} steps, "
                f"device-only {r['one_s'] * 1e3:.0f} -> {r['banded_s'] * 1e3:.0f} ms in 8 bands)"
            )
            del model, x
            bench_streaming(
                key,
                repeats=2 if args.quick or key.startswith("kapao") else 3,
                sweep=(4, 16) if args.quick else SWEEP,
                server_device=args.server_device,
            )
    if "counts" in only:
        print("== operator counts (ours: local = row-split + whole tail; paper: local/global)")
        for r in operator_counts():
            print(
                f"  {r['model']:<16} ours {r['local']:>4} local ({r['row_split_local']} row-split, "
                f"{r['whole_tail']} whole tail) / {r['global']} global    paper {r['paper_local']}/{r['paper_global']}"
            )
    return 0
