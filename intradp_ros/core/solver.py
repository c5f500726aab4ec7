"""LOSS solver: the lowest-latency plan at one bandwidth, by differential evolution over a small encoding.

Encoding (D = K + 3 numbers in [0, 1]):
- x[0]: layer cut c. Nodes at topological positions >= round(c * N) run wholly on the server.
- x[1..K]: robot fraction p_k of each of K groups (consecutive nodes before the cut, grouped so each
  group holds about the same robot compute). A local node of extent E in group k computes its top
  round(p_k * E) rows on the robot and the rest on the server; a global (or one-row) node runs wholly on
  the robot when p_k >= 0.5, else on the server.
- x[K+1] >= 0.5: the server replicates its halos (every row its operators read it computes itself, back
  to the raw input), so it never waits for robot tiles; else halo rows come up from the robot.
- x[K+2] >= 0.5: the same for the robot (its halos are recomputed instead of coming down).
Device-only, server-only and every layer partition are points of this space. Codecs are not encoded: the cost
model chooses, per transfer, the lossless codec predicted fastest at the bandwidth (core/codec_choice.py), and
the returned plan carries that choice. The search starts from
them (and from the neighbouring bandwidth's solution), and the returned plan is the best of the search
and of every seed and baseline handed in, so it is never predicted worse than any of them. Transfers
out of layers whose output is larger than the raw input are not forbidden: the cost model charges
their bytes, so they appear only where they pay.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import differential_evolution
from scipy.stats import qmc

from intradp_ros.core.cost_model import CompiledPlan, CostModel
from intradp_ros.core.graph import Graph, Range
from intradp_ros.core.plan import EMPTY, Plan

TIE_BREAK = 1e-3  # seconds of objective per second of robot compute (breaks ties only)


@dataclass
class SolverConfig:
    """Search effort: groups K, DE generations and population, seed for reproducibility."""

    groups: int = 8
    maxiter: int = 30
    popsize: int = 24  # population members (rows of the initial population)
    tol: float = 1e-3
    seed: int = 0
    max_seconds: float = 30.0  # per bandwidth: stop the search after this long
    table_seconds: float = 80.0  # per plan table: the search time is shared out over the remaining buckets


@dataclass
class Solution:
    """Best plan found at one bandwidth, its encoding (None if it came from a seed/baseline) and stats."""

    plan: Plan
    compiled: CompiledPlan
    latency_s: float
    x: np.ndarray | None
    source: str
    evaluations: int
    seconds: float


def _hull(a: Range, b: Range) -> Range:
    if a == EMPTY:
        return b
    return (min(a[0], b[0]), max(a[1], b[1]))


class Encoding:
    """Maps encoding vectors to plans (and caches compiled plans by their ranges)."""

    def __init__(self, g: Graph, cm: CostModel, groups: int = 8) -> None:
        self.graph = g
        self.cm = cm
        N = len(g.nodes)
        self.N = N
        work = [0.0 if n.is_input else cm.robot.time(n.index, n.extent) for n in g.nodes]
        total = sum(work) or 1.0
        K = max(1, min(groups, sum(1 for n in g.nodes if not n.is_input)))
        self.K = K
        cum = np.cumsum(work) - np.asarray(work) / 2  # compute midpoint of each node
        self.group = [min(int(c / total * K), K - 1) for c in cum]
        # quantum of each group's fraction: one row of its tallest node
        self.quant = [max([n.extent for n in g.nodes if self.group[n.index] == k] + [1]) for k in range(K)]
        self.cache: dict[tuple[tuple[Range, ...], tuple[Range, ...]], CompiledPlan] = {}
        self.evaluations = 0

    @property
    def dims(self) -> int:
        return self.K + 3

    def layer_cut(self, cut: int) -> np.ndarray:
        """Encoding of the layer partition at `cut` (0 server-only, N device-only)."""
        x = np.ones(self.dims)
        x[0] = cut / self.N
        x[-2:] = 0.0
        return x

    def uniform(self, cut: int, frac: float, server_halo: bool, robot_halo: bool) -> np.ndarray:
        x = np.full(self.dims, frac)
        x[0] = cut / self.N
        x[-2] = 1.0 if server_halo else 0.0
        x[-1] = 1.0 if robot_halo else 0.0
        return x

    def ranges(self, x: Sequence[float] | np.ndarray) -> tuple[list[Range], list[Range]]:
        """Robot and server ranges per node for encoding `x` (always a valid plan)."""
        g = self.graph
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        cut = int(round(x[0] * self.N))
        p = [round(x[1 + k] * self.quant[k]) / self.quant[k] for k in range(self.K)]
        server_halo, robot_halo = x[self.K + 1] >= 0.5, x[self.K + 2] >= 0.5
        robot: list[Range] = []
        server: list[Range] = []
        for n in g.nodes:
            e = n.extent
            if n.is_input:
                robot.append((0, e))
                server.append(EMPTY)
            elif n.index >= cut:
                robot.append(EMPTY)
                server.append((0, e))
            else:
                q = p[self.group[n.index]]
                if n.is_local and e > 1:
                    r = int(round(q * e))
                    robot.append((0, r) if r > 0 else EMPTY)
                    server.append((r, e) if r < e else EMPTY)
                elif q >= 0.5:
                    robot.append((0, e))
                    server.append(EMPTY)
                else:
                    robot.append(EMPTY)
                    server.append((0, e))
        if robot_halo:
            self._close(robot, exclude_inputs=False)
        if server_halo:
            self._close(server, exclude_inputs=True)
        return robot, server

    def _close(self, mine: list[Range], exclude_inputs: bool) -> None:
        """Extend a side's ranges backwards so it computes every row its own local operators read (halo
        rows are recomputed instead of travelling); graph inputs and the inputs of global operators
        (synchronisation points) are still gathered over the link."""
        g = self.graph
        for n in reversed(g.nodes):
            r = mine[n.index]
            if r == EMPTY or n.is_input or not n.is_local:
                continue  # a global operator gathers its inputs: they may travel
            for u, rows in zip(n.inputs, self.cm.need(n.index, r)):
                un = g.nodes[u]
                if rows is None or un.is_input or not un.is_local:
                    continue  # raw input rows and global results travel
                mine[u] = _hull(mine[u], rows)

    def compiled(self, x: Sequence[float] | np.ndarray) -> CompiledPlan:
        """Compiled plan of encoding `x` (cached by its ranges)."""
        robot, server = self.ranges(x)
        key = (tuple(robot), tuple(server))
        cp = self.cache.get(key)
        if cp is None:
            cp = self.cm.compile_ranges(robot, server, "intradp")
            self.cache[key] = cp
        return cp

    def latency(self, x: Sequence[float], bandwidth_Bps: float) -> float:
        self.evaluations += 1
        return self.cm.latency(self.compiled(x), bandwidth_Bps)

    def objective(self, x: Sequence[float] | np.ndarray, bandwidth_Bps: float) -> float:
        """Latency, with a tiny charge for robot compute so equally fast plans prefer an idle robot."""
        self.evaluations += 1
        cp = self.compiled(x)
        return self.cm.latency(cp, bandwidth_Bps) + TIE_BREAK * cp.robot_compute_s


def solve(
    enc: Encoding,
    bandwidth_Bps: float,
    seeds: Sequence[np.ndarray] = (),
    candidates: Sequence[tuple[str, CompiledPlan]] = (),
    config: SolverConfig | None = None,
) -> Solution:
    """Differential evolution at one bandwidth, seeded; returns the best of search, seeds and candidates."""
    cfg = config or SolverConfig()
    t0 = time.perf_counter()
    ev0 = enc.evaluations
    D = enc.dims
    seeds = [np.clip(np.asarray(s, dtype=float), 0, 1) for s in seeds]
    n_pop = max(cfg.popsize, len(seeds) + 2, 5)
    rand = qmc.LatinHypercube(d=D, seed=cfg.seed).random(n_pop - len(seeds)) if n_pop > len(seeds) else np.zeros((0, D))
    init = np.vstack([np.array(seeds).reshape(-1, D), rand]) if seeds else rand
    deadline = t0 + cfg.max_seconds

    def f(x: np.ndarray) -> float:
        return enc.objective(x, bandwidth_Bps)

    def stop(*_args: object, **_kw: object) -> bool:
        return time.perf_counter() > deadline

    pool: list[tuple[str, CompiledPlan, np.ndarray | None]] = [("seed", enc.compiled(s), s) for s in seeds]
    if cfg.maxiter > 0:
        res = differential_evolution(
            f,
            [(0.0, 1.0)] * D,
            init=init,
            maxiter=cfg.maxiter,
            tol=cfg.tol,
            seed=cfg.seed,
            polish=False,
            callback=stop,
            updating="immediate",
        )
        pool.insert(0, ("search", enc.compiled(res.x), np.asarray(res.x)))
    pool += [(name, cp, None) for name, cp in candidates]
    if not pool:
        raise ValueError("nothing to choose from: no search, no seeds, no candidates")
    # True latency first (the guarantee); among equally fast plans the idler robot, then fewer bytes on the
    # link and less server work: a plan whose server half computes rows nobody waits for ties with
    # device-only in latency but costs link time, server time and passive bandwidth samples.
    scored = [
        (enc.cm.latency(cp, bandwidth_Bps), cp.robot_compute_s, cp.bytes_up + cp.bytes_down, cp.server_compute_s, i)
        for i, (_, cp, _) in enumerate(pool)
    ]
    best_lat, *_, i = min(scored)
    source, best_cp, best_x = pool[i]
    plan = best_cp.plan
    if best_cp.codecs is None:  # searched with codecs chosen per transfer: the plan carries them
        plan = enc.cm.with_codecs(plan, bandwidth_Bps)
        best_cp = enc.cm.compile(plan)
    return Solution(plan, best_cp, best_lat, best_x, source, enc.evaluations - ev0, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- bands
BAND_CHOICES = (2, 4, 8, 16, 32)
BAND_MIN_GAIN = 0.03  # banded must be predicted at least 3 % faster than one band, or one band stays
# Of the counts predicted within 2 % of the fastest, the fewest: thin bands are where the model errs most under load
# (KAPAO-L 512x640 through the ROS nodes, 32 bands chosen for a 0.3 % edge over coarser counts: the server's banded
# compute ran 2x its one-band frame where the profile's factor said 1.3x, 0.96x one band measured, 0.85x predicted)
BAND_TIE = 0.02


@dataclass
class BandChoice:
    """The number of bands chosen for a plan at one bandwidth, with the predictions it was chosen from."""

    plan: Plan
    bands: int
    latency_s: float
    one_band_s: float
    tried: dict[int, float]


def choose_bands(
    cm: CostModel,
    plan: Plan,
    bandwidth_Bps: float,
    choices: Sequence[int] = BAND_CHOICES,
    min_gain: float = BAND_MIN_GAIN,
    max_seconds: float = 30.0,
    cache: dict[tuple[int, ...], Plan] | None = None,
    tie: float = BAND_TIE,
) -> BandChoice:
    """The plan with the number of bands (its boundaries follow the input wavefront, `Plan.with_bands`) the
    banded cost model predicts fastest at this bandwidth; the plan as it is (one band) when no band count is
    predicted at least `min_gain` faster: streaming only where it pays; of the counts predicted within `tie` of the
    fastest, the fewest (thin bands are where the model errs most). Counts are tried in ascending order
    and the search stops once a count is predicted slower than the best so far (overheads grow with k) or
    after `max_seconds`. `cache` (a dict kept across buckets) reuses banded plans, whose replay structure is
    cached on them, when neighbouring buckets share a plan."""
    t0 = time.perf_counter()
    base = plan.with_bands(1) if plan.is_banded else plan
    cp = cm.compile(base)
    one = cm.latency(cp, bandwidth_Bps)
    tried: dict[int, float] = {1: one}
    # No banding makes a side compute faster or a link carry bytes faster: when even that bound leaves less than
    # `min_gain` to win, one band stays without trying any (device-only, tiny transfers, ...).
    pay, _enc, _dec = cm.wire_costs(cp, bandwidth_Bps)  # bytes on the link, the plan's codecs applied
    up = sum(b for b, is_up in zip(pay, cp.is_up.tolist()) if is_up)
    floor = max(cp.robot_compute_s, cp.server_compute_s, max(up, sum(pay) - up) / bandwidth_Bps)
    if floor > one * (1.0 - min_gain):
        return BandChoice(base, 1, one, one, tried)
    memo: dict[tuple[int, ...], Plan] = cache if cache is not None else {}
    plans: dict[int, Plan] = {}
    best = one
    for k in choices:
        if time.perf_counter() - t0 > max_seconds:
            break
        cand = _banded(cm, base, k, bandwidth_Bps, memo)
        if not cand.is_banded:
            continue
        lat = cm.latency(cand, bandwidth_Bps)
        tried[k], plans[k] = lat, cand
        if lat > best * 1.05:
            break
        best = min(best, lat)
    if not plans or best > one * (1.0 - min_gain):
        return BandChoice(base, 1, one, one, tried)
    k = min(k for k in plans if tried[k] <= best * (1.0 + tie))  # the fewest bands within the tie of the fastest
    return BandChoice(plans[k], k, tried[k], one, tried)


def _banded(cm: CostModel, base: Plan, k: int, bandwidth_Bps: float, memo: dict[tuple[int, ...], Plan]) -> Plan:
    """`base` in k bands (memoised); with the codecs re-chosen for the banded tiles where the plan carries codecs
    (k times the tiles: each pays a codec's per-call cost)."""
    recode = bool(base.codecs) and cm.chooses_codecs
    key = (base.plan_id, k, int(bandwidth_Bps)) if recode else (base.plan_id, k)
    cand = memo.get(key)
    if cand is None:
        cand = base.with_bands(k)
        if recode:
            cand = cm.with_codecs(cand, bandwidth_Bps)
        memo[key] = cand
    return cand
