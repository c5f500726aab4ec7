"""Baseline systems as plans in the same format as Intra-DP plans (so one cost model and one executor
judge them all):

- device-only and server-only (`Plan.device_only`, `Plan.server_only`);
- DSCCS-style latency-optimal layer partition: every operator wholly on one side, chosen by a minimum
  s-t cut of the DAG (DADS construction: an operator's compute time on each side, one edge per tensor
  that would cross, infinite edges forbidding server->robot hand-backs before the end). It minimises the
  sequential latency sum (robot compute + transfers + server compute + returning outputs), exact for any
  DAG, not just chains;
- SPSO-GA-style energy-optimal layer partition: the partition point (over every topological prefix,
  which is the space SPSO-GA searches with particle swarms) with the least robot energy per inference
  whose predicted latency meets a deadline (1 s by default, the seeds' 1 Hz); the fastest if none does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from intradp_ros.core.cost_model import CompiledPlan, CostModel, Prediction
from intradp_ros.core.graph import Graph, Range
from intradp_ros.core.plan import EMPTY, Plan
from intradp_ros.core.vocabulary import Mode

_INF = 1 << 29  # "infinite" capacity in microseconds (the max-flow solver takes int32)
_SCALE = 1e6  # seconds -> microseconds


def whole_partition(g: Graph, on_robot: Sequence[bool], name: str) -> Plan:
    """Plan with every node wholly on the robot (on_robot[v]) or wholly on the server; inputs on the robot."""
    robot = [(0, n.extent) if (n.is_input or on_robot[n.index]) else EMPTY for n in g.nodes]
    server = [EMPTY if (n.is_input or on_robot[n.index]) else (0, n.extent) for n in g.nodes]
    return Plan(g, robot, server, name)


def partition_cost(g: Graph, cm: CostModel, on_robot: Sequence[bool], bandwidth_Bps: float) -> float:
    """Sequential latency sum of a whole-operator partition: what DSCCS minimises."""
    ovh = cm.overhead_s
    total = 0.0
    outs = set(g.output_indices)
    for n in g.nodes:
        r = n.is_input or on_robot[n.index]
        if not n.is_input:
            total += cm.robot.time(n.index, n.extent) if r else cm.server.time(n.index, n.extent)
        if r and any(not on_robot[c] for c in g.consumers(n.index)):
            total += ovh + cm.wire_nbytes(n.index) / bandwidth_Bps
        if not r and n.index in outs:
            total += ovh + cm.wire_nbytes(n.index) / bandwidth_Bps
    return total


def dsccs_partition(g: Graph, cm: CostModel, bandwidth_Bps: float) -> list[bool]:
    """Per node: on the robot? Minimum cut of the DADS flow network (latency-optimal layer partition)."""
    N = len(g.nodes)
    s, t = 2 * N, 2 * N + 1
    rows: list[int] = []
    cols: list[int] = []
    caps: list[int] = []

    def edge(a: int, b: int, cap: float) -> None:
        rows.append(a)
        cols.append(b)
        caps.append(int(min(round(cap * _SCALE), _INF)) if cap < _INF else _INF)

    ovh = cm.overhead_s
    outs = set(g.output_indices)
    for n in g.nodes:
        v = n.index
        tx = ovh + cm.wire_nbytes(n.index) / bandwidth_Bps
        if n.is_input:
            edge(s, v, _INF)
        else:
            edge(s, v, cm.server.time(v, n.extent) + (tx if v in outs else 0.0))  # paid when v is on the server
            edge(v, t, cm.robot.time(v, n.extent))  # paid when v is on the robot
        cons = g.consumers(v)
        if cons:
            edge(v, N + v, tx)  # v's tensor crosses once if any consumer is on the server
            for c in cons:
                edge(N + v, c, _INF)
                edge(c, v, _INF)  # no consumer on the robot of a producer on the server
    C = coo_matrix((np.array(caps, dtype=np.int32), (rows, cols)), shape=(2 * N + 2, 2 * N + 2)).tocsr()
    C.sum_duplicates()
    flow = maximum_flow(C, s, t).flow
    residual = (C - flow).tocsr()
    residual.data = np.where(residual.data > 0, 1, 0).astype(np.int32)
    residual.eliminate_zeros()
    reach = breadth_first_order(residual, s, directed=True, return_predecessors=False)
    on = np.zeros(2 * N + 2, dtype=bool)
    on[reach] = True
    return [bool(on[v]) or g.nodes[v].is_input for v in range(N)]


def dsccs_plan(g: Graph, cm: CostModel, bandwidth_Bps: float) -> Plan:
    """DSCCS-style latency-optimal layer partition at this bandwidth."""
    return whole_partition(g, dsccs_partition(g, cm, bandwidth_Bps), "dsccs")


class LayerPartitions:
    """Every topological-prefix layer partition of a graph, compiled once, predicted for many bandwidths.

    cut 0 is server-only, cut len(g) device-only."""

    def __init__(self, g: Graph, cm: CostModel) -> None:
        self.graph = g
        self.cm = cm
        self.cuts = list(range(len(g.nodes) + 1))
        # as the seeds publish them: every tile uncompressed (codecs={}), whatever codecs the cost model knows
        self.compiled: list[CompiledPlan] = [cm.compile_ranges(*self.ranges(c), self.name(c), {}) for c in self.cuts]

    def name(self, cut: int) -> str:
        return {0: "server_only", len(self.graph.nodes): "device_only"}.get(cut, f"layer_partition_{cut}")

    def ranges(self, cut: int) -> tuple[list[Range], list[Range]]:
        """The ranges `Plan.layer_partition(g, cut)` has (built directly: no validation per cut)."""
        g = self.graph
        robot = [(0, n.extent) if (n.index < cut or n.is_input) else EMPTY for n in g.nodes]
        server = [EMPTY if (n.index < cut or n.is_input) else (0, n.extent) for n in g.nodes]
        return robot, server

    def plan(self, cut: int) -> Plan:
        return self.compiled[cut].plan

    def latencies(self, bandwidths_Bps: Sequence[float]) -> np.ndarray:
        """(cuts, bandwidths) predicted latency."""
        return np.array([self.cm.latencies(cp, bandwidths_Bps) for cp in self.compiled])

    def predictions(self, bandwidths_Bps: Sequence[float]) -> list[list[Prediction]]:
        """[cut][bandwidth] full predictions (with energy)."""
        return [self.cm.simulate(cp, bandwidths_Bps) for cp in self.compiled]


def spso_choice(preds_by_cut: Sequence[Sequence[Prediction]], b: int, deadline_s: float = 1.0) -> int:
    """Cut with the least robot energy among those meeting the deadline at bandwidth index b (else fastest)."""
    ok = [c for c, p in enumerate(preds_by_cut) if p[b].latency_s <= deadline_s]
    if ok:
        return min(ok, key=lambda c: (preds_by_cut[c][b].energy_j, preds_by_cut[c][b].latency_s))
    return min(range(len(preds_by_cut)), key=lambda c: preds_by_cut[c][b].latency_s)


def spso_plan(
    g: Graph, cm: CostModel, bandwidth_Bps: float, deadline_s: float = 1.0, partitions: LayerPartitions | None = None
) -> Plan:
    """SPSO-GA-style minimum-energy layer partition under a deadline at this bandwidth."""
    lp = partitions or LayerPartitions(g, cm)
    preds = lp.predictions([bandwidth_Bps])
    plan = lp.plan(lp.cuts[spso_choice(preds, 0, deadline_s)])
    plan.name = Mode.SPSO_GA
    return plan


@dataclass
class BaselineSet:
    """The four baselines at one bandwidth, as plans with their predictions."""

    plans: dict[str, Plan]
    predictions: dict[str, Prediction]


def baselines_at(
    g: Graph, cm: CostModel, bandwidth_Bps: float, deadline_s: float = 1.0, partitions: LayerPartitions | None = None
) -> BaselineSet:
    """device_only, server_only, dsccs, spso_ga plans and their predictions at one bandwidth."""
    plans: dict[str, Plan] = {
        Mode.DEVICE_ONLY: Plan.device_only(g),
        Mode.SERVER_ONLY: Plan.server_only(g),
        Mode.DSCCS: dsccs_plan(g, cm, bandwidth_Bps),
        Mode.SPSO_GA: spso_plan(g, cm, bandwidth_Bps, deadline_s, partitions),
    }
    preds: dict[str, Prediction] = {k: cm.predict(p, bandwidth_Bps) for k, p in plans.items()}
    return BaselineSet(plans, preds)
