"""Cost model: predicted latency, its breakdown and robot energy of a plan at a given bandwidth.

It replays what the runtime does, event by event (unbanded plans below; banded plans, whose nodes run in
row bands, by `BandedSimulation` at the end of this module):
- each side walks the graph in topological order and computes its row range of every node as one call
  (one compute timeline per side: an operator starts when the side is free and every tile it reads
  has arrived; it takes the profile's t(rows) plus the executor's measured per-step overhead);
- every tile the plan sends is handed to that side's sender when the node that produces it finishes
  (graph inputs at time 0), and each direction is one FIFO link: a tile starts when it is released and
  the link is free, and occupies it for `overhead + bytes / bandwidth`;
- a transfer in a codec (core/codec_choice.py) carries ratio x its bytes, its encode seconds occupy the
  sender's link queue before it (the sender thread encodes, then sends) and its decode seconds delay its
  arrival; a compiled plan either has fixed codecs (a Plan's own) or lets the model choose, per transfer and
  bandwidth, the lossless codec predicted fastest (raw where none pays): what the solver searches with;
- every tile, in any codec, also costs its per-tile wire work (`Profile.tile_send_time` on the sender's CPU,
  in the sender's queue like encoding; `tile_recv_time` on the receiver's); each direction's receiving thread
  decodes one tile at a time, so a tile arrives when the link has delivered it and the receiver has decoded
  the tiles before it and then it;
- the inference ends when the robot holds every model output and has finished its own work.
Since each side releases tiles in topological order, one pass over the nodes in that order is an exact
simulation of this event system. The structure of a plan (row counts, transfers, who waits for what)
does not depend on bandwidth: `compile` builds it once, `latency` / `simulate` replay it cheaply, the
latter for many bandwidths at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from intradp_ros.core.codec_choice import CodecCosts
from intradp_ros.core.graph import Graph, Range
from intradp_ros.core.plan import DOWN, EMPTY, ROBOT, SERVER, UP, Codecs, Plan, Transfer, transfers_between
from intradp_ros.core.power import PowerModel, outside_length, union_length
from intradp_ros.core.profiler import Profile

if TYPE_CHECKING:  # the runtime imports torch: imported late where it runs
    from intradp_ros.core.runtime.schedule import Schedule
    from intradp_ros.core.runtime.schedule import Step as ScheduleStep


@dataclass
class Step:
    """One node's work: compute seconds per side, the tiles each side waits for, the tiles it releases."""

    node: int
    robot_s: float
    server_s: float
    robot_on: bool
    server_on: bool
    robot_waits: tuple[int, ...]
    server_waits: tuple[int, ...]
    up_release: tuple[int, ...]
    down_release: tuple[int, ...]


@dataclass
class CompiledPlan:
    """Bandwidth-independent structure of a plan, ready for replay."""

    graph: Graph
    name: str
    robot: list[Range]
    server: list[Range]
    transfers: list[Transfer]
    steps: list[Step]
    nbytes: np.ndarray  # per transfer
    is_up: np.ndarray  # per transfer, bool
    output_waits: tuple[int, ...]  # DOWN transfers of model outputs
    output_nodes_on_robot: tuple[int, ...]
    robot_compute_s: float
    server_compute_s: float
    codecs: Codecs | None = None  # fixed codec per (node, direction); None: the cost model chooses per bandwidth

    _plan: Plan | None = None
    _wire: dict[tuple[int, float], tuple[list[float], list[float], list[float]]] = field(default_factory=dict)

    @property
    def plan(self) -> Plan:
        """The (validated) Plan object of these ranges (with fixed codecs, if any), made on first use."""
        if self._plan is None:
            self._plan = Plan(self.graph, self.robot, self.server, self.name, codecs=self.codecs or None)
        return self._plan

    @property
    def bytes_up(self) -> int:
        return int(self.nbytes[self.is_up].sum())

    @property
    def bytes_down(self) -> int:
        return int(self.nbytes[~self.is_up].sum())


@dataclass
class Prediction:
    """Predicted figures of one plan at one bandwidth (seconds, joules, bytes)."""

    plan: str
    bandwidth_Bps: float
    latency_s: float
    robot_compute_s: float
    server_compute_s: float
    transmit_s: float  # link busy time, both directions
    robot_idle_s: float  # latency minus robot compute
    energy_j: float
    bytes_up: int
    bytes_down: int
    transfers: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(r: tuple[int, int]) -> int:
    return max(r[1] - r[0], 0)


class CostModel:
    """Predicts plans of graph `g` from a robot and a server profile (both checked against `g`)."""

    def __init__(
        self,
        g: Graph,
        robot: Profile,
        server: Profile,
        power: PowerModel | None = None,
        overhead_s: float | None = None,
        codecs: bool = True,
    ) -> None:
        """`codecs`: choose lossless codecs where both profiles carry codec profiles (False: every tile goes
        uncompressed, the systems as published)."""
        robot.check(g)
        server.check(g)
        self.graph = g
        self.robot = robot
        self.server = server
        self.power = power or PowerModel()
        self.overhead_s = robot.message_overhead_s if overhead_s is None else float(overhead_s)
        self._times: dict[tuple[str, int, int], float] = {}
        self._inputs = [n.inputs for n in g.nodes]
        # Sparse gathers: the larger of the model's density hint and what the profiled inputs produced
        self._bpr = [
            max(n.bytes_per_row, robot.bytes_per_row[n.index], server.bytes_per_row[n.index])
            if n.is_sparse
            else n.bytes_per_row
            for n in g.nodes
        ]
        self._computed = [n.index for n in g.nodes if not n.is_input]
        # Authenticated links: the sender MACs every tile and the receiver checks it before the next one, so a
        # tile holds its direction for its bytes' MAC on both CPUs too (0 in profiles of unauthenticated links)
        self.mac_s_per_byte = robot.mac_s_per_byte + server.mac_s_per_byte
        self.codec_costs = CodecCosts(g.nodes, robot.codecs, server.codecs) if codecs else CodecCosts(g.nodes, [], [])

    def link_bandwidth(self, bandwidth_Bps: Any) -> Any:
        """The bandwidth a link of `bandwidth_Bps` delivers once each byte also costs its MAC on both sides."""
        return bandwidth_Bps / (1.0 + bandwidth_Bps * self.mac_s_per_byte) if self.mac_s_per_byte else bandwidth_Bps

    # ------------------------------------------------------------------ codecs
    @property
    def chooses_codecs(self) -> bool:
        """True when this model has codec profiles of both sides to choose codecs from."""
        return bool(self.codec_costs)

    def wire_costs(self, cp: CompiledPlan, bandwidth_Bps: float) -> tuple[list[float], list[float], list[float]]:
        """Per transfer of `cp` at this bandwidth: (bytes on the link, sender encode s, receiver decode s), with
        its fixed codecs or, for a plan compiled without them, the best codec per transfer (memoised)."""
        key = (id(self), bandwidth_Bps)  # per model: two models may replay one compiled plan
        hit = cp._wire.get(key)
        if hit is not None:
            return hit
        nbytes = cp.nbytes.tolist()
        pay, enc, dec = list(nbytes), [0.0] * len(nbytes), [0.0] * len(nbytes)
        costs = self.codec_costs
        if costs and cp.codecs != {}:
            for i, t in enumerate(cp.transfers):
                if cp.codecs is None:
                    opt = costs.best(t.node, t.direction, nbytes[i], bandwidth_Bps)
                else:
                    c = cp.codecs.get((t.node, t.direction))
                    opt = None if c is None else costs.option(t.node, t.direction, c, nbytes[i])
                if opt is not None:
                    pay[i] = nbytes[i] * opt.ratio
                    enc[i] = opt.encode_s(nbytes[i])
                    dec[i] = opt.decode_s(nbytes[i])
        for i, up in enumerate(cp.is_up.tolist()):
            send, recv = self.tile_wire_s(bool(up), pay[i])
            enc[i] += send
            dec[i] += recv
        if len(cp._wire) > 64:
            cp._wire.clear()
        cp._wire[key] = (pay, enc, dec)
        return pay, enc, dec

    def tile_wire_s(self, up: bool, payload_bytes: Any) -> tuple[Any, Any]:
        """(sender s, receiver s) of the per-tile wire work for one tile of `payload_bytes` going up (robot sends,
        server receives) or down: each side's profiled `tile_send_time` / `tile_recv_time` (0 for old profiles)."""
        sender, receiver = (self.robot, self.server) if up else (self.server, self.robot)
        return sender.tile_send_time(payload_bytes), receiver.tile_recv_time(payload_bytes)

    def codec_choice(self, plan: Plan, bandwidth_Bps: float) -> Codecs:
        """The codec per (node, direction) predicted fastest for `plan`'s transfers at this bandwidth ({}: none
        pays, or no codec profiles)."""
        out: Codecs = {}
        if not self.codec_costs:
            return out
        sizes: dict[tuple[int, str], float] = {}
        tiles: dict[tuple[int, str], int] = {}
        for t in plan.transfers():  # a banded plan's transfers are its tiles: each pays the per-call costs
            nb = float((t.stop - t.start) * self._bpr[t.node] if self.graph.nodes[t.node].is_sparse else t.nbytes)
            sizes[(t.node, t.direction)] = sizes.get((t.node, t.direction), 0.0) + nb
            tiles[(t.node, t.direction)] = tiles.get((t.node, t.direction), 0) + 1
        for (v, d), nb in sizes.items():
            opt = self.codec_costs.best(v, d, nb, bandwidth_Bps, tiles[(v, d)])
            if opt is not None:
                out[(v, d)] = opt.codec
        return out

    def with_codecs(self, plan: Plan, bandwidth_Bps: float) -> Plan:
        """`plan` carrying the codecs predicted fastest at this bandwidth (the plan itself when it already has
        exactly those)."""
        choice = self.codec_choice(plan, bandwidth_Bps)
        return plan if choice == plan.codecs else plan.with_codecs(choice)

    # ------------------------------------------------------------------ structure
    def wire_nbytes(self, node: int) -> int:
        """Bytes node `node`'s whole output costs on the link, as this model charges it."""
        n = self.graph.nodes[node]
        return self._bpr[node] * max(n.extent, 1) if n.is_sparse else n.wire_nbytes

    def need(self, node: int, rng: Range) -> list[Range | None]:
        """`graph.input_rows` (memoised by the graph)."""
        return self.graph.input_rows(node, rng)

    def transfers(self, robot: Sequence[Range], server: Sequence[Range]) -> list[Transfer]:
        """Exactly `Plan.transfers()` (same tiles, same order) for ranges without a Plan object."""
        return transfers_between(self.graph, robot, server)

    def _time(self, side: str, node: int, rng: Range) -> float:
        """Profile time of `rng` of `node` on `side` plus the executor's step overhead (memoised)."""
        key = (side, node, rng[1] - rng[0])
        hit = self._times.get(key)
        if hit is None:
            prof = self.robot if side == ROBOT else self.server
            hit = self._times[key] = (
                0.0 if self.graph.nodes[node].is_input else float(prof.time(node, key[2]))
            ) + prof.step_overhead_s
        return hit

    def compile(self, plan: Plan) -> CompiledPlan:
        """Transfers, compute times and wait lists of `plan` (raises PlanError for an inconsistent plan); the
        node-level structure: bands are replayed by `latency`/`simulate` given the Plan itself."""
        if plan.graph is not self.graph and plan.graph.fingerprint != self.graph.fingerprint:
            raise ValueError("plan was made for another graph")
        cp = self.compile_ranges(plan.robot, plan.server, plan.name, dict(plan.codecs))
        cp._plan = plan
        return cp

    def compile_ranges(
        self, robot: Sequence[Range], server: Sequence[Range], name: str = "custom", codecs: Codecs | None = None
    ) -> CompiledPlan:
        """Like `compile` for ranges that are valid by construction (the solver's): no Plan object is made
        until `.plan` is asked for, which validates them. `codecs` None: the model chooses them per bandwidth
        (when it has codec profiles; else none); a dict: fixed."""
        g = self.graph
        robot, server = list(robot), list(server)
        transfers = self.transfers(robot, server)
        into: dict[tuple[int, str], list[tuple[int, int, int]]] = {}
        up_rel: dict[int, list[int]] = {}
        down_rel: dict[int, list[int]] = {}
        for i, t in enumerate(transfers):
            into.setdefault((t.node, t.receiver), []).append((t.start, t.stop, i))
            (up_rel if t.direction == UP else down_rel).setdefault(t.node, []).append(i)

        def waits(v: int, side: str, rng: Range) -> tuple[int, ...]:
            out: list[int] = []
            for u, rows in zip(self._inputs[v], self.need(v, rng)):
                if rows is None:
                    continue
                for a, b, i in into.get((u, side), ()):
                    if a < rows[1] and rows[0] < b and i not in out:
                        out.append(i)
            return tuple(out)

        received = {
            ROBOT: {u for (u, side) in into if side == ROBOT},
            SERVER: {u for (u, side) in into if side == SERVER},
        }
        steps: list[Step] = []
        rsum = ssum = 0.0
        for n in g.nodes:
            v = n.index
            r, s = robot[v], server[v]
            r_on, s_on = r != EMPTY, s != EMPTY
            rt = self._time(ROBOT, v, r) if r_on else 0.0
            st = self._time(SERVER, v, s) if s_on else 0.0
            ins = self._inputs[v]
            rw = waits(v, ROBOT, r) if r_on and not n.is_input and any(u in received[ROBOT] for u in ins) else ()
            sw = waits(v, SERVER, s) if s_on and not n.is_input and any(u in received[SERVER] for u in ins) else ()
            rsum += rt
            ssum += st
            ur, dr = tuple(up_rel.get(v, ())), tuple(down_rel.get(v, ()))
            if r_on or s_on or ur or dr:
                steps.append(Step(v, rt, st, r_on, s_on, rw, sw, ur, dr))
        outs = g.output_indices
        out_waits = tuple(i for o in outs for (_, _, i) in into.get((o, ROBOT), ()))
        out_on_robot = tuple(o for o in outs if robot[o] != EMPTY)
        return CompiledPlan(
            g,
            name,
            robot,
            server,
            transfers,
            steps,
            np.array(
                [(t.stop - t.start) * self._bpr[t.node] if g.nodes[t.node].is_sparse else t.nbytes for t in transfers],
                dtype=float,
            ),
            np.array([t.direction == UP for t in transfers], dtype=bool),
            out_waits,
            out_on_robot,
            float(rsum),
            float(ssum),
            codecs if codecs is not None or self.codec_costs else {},
        )

    # ------------------------------------------------------------------ replay, one bandwidth, latency only
    def latency(self, cp: CompiledPlan | Plan, bandwidth_Bps: float) -> float:
        """Predicted seconds per inference at `bandwidth_Bps` bytes/s (both directions); a banded Plan is
        replayed band by band (`BandedSimulation`)."""
        if isinstance(cp, Plan):
            if cp.is_banded:
                return banded(self, cp).latency(bandwidth_Bps)
            cp = self.compile(cp)
        bandwidth_Bps = self.link_bandwidth(bandwidth_Bps)
        ovh = self.overhead_s
        pay, enc, dec = self.wire_costs(cp, bandwidth_Bps)
        dur = [ovh + e + b / bandwidth_Bps for b, e in zip(pay, enc)]
        arrive = [0.0] * len(dur)
        finish_r = [0.0] * len(self.graph.nodes)
        rfree = sfree = upfree = downfree = 0.0
        uprecv = downrecv = 0.0  # the receiving thread of each direction decodes one tile at a time
        for st in cp.steps:
            if st.robot_on:
                t0 = rfree
                for i in st.robot_waits:
                    if arrive[i] > t0:
                        t0 = arrive[i]
                rfree = t0 + st.robot_s
                finish_r[st.node] = rfree
            for i in st.up_release:
                upfree = (upfree if upfree > rfree else rfree) + dur[i]
                uprecv = arrive[i] = (upfree if upfree > uprecv else uprecv) + dec[i]
            if st.server_on:
                t0 = sfree
                for i in st.server_waits:
                    if arrive[i] > t0:
                        t0 = arrive[i]
                sfree = t0 + st.server_s
            for i in st.down_release:
                downfree = (downfree if downfree > sfree else sfree) + dur[i]
                downrecv = arrive[i] = (downfree if downfree > downrecv else downrecv) + dec[i]
        end = rfree
        for i in cp.output_waits:
            end = max(end, arrive[i])
        for o in cp.output_nodes_on_robot:
            end = max(end, finish_r[o])
        return end

    # ------------------------------------------------------------------ replay, many bandwidths, full record
    def wire_costs_many(self, cp: CompiledPlan, bw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`wire_costs` at every bandwidth at once: (bytes on the link, encode s, decode s), each (T, B)."""
        T, B = len(cp.nbytes), len(bw)
        pay = np.repeat(cp.nbytes[:, None], B, axis=1).astype(float)
        enc, dec = np.zeros((T, B)), np.zeros((T, B))
        if self.codec_costs and cp.codecs != {}:
            for i, t in enumerate(cp.transfers):
                nb = float(cp.nbytes[i])
                if cp.codecs is None:
                    pay[i], enc[i], dec[i] = self.codec_costs.best_many(t.node, t.direction, nb, bw)
                    continue
                c = cp.codecs.get((t.node, t.direction))
                opt = None if c is None else self.codec_costs.option(t.node, t.direction, c, nb)
                if opt is not None:
                    pay[i], enc[i], dec[i] = nb * opt.ratio, opt.encode_s(nb), opt.decode_s(nb)
        for i, up in enumerate(cp.is_up.tolist()):
            send, recv = self.tile_wire_s(bool(up), pay[i])
            enc[i] = enc[i] + send
            dec[i] = dec[i] + recv
        return pay, enc, dec

    def _replay(
        self, cp: CompiledPlan, bw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised replay over bandwidths: (end, dur, link starts, arrivals, compute starts, compute ends,
        bytes on the link)."""
        B = len(bw)
        bw = self.link_bandwidth(bw)
        T = len(cp.nbytes)
        pay, enc, dec = self.wire_costs_many(cp, bw)
        dur = self.overhead_s + enc + pay / bw[None, :]  # (T, B)
        arrive = np.zeros((T, B))
        start_link = np.zeros((T, B))
        zero = np.zeros(B)
        rfree, sfree, upfree, downfree = zero.copy(), zero.copy(), zero.copy(), zero.copy()
        uprecv, downrecv = zero.copy(), zero.copy()  # each direction's receiving thread decodes in order
        comp_s: list[np.ndarray] = []
        comp_e: list[np.ndarray] = []
        finish_r: dict[int, np.ndarray] = {}
        for st in cp.steps:
            if st.robot_on:
                t0 = rfree
                for i in st.robot_waits:
                    t0 = np.maximum(t0, arrive[i])
                rfree = t0 + st.robot_s
                if st.robot_s > 0:
                    comp_s.append(t0)
                    comp_e.append(rfree)
                finish_r[st.node] = rfree
            for i in st.up_release:
                start_link[i] = np.maximum(upfree, rfree)
                upfree = start_link[i] + dur[i]
                uprecv = arrive[i] = np.maximum(upfree, uprecv) + dec[i]
            if st.server_on:
                t0 = sfree
                for i in st.server_waits:
                    t0 = np.maximum(t0, arrive[i])
                sfree = t0 + st.server_s
            for i in st.down_release:
                start_link[i] = np.maximum(downfree, sfree)
                downfree = start_link[i] + dur[i]
                downrecv = arrive[i] = np.maximum(downfree, downrecv) + dec[i]
        end = rfree.copy()
        for i in cp.output_waits:
            end = np.maximum(end, arrive[i])
        for o in cp.output_nodes_on_robot:
            end = np.maximum(end, finish_r[o])
        cs = np.array(comp_s) if comp_s else np.zeros((0, B))
        ce = np.array(comp_e) if comp_e else np.zeros((0, B))
        return end, dur, start_link, arrive, cs, ce, pay

    def simulate(self, cp: CompiledPlan | Plan, bandwidths_Bps: Sequence[float]) -> list[Prediction]:
        """Full predictions (breakdown and robot energy) at every bandwidth, in one vectorised pass (a banded
        Plan: one banded replay per bandwidth)."""
        if isinstance(cp, Plan):
            if cp.is_banded:
                sim = banded(self, cp)
                return [sim.predict(float(b)) for b in bandwidths_Bps]
            cp = self.compile(cp)
        bw = np.asarray(bandwidths_Bps, dtype=float)
        B, T = len(bw), len(cp.nbytes)
        end, dur, start_link, arrive, cs, ce, pay = self._replay(cp, bw)
        up = cp.is_up
        out = []
        for b in range(B):
            lat = float(end[b])
            ls, le = start_link[:, b], np.minimum(arrive[:, b], lat)
            keep = le > ls
            tx_only = outside_length(ls[keep], le[keep], cs[:, b], ce[:, b])
            comp = union_length(cs[:, b], ce[:, b])
            energy = self.power.energy(lat, comp, tx_only)
            out.append(
                Prediction(
                    cp.name,
                    float(bw[b]),
                    lat,
                    cp.robot_compute_s,
                    cp.server_compute_s,
                    float(dur[:, b].sum()),
                    max(lat - cp.robot_compute_s, 0.0),
                    energy,
                    int(pay[up, b].sum()),
                    int(pay[~up, b].sum()),
                    T,
                )
            )
        return out

    def latencies(self, cp: CompiledPlan | Plan, bandwidths_Bps: Sequence[float]) -> np.ndarray:
        """Predicted latency at every bandwidth (vectorised, no energy)."""
        if isinstance(cp, Plan):
            if cp.is_banded:
                sim = banded(self, cp)
                return np.array([sim.latency(float(b)) for b in bandwidths_Bps])
            cp = self.compile(cp)
        return self._replay(cp, np.asarray(bandwidths_Bps, dtype=float))[0]

    def predict(self, plan: CompiledPlan | Plan, bandwidth_Bps: float) -> Prediction:
        """Prediction of one plan at one bandwidth."""
        return self.simulate(plan, [bandwidth_Bps])[0]


# ---------------------------------------------------------------------------------------------- bands
class BandedSimulation:
    """Event replay of a banded plan, as the runtime runs it (core/runtime): per side one compute timeline
    over the schedule's steps (one band of one node each); a step starts when the side is free, the steps it
    reads are done and its tiles have arrived, lowest schedule priority first among those ready (the
    wavefront); it takes the profile's t(rows of the band) plus the measured per-step overhead; for a node cut into
    several bands the operator time is multiplied by the profile's measured factor for that band count
    (`Profile.band_factor`; older profiles add their per-band constant `band_step_s` instead); its tiles
    enter that direction's FIFO link when it ends and occupy it for `overhead + bytes / bandwidth`. The
    request ends when the robot holds every output. Structure is built once; `latency(bw)` replays it."""

    def __init__(self, cm: CostModel, plan: Plan) -> None:
        from intradp_ros.core.runtime.schedule import plan_schedule  # late: the runtime imports torch

        self.cm, self.plan = cm, plan
        g = cm.graph
        self.sides: tuple[str, str] = (ROBOT, SERVER)
        self.schedules: dict[str, Schedule] = {side: plan_schedule(plan, side) for side in self.sides}
        self.cost: dict[str, list[float]] = {}
        self.compute_s: dict[str, float] = {}
        for side in self.sides:
            prof = cm.robot if side == ROBOT else cm.server
            c = [0.0 if st.node.is_input else self._step_s(prof, side, st) for st in self.schedules[side].steps]
            self.cost[side] = c
            self.compute_s[side] = float(sum(c))
        # tiles: key -> (index, bytes); who sends which tile after which step
        self.tiles: dict[tuple[int, int, int], int] = {}
        self.nbytes: list[float] = []  # baseline (uncompressed) bytes per tile
        self.pay: list[float] = []  # bytes on the link (the plan's codec applied)
        self.enc: list[float] = []  # sender encode seconds
        self.dec: list[float] = []  # receiver decode seconds
        self.is_up: list[bool] = []
        self.sends: dict[str, list[list[int]]] = {}
        for side in self.sides:
            per_step: list[list[int]] = []
            for st in self.schedules[side].steps:
                ids = []
                for a, b in st.sends:
                    key = (st.node.index, a, b)
                    self.tiles[key] = len(self.nbytes)
                    n = g.nodes[st.node.index]
                    nb = float((b - a) * (cm._bpr[n.index] if n.is_sparse else n.bytes_per_row))
                    self.nbytes.append(nb)
                    self.is_up.append(side == ROBOT)
                    direction = UP if side == ROBOT else DOWN
                    codec = plan.codec_for(n.index, direction)
                    opt = None if codec is None else cm.codec_costs.option(n.index, direction, codec, nb)
                    pay = nb * opt.ratio if opt else nb
                    send, recv = cm.tile_wire_s(side == ROBOT, pay)
                    self.pay.append(pay)
                    self.enc.append((opt.encode_s(nb) if opt else 0.0) + send)
                    self.dec.append((opt.decode_s(nb) if opt else 0.0) + recv)
                    ids.append(self.tiles[key])
                per_step.append(ids)
            self.sends[side] = per_step
        self.waits: dict[str, list[list[int]]] = {
            side: [[self.tiles[k] for k in st.waits] for st in self.schedules[side].steps] for side in self.sides
        }
        self.output_waits = [self.tiles[k] for k in self.schedules[ROBOT].output_waits]

    def _step_s(self, prof: Profile, side: str, st: Any) -> float:
        """One step's seconds: its rows' profiled time (x the measured factor of its node's band count) plus the
        step overhead, plus the per-band constant of profiles made before band factors."""
        t = self.cm._time(side, st.node.index, st.rows)
        if st.bands <= 1:
            return t
        op = t - prof.step_overhead_s  # _time adds the step overhead to the operator time
        return op * prof.band_factor(st.bands) + prof.step_overhead_s + prof.band_step_s

    @property
    def bytes_up(self) -> int:
        """Bytes on the link up (codecs applied)."""
        return int(sum(b for b, up in zip(self.pay, self.is_up) if up))

    @property
    def bytes_down(self) -> int:
        return int(sum(b for b, up in zip(self.pay, self.is_up) if not up))

    def latency(self, bandwidth_Bps: float) -> float:
        """Predicted seconds of one request at `bandwidth_Bps` (both directions)."""
        bandwidth_Bps = self.cm.link_bandwidth(bandwidth_Bps)
        ovh = self.cm.overhead_s
        inf = float("inf")
        arrive = [inf] * len(self.nbytes)
        link_free = {True: 0.0, False: 0.0}
        recv_free = {True: 0.0, False: 0.0}  # each direction's receiving thread decodes one tile at a time
        state: dict[str, _SideReplay] = {}
        for side in self.sides:
            steps = self.schedules[side].steps
            missing = [len(st.deps) + len(st.waits) for st in steps]
            dependents: list[list[int]] = [[] for _ in steps]
            for i, st in enumerate(steps):
                for d in st.deps:
                    dependents[d].append(i)
            readers: dict[int, list[int]] = {}
            for i, w in enumerate(self.waits[side]):
                for t in w:
                    readers.setdefault(t, []).append(i)
            frontier = {i: 0.0 for i in range(len(steps)) if missing[i] == 0}  # step -> time its inputs are ready
            state[side] = _SideReplay(steps, missing, dependents, readers, frontier, [0.0] * len(steps))
        total = {side: len(self.schedules[side].steps) for side in self.sides}

        def candidate(side: str) -> tuple[float, tuple[float, int], int]:
            s = state[side]
            if not s.frontier:
                return inf, (0.0, 0), -1
            t_next = max(s.free, min(s.frontier.values()))
            best = min((s.steps[i].priority, i) for i, r in s.frontier.items() if r <= t_next)
            return t_next, best[0], best[1]

        while any(state[s].done < total[s] for s in self.sides):
            cands = [(candidate(s), s) for s in self.sides if state[s].done < total[s]]
            (t0, _, i), side = min(cands, key=lambda c: c[0][0])
            if t0 == inf:
                raise ValueError(f"plan {self.plan.name}: the replay deadlocked (a tile is never sent)")
            own = state[side]
            del own.frontier[i]
            end = t0 + self.cost[side][i]
            own.finish[i] = end
            own.free = end
            own.done += 1
            for j in own.dependents[i]:
                own.missing[j] -= 1
                if own.missing[j] == 0:
                    own.frontier[j] = self._ready(side, j, own.finish, arrive)
            for t in self.sends[side][i]:
                up = self.is_up[t]
                start = max(link_free[up], end)
                link_free[up] = start + ovh + self.enc[t] + self.pay[t] / bandwidth_Bps
                arrive[t] = recv_free[up] = max(link_free[up], recv_free[up]) + self.dec[t]
                other = SERVER if up else ROBOT
                peer = state[other]
                for j in peer.readers.get(t, ()):
                    peer.missing[j] -= 1
                    if peer.missing[j] == 0:
                        peer.frontier[j] = self._ready(other, j, peer.finish, arrive)
        end = state[ROBOT].free
        for t in self.output_waits:
            end = max(end, arrive[t])
        return end

    def _ready(self, side: str, j: int, finish: list[float], arrive: list[float]) -> float:
        st = self.schedules[side].steps[j]
        r = 0.0
        for d in st.deps:
            r = max(r, finish[d])
        for t in self.waits[side][j]:
            r = max(r, arrive[t])
        return r

    def predict(self, bandwidth_Bps: float) -> Prediction:
        """A Prediction (energy from the robot's compute and the link time outside it, as an estimate)."""
        lat = self.latency(bandwidth_Bps)
        tx = float(sum(self.cm.overhead_s + e + b / bandwidth_Bps for b, e in zip(self.pay, self.enc)))
        rc = self.compute_s[ROBOT]
        energy = self.cm.power.energy(lat, rc, max(min(tx, lat - rc), 0.0))
        return Prediction(
            self.plan.name,
            float(bandwidth_Bps),
            lat,
            rc,
            self.compute_s[SERVER],
            tx,
            max(lat - rc, 0.0),
            energy,
            self.bytes_up,
            self.bytes_down,
            len(self.nbytes),
        )


@dataclass(slots=True)
class _SideReplay:
    """One side's progress in `BandedSimulation.latency`: steps still waiting, ready steps, finish times."""

    steps: list[ScheduleStep]
    missing: list[int]  # per step: dependencies and tiles not yet there
    dependents: list[list[int]]  # per step: the steps that depend on it
    readers: dict[int, list[int]]  # tile -> the steps waiting for it
    frontier: dict[int, float]  # ready step -> time its inputs are ready
    finish: list[float]  # per step: its finish time
    free: float = 0.0  # when this side's compute is next free
    done: int = 0  # steps finished


def banded(cm: CostModel, plan: Plan) -> BandedSimulation:
    """The banded replay of `plan` under `cm`, cached on the plan."""
    cache: dict[int, BandedSimulation] = plan.__dict__.setdefault("_banded_sim", {})
    key = id(cm)
    if key not in cache:
        cache[key] = BandedSimulation(cm, plan)
    return cache[key]
