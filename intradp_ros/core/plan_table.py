"""Plan tables: the Intra-DP plan (and every baseline's prediction) for each bandwidth bucket.

A table is built for one graph and one robot/server profile pair over a bandwidth grid (default 0.5 MB/s
and 1..50 MB/s in 1 MB/s steps: 51 buckets), serialised to JSON with the graph fingerprint (a table for
another graph is refused), and cached on disk under a key made of the graph fingerprint, both profiles,
the power model, the grid and the solver settings, so the second request is a file read.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from intradp_ros.core.baselines import LayerPartitions, dsccs_plan, spso_choice
from intradp_ros.core.cache import (  # default_cache_dir re-exported: callers import it from here too
    default_cache_dir,
    write_atomic,
)
from intradp_ros.core.cost_model import CostModel, Prediction
from intradp_ros.core.formats import PLAN_TABLE_FORMAT
from intradp_ros.core.graph import Graph
from intradp_ros.core.plan import Plan, PlanError
from intradp_ros.core.power import PowerModel
from intradp_ros.core.profiler import Profile
from intradp_ros.core.solver import Encoding, SolverConfig, choose_bands, solve
from intradp_ros.core.vocabulary import MODES, Mode

TABLE_FORMAT = PLAN_TABLE_FORMAT
_LEGACY_NAMES = {"spso": Mode.SPSO_GA.value}  # tables cached before the modes were spelled once
MB = 1e6
SYSTEMS = MODES  # every system the table predicts, named as the modes


def default_grid() -> list[float]:
    """0.5 MB/s, then 1 to 50 MB/s in 1 MB/s steps (51 buckets)."""
    return [0.5] + [float(b) for b in range(1, 51)]


def make_grid(lo: float = 0.5, hi: float = 50.0, step: float = 1.0) -> list[float]:
    """lo, then the multiples of `step` above lo up to hi (inclusive)."""
    out = [float(lo)]
    k = int(np.floor(lo / step)) + 1
    while k * step <= hi + 1e-9:
        out.append(round(k * step, 6))
        k += 1
    return out


class PlanTableError(ValueError):
    """A table that is malformed or was made for another graph."""


@dataclass
class TableRow:
    """One bucket: its bandwidth, the chosen plan, where it came from, every system's prediction."""

    bandwidth_MBps: float
    plan: Plan
    source: str
    predictions: dict[str, Prediction]


@dataclass
class PlanTable:
    """Plans per bandwidth bucket for one graph and profile pair."""

    graph: str
    rows: list[TableRow]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def bandwidths(self) -> list[float]:
        return [r.bandwidth_MBps for r in self.rows]

    def row_for(self, bandwidth_MBps: float) -> TableRow:
        """The bucket for a bandwidth estimate: the largest bucket not above it (the smallest if none)."""
        below = [r for r in self.rows if r.bandwidth_MBps <= bandwidth_MBps + 1e-9]
        return below[-1] if below else self.rows[0]

    def plan_for(self, bandwidth_MBps: float) -> Plan:
        return self.row_for(bandwidth_MBps).plan

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": TABLE_FORMAT,
                "graph": self.graph,
                "meta": self.meta,
                "rows": [
                    {
                        "bandwidth_MBps": r.bandwidth_MBps,
                        "source": r.source,
                        "plan": json.loads(r.plan.to_json()),
                        "predictions": {k: p.to_dict() for k, p in r.predictions.items()},
                    }
                    for r in self.rows
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str, g: Graph) -> PlanTable:
        """Parse a table for graph `g`; PlanTableError if it is malformed or made for another graph."""
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as e:
            raise PlanTableError(f"plan table is not valid JSON: {e}") from None
        if not isinstance(d, dict) or d.get("format") != TABLE_FORMAT:
            raise PlanTableError(f"not an intradp plan table (format {TABLE_FORMAT!r} expected)")
        if d.get("graph") != g.fingerprint:
            raise PlanTableError(f"plan table was made for graph {d.get('graph')!r}, the graph is {g.fingerprint!r}")
        rows = []
        try:
            for r in d["rows"]:
                plan = Plan.from_json(json.dumps(r["plan"]), g)
                preds = {_LEGACY_NAMES.get(k, k): Prediction(**v) for k, v in r["predictions"].items()}
                rows.append(TableRow(float(r["bandwidth_MBps"]), plan, str(r["source"]), preds))
        except PlanError as e:
            raise PlanTableError(f"plan table holds a bad plan: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise PlanTableError(f"plan table malformed: {e}") from None
        if not rows:
            raise PlanTableError("plan table has no rows")
        return cls(str(d["graph"]), sorted(rows, key=lambda r: r.bandwidth_MBps), dict(d.get("meta", {})))


def build_table(
    g: Graph,
    robot: Profile,
    server: Profile,
    grid_MBps: Sequence[float] | None = None,
    power: PowerModel | None = None,
    config: SolverConfig | None = None,
    deadline_s: float = 1.0,
    overhead_s: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> PlanTable:
    """Solve every bucket (ascending, each seeded with its neighbour's solution) and predict every baseline."""
    t0 = time.perf_counter()
    grid = sorted(float(b) for b in (grid_MBps or default_grid()))
    cfg = config or SolverConfig()
    cm = CostModel(g, robot, server, power, overhead_s)
    bws = [b * MB for b in grid]
    lp = LayerPartitions(g, cm)
    lp_preds = lp.predictions(bws)  # [cut][bucket]
    lp_lat = np.array([[p.latency_s for p in row] for row in lp_preds])
    enc = Encoding(g, cm, cfg.groups)
    N = len(g.nodes)
    rows: list[TableRow] = []
    prev_x: np.ndarray | None = None
    band_cache: dict[tuple[int, ...], Plan] = {}  # (plan id, k) -> banded plan, shared by the buckets
    for b, bw in enumerate(bws):
        best_cut = int(np.argmin(lp_lat[:, b]))
        spso_cut = spso_choice(lp_preds, b, deadline_s)
        dsccs = cm.compile(dsccs_plan(g, cm, bw))
        seeds = [enc.layer_cut(N), enc.layer_cut(0), enc.layer_cut(best_cut)]
        seeds += [enc.uniform(N, f, sh, rh) for f in (0.25, 0.5) for sh in (False, True) for rh in (False, True)]
        if prev_x is not None:
            seeds.append(prev_x)
        cands = [("layer_partition", lp.compiled[best_cut]), ("dsccs", dsccs), (Mode.SPSO_GA, lp.compiled[spso_cut])]
        share = (cfg.table_seconds - (time.perf_counter() - t0)) / (len(bws) - b)
        sol = solve(enc, bw, seeds, cands, replace(cfg, max_seconds=min(cfg.max_seconds, max(share, 0.1))))
        if sol.x is not None:
            prev_x = sol.x
        # streaming: the number of bands (boundaries on the input wavefront) that pays at this bandwidth, if any
        band_budget = max(0.05 * (cfg.table_seconds - (time.perf_counter() - t0)) / (len(bws) - b), 0.05)
        bands = choose_bands(cm, sol.plan, bw, max_seconds=band_budget, cache=band_cache)
        plan = bands.plan.renamed(f"intradp_{grid[b]:g}MBps")
        preds: dict[str, Prediction] = {
            Mode.INTRADP: cm.simulate(bands.plan, [bw])[0] if bands.bands > 1 else cm.simulate(sol.compiled, [bw])[0],
            Mode.DEVICE_ONLY: lp_preds[N][b],
            Mode.SERVER_ONLY: lp_preds[0][b],
            Mode.DSCCS: cm.simulate(dsccs, [bw])[0],
            Mode.SPSO_GA: lp_preds[spso_cut][b],
        }
        for k, p in preds.items():
            p.plan = k
        rows.append(TableRow(grid[b], plan, sol.source, preds))
        if progress is not None:
            progress(
                b + 1,
                len(bws),
                f"{grid[b]:g} MB/s: {bands.latency_s * 1e3:.1f} ms ({sol.source}, {bands.bands} band"
                f"{'s' if bands.bands > 1 else ''})",
            )
    meta = {
        "robot_device": robot.device,
        "server_device": server.device,
        "power": (power or PowerModel()).to_dict(),
        "deadline_s": deadline_s,
        "solver": asdict(cfg),
        "overhead_s": cm.overhead_s,
        "solve_seconds": time.perf_counter() - t0,
        "compiled_plans": len(enc.cache),
        "evaluations": enc.evaluations,
    }
    return PlanTable(g.fingerprint, rows, meta)


# ---------------------------------------------------------------------------------------------- cache
def cache_key(
    g: Graph,
    robot: Profile,
    server: Profile,
    grid_MBps: Sequence[float],
    power: PowerModel,
    config: SolverConfig,
    deadline_s: float,
    overhead_s: float | None,
) -> str:
    """Hash of everything a table depends on."""
    text = json.dumps(
        [
            TABLE_FORMAT,
            "bands/1",  # tables made before the solver chose row bands are solved again
            g.fingerprint,
            robot.to_json(),
            server.to_json(),
            list(grid_MBps),
            power.to_dict(),
            asdict(config),
            deadline_s,
            overhead_s,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_table(
    g: Graph,
    robot: Profile,
    server: Profile,
    grid_MBps: Sequence[float] | None = None,
    power: PowerModel | None = None,
    config: SolverConfig | None = None,
    deadline_s: float = 1.0,
    overhead_s: float | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[PlanTable, bool]:
    """(table, True if it came from the cache). Builds and stores it on a miss; a corrupt entry is rebuilt."""
    grid = sorted(float(b) for b in (grid_MBps or default_grid()))
    power = power or PowerModel()
    cfg = config or SolverConfig()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = (
        folder
        / "plan_tables"
        / f"{g.fingerprint}_{cache_key(g, robot, server, grid, power, cfg, deadline_s, overhead_s)}.json"
    )
    if path.is_file():
        try:
            return PlanTable.from_json(path.read_text(), g), True
        except PlanTableError:
            pass
    table = build_table(g, robot, server, grid, power, cfg, deadline_s, overhead_s, progress)
    write_atomic(path, table.to_json())
    return table, False
