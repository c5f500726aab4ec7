"""Plans: which rows of every operator the robot and the server compute, and the transfers that follow.

A plan gives every node v two contiguous row ranges of its output along the split axis: robot rows
x_M(v) and server rows x_R(v) (half-open, (0, 0) when empty). They may overlap (replicated halo
computation) and their union is the whole output. Graph inputs are held by the robot (robot range full,
server range empty); the model's outputs must end on the robot. Global nodes are computed whole or not
at all on each side. Which rows travel follows exactly from `Graph.input_rows` (see `transfers()`).

Bands (streaming): each side's range of a node is cut into an ordered list of row bands, contiguous and
covering the range (one band when not streamed). A band is one sub-operation: the executor runs it as soon
as the rows it needs are present, and the tiles it produces leave at once, so the server starts before
the whole input has arrived. Transfers are cut at the sender's band boundaries. Global and unsplit nodes
have one band. `plan.robot` / `plan.server` stay the per-node ranges (the hull of the bands).

Codecs: `plan.codecs` maps (node, direction) to the lossless codec that node's tiles travel in that way (chosen
by the cost model, core/codec_choice.py); a transfer not named travels uncompressed (raw, bit-packed 0/1 grids,
sparse with int64 positions), as every tile of a plan made before codecs existed does.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intradp_ros.core.formats import (
    CODEC_DIRECTIONS,
    PLAN_FORMAT,
    PLAN_FORMATS,
    bands_from_json,
    codecs_from_json,
    plan_identity,
)
from intradp_ros.core.graph import Graph, Node, Range
from intradp_ros.core.vocabulary import Direction, Side

ROBOT = Side.ROBOT
SERVER = Side.SERVER
UP = Direction.UP
DOWN = Direction.DOWN
EMPTY: Range = (0, 0)


class PlanError(ValueError):
    """A plan that does not fit its graph or breaks a plan rule; the message says which node and why."""


@dataclass(frozen=True)
class Transfer:
    """Rows [start, stop) of node `node`'s output that cross the link in `direction` (UP or DOWN)."""

    node: int
    direction: str
    start: int
    stop: int
    nbytes: int

    @property
    def sender(self) -> str:
        return ROBOT if self.direction == UP else SERVER

    @property
    def receiver(self) -> str:
        return SERVER if self.direction == UP else ROBOT


def _norm(r: Sequence[int]) -> Range:
    a, b = int(r[0]), int(r[1])
    return (0, 0) if b <= a else (a, b)


def _norm_bands(bands: Mapping[int, Sequence[Sequence[int]]] | None, ranges: list[Range]) -> Bands:
    """Bands as (start, stop) tuples; single bands equal to the range are dropped (the default)."""
    out: Bands = {}
    for v, b in (bands or {}).items():
        norm = [(int(x[0]), int(x[1])) for x in b]
        if len(norm) == 1 and 0 <= int(v) < len(ranges) and norm[0] == ranges[int(v)]:
            continue
        if norm:
            out[int(v)] = norm
    return out


def _union(intervals: list[Range]) -> list[Range]:
    """Merge overlapping or adjacent half-open intervals."""
    out: list[list[int]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _subtract(intervals: list[Range], have: Range) -> list[Range]:
    """Parts of `intervals` outside `have`."""
    out: list[Range] = []
    h0, h1 = have
    for a, b in intervals:
        if h1 <= h0 or b <= h0 or a >= h1:
            out.append((a, b))
            continue
        if a < h0:
            out.append((a, h0))
        if b > h1:
            out.append((h1, b))
    return out


def _needs(g: Graph, mine: Sequence[Range], side: str) -> list[list[Range]]:
    """Per node: the merged row intervals `side` reads when it computes `mine` (on the robot, also the outputs)."""
    need: list[list[Range]] = [[] for _ in g.nodes]
    for n in g.nodes:
        r = mine[n.index]
        if r == EMPTY or n.is_input:
            continue
        for u, rows in zip(n.inputs, g.input_rows(n, r)):
            if rows is not None:
                need[u].append(rows)
    if side == ROBOT:
        for o in g.output_indices:
            need[o].append((0, g.nodes[o].extent))
    return [_union(x) if len(x) > 1 else x for x in need]


def split_range(r: Range, k: int) -> list[Range]:
    """`r` cut into at most `k` contiguous bands of (nearly) equal row counts; [] for an empty range."""
    a, b = r
    if b <= a:
        return []
    k = max(1, min(int(k), b - a))
    cuts = [a + ((b - a) * j) // k for j in range(k + 1)]
    return [(cuts[j], cuts[j + 1]) for j in range(k) if cuts[j + 1] > cuts[j]]


def bandable(n: Any) -> bool:
    """A node whose rows may run in several bands: a local operator with a split axis and more than one row."""
    return n.is_local and n.axis is not None and n.extent > 1 and not n.is_sparse


def _cut_at_bands(t: Transfer, bands: Sequence[Range], bytes_per_row: int) -> list[Transfer]:
    """Transfer `t` cut where the sender's bands end: each piece leaves as soon as its band is computed."""
    if len(bands) <= 1:
        return [t]
    out = []
    for a, b in bands:
        lo, hi = max(a, t.start), min(b, t.stop)
        if hi > lo:
            out.append(Transfer(t.node, t.direction, lo, hi, (hi - lo) * bytes_per_row))
    return out


def wavefront_prefixes(g: Graph, k: int) -> list[list[int]]:
    """Per node, the k row counts of its output computable from the first j/k of every graph input (j = 1..k):
    the input arrives in k equal bands and each node's j-th band ends where its rows stop being computable
    from what has arrived. Exact, from `Graph.input_rows` (monotone in the row count: a bisection per step).
    Cached on the graph per k."""
    cache: dict[int, list[list[int]]] = g.__dict__.setdefault("_wavefront_prefixes", {})
    if k not in cache:
        cache[k] = _wavefront_prefixes(g, k)
    return cache[k]


def _wavefront_prefixes(g: Graph, k: int) -> list[list[int]]:
    pre: list[list[int]] = []
    for n in g.nodes:
        e = n.extent
        if n.is_input:
            pre.append([(e * j) // k for j in range(1, k + 1)] if n.axis is not None else [0] * (k - 1) + [e])
            continue
        if not bandable(n):
            pre.append([0] * (k - 1) + [e])
            continue
        row: list[int] = []
        lo_r = 0
        for j in range(k):
            if j == k - 1:
                row.append(e)
                break

            def fits(r: int, n: Node = n, j: int = j) -> bool:
                for u, need in zip(n.inputs, g.input_rows(n, (0, r))):
                    if need is not None and need[1] > pre[u][j]:
                        return False
                return True

            lo, hi = lo_r, e  # largest r in [lo, hi] with fits(r); fits(lo) holds
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid - 1
            row.append(lo)
            lo_r = lo
        pre.append(row)
    return pre


def transfers_between(g: Graph, robot: Sequence[Range], server: Sequence[Range]) -> list[Transfer]:
    """The tiles that cross the link when the robot computes `robot` and the server `server` (per node),
    in the producer's topological order. Shared by `Plan.transfers` and the cost model, which calls it on
    ranges valid by construction without building a Plan. Raises PlanError when a side needs rows that
    the other side does not compute."""
    needs = {ROBOT: _needs(g, robot, ROBOT), SERVER: _needs(g, server, SERVER)}
    out: list[Transfer] = []
    for n in g.nodes:
        v = n.index
        for side, direction, own, other in ((SERVER, UP, server, robot), (ROBOT, DOWN, robot, server)):
            wanted = needs[side][v]
            if not wanted:
                continue
            for a, b in _subtract(wanted, own[v]):
                oa, ob = other[v]
                if not (oa <= a and b <= ob):
                    raise PlanError(
                        f"node {v} '{n.name}': {side} needs rows [{a}, {b}) that the other side "
                        f"does not compute ({other[v]})"
                    )
                out.append(Transfer(v, direction, a, b, (b - a) * n.bytes_per_row))
    return out


Bands = dict[int, list[Range]]  # node index -> its bands on one side (only nodes with more than one band)
Codecs = dict[tuple[int, str], int]  # (node index, direction) -> codec id of the tiles it sends that way
_JSON_DIRECTION: dict[str, str] = {UP: "up", DOWN: "down"}
_DIRECTION_OF_JSON: dict[str, str] = {v: k for k, v in _JSON_DIRECTION.items()}


def _norm_codecs(codecs: Mapping[tuple[int, str], int] | None) -> Codecs:
    """(node, Direction) -> codec id; a direction may be given as the Direction or its JSON name."""
    out: Codecs = {}
    for (v, d), c in (codecs or {}).items():
        direction = _DIRECTION_OF_JSON.get(str(d), d)
        if direction not in (UP, DOWN):
            raise PlanError(f"codec of node {v}: direction {d!r} is not {UP} or {DOWN}")
        out[(int(v), Direction(direction))] = int(c)
    return out


class Plan:
    """Robot and server row ranges per node of one graph, optionally cut into row bands; validated on construction.

    `robot_bands` / `server_bands` map a node index to its ordered bands on that side (contiguous, covering
    the side's range); nodes not named run as one band.
    """

    def __init__(
        self,
        graph: Graph,
        robot: Sequence[Sequence[int]],
        server: Sequence[Sequence[int]],
        name: str = "custom",
        robot_bands: Mapping[int, Sequence[Sequence[int]]] | None = None,
        server_bands: Mapping[int, Sequence[Sequence[int]]] | None = None,
        codecs: Mapping[tuple[int, str], int] | None = None,
    ) -> None:
        self.graph = graph
        self.robot: list[Range] = [_norm(r) for r in robot]
        self.server: list[Range] = [_norm(r) for r in server]
        self.name = name
        self._bands: dict[str, Bands] = {
            ROBOT: _norm_bands(robot_bands, self.robot),
            SERVER: _norm_bands(server_bands, self.server),
        }
        self._transfers: list[Transfer] | None = None
        self.codecs: Codecs = _norm_codecs(codecs)
        self.validate()
        self.plan_id = plan_identity(
            self.graph.fingerprint, self.robot, self.server, self._bands[ROBOT], self._bands[SERVER], self._codec_json()
        )
        self._check_wire_dtypes()
        self._check_codecs()

    # ---------------------------------------------------------------- codecs
    def codec_for(self, node: int, direction: str) -> int | None:
        """The codec the plan chose for `node`'s tiles sent in `direction` (None: uncompressed, as before codecs)."""
        return self.codecs.get((node, Direction(direction)))

    def with_codecs(self, codecs: Mapping[tuple[int, str], int] | None) -> Plan:
        """This plan (same ranges, bands and name) with `codecs` instead of its own (None or {}: uncompressed)."""
        return Plan(self.graph, self.robot, self.server, self.name, self.band_map(ROBOT), self.band_map(SERVER), codecs)

    def _codec_json(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {d: {} for d in CODEC_DIRECTIONS}
        for (v, d), c in sorted(self.codecs.items()):
            out[_JSON_DIRECTION[d]][v] = c
        return out

    def _check_codecs(self) -> None:
        """Refuse codecs that are unknown, lossy, do not fit the node's kind, or name a transfer the plan lacks."""
        if not self.codecs:
            return
        from intradp_ros.core.codec_choice import applies  # late: plan.py stays light to import
        from intradp_ros.core.codecs import get_codec
        from intradp_ros.core.tile import CODEC_CAMERA, TileError

        sent = {(t.node, t.direction) for t in self.transfers()}
        for (v, d), c in self.codecs.items():
            if not 0 <= v < len(self.graph.nodes):
                raise PlanError(f"plan {self.name}: a codec names node {v}, the graph has {len(self.graph.nodes)}")
            n = self.graph.nodes[v]
            if c == CODEC_CAMERA:  # registered by models/ (it letterboxes); the plan only needs its rule
                if d != UP or not applies(c, n):
                    raise PlanError(f"node {v} '{n.name}': the camera codec carries only a camera-shaped input, up")
                if (v, d) not in sent:
                    raise PlanError(f"node {v} '{n.name}': codec camera for {d}, but plan {self.name} sends none")
                continue
            try:
                codec = get_codec(c)
            except TileError:
                raise PlanError(f"node {v} '{n.name}': unknown codec {c}") from None
            if not codec.lossless or not applies(c, n):
                raise PlanError(f"node {v} '{n.name}': codec {codec.name} is not a lossless codec for its tiles")
            if (v, d) not in sent:
                raise PlanError(f"node {v} '{n.name}': codec {codec.name} for {d}, but plan {self.name} sends none")

    def codec_brief(self) -> str:
        """The chosen codecs counted per direction, e.g. 'up webp; down zstd_shuffle x5' ('raw' when none)."""
        if not self.codecs:
            return "raw"
        from intradp_ros.core.codec_choice import codec_name

        parts = []
        for d in (UP, DOWN):
            names = [codec_name(c) for (_v, dd), c in sorted(self.codecs.items()) if dd == d]
            if names:
                counted = [f"{n} x{names.count(n)}" if names.count(n) > 1 else n for n in dict.fromkeys(names)]
                parts.append(f"{_JSON_DIRECTION[d]} {', '.join(counted)}")
        return "; ".join(parts)

    def codec_summary(self) -> str:
        """The chosen codecs in words ('uncompressed' when none), e.g. 'node 0 'x' up: webp'."""
        if not self.codecs:
            return "uncompressed"
        from intradp_ros.core.codec_choice import codec_name

        return ", ".join(
            f"node {v} '{self.graph.nodes[v].name}' {_JSON_DIRECTION[d]}: {codec_name(c)}"
            for (v, d), c in sorted(self.codecs.items())
        )

    # ---------------------------------------------------------------- bands
    @property
    def is_banded(self) -> bool:
        """True when some node runs in more than one band on some side."""
        return bool(self._bands[ROBOT] or self._bands[SERVER])

    def bands(self, side: str, node: int) -> list[Range]:
        """The ordered bands of `node` on `side` ([] when the side computes none of it)."""
        b = self._bands[side].get(node)
        if b is not None:
            return b
        r = self.ranges(side)[node]
        return [] if r == EMPTY else [r]

    def band_map(self, side: str) -> Bands:
        """Node -> bands for the nodes with more than one band on `side` (a copy)."""
        return {v: list(b) for v, b in self._bands[side].items()}

    def max_bands(self) -> int:
        """The largest number of bands of any node on any side (1 for an unbanded plan)."""
        return max([len(b) for side in (ROBOT, SERVER) for b in self._bands[side].values()] or [1])

    def with_bands(
        self, k: int, side: str | None = None, nodes: Sequence[int] | None = None, aligned: bool = True
    ) -> Plan:
        """This plan with every bandable node's range (on `side`, or both; of `nodes`, or all) cut into up to
        `k` bands; global, unsplit and sparse nodes stay whole; k = 1 removes the bands.

        aligned (default): the graph input is cut into k equal bands and every node's band boundaries follow
        the wavefront (`wavefront_prefixes`): band j needs only the first j input bands, so a side starts
        as soon as they are here. Deep nodes whose receptive field spans the input get fewer bands.
        aligned=False: k equal bands per node."""
        g = self.graph
        chosen = set(range(len(g.nodes))) if nodes is None else set(nodes)
        prefixes = wavefront_prefixes(g, k) if aligned and k > 1 else None
        out: dict[str, Bands] = {}
        for sd in (ROBOT, SERVER):
            bands = self.band_map(sd)
            if side is None or side == sd:
                for n in g.nodes:
                    if n.index in chosen and bandable(n):
                        own = self.ranges(sd)[n.index]
                        if prefixes is None:
                            cut = split_range(own, k)
                        else:
                            inner = sorted({p for p in prefixes[n.index] if own[0] < p < own[1]})
                            edges = [own[0]] + inner + [own[1]]
                            cut = [(edges[j], edges[j + 1]) for j in range(len(edges) - 1)] if own != EMPTY else []
                        if len(cut) > 1:
                            bands[n.index] = cut
                        else:
                            bands.pop(n.index, None)
            out[sd] = bands
        suffix = f"_b{k}" if k > 1 else ""
        base = re.sub(r"_b\d+$", "", self.name)
        return Plan(g, self.robot, self.server, base + suffix, out[ROBOT], out[SERVER], self.codecs)

    def with_random_bands(self, seed: int, max_bands: int = 4) -> Plan:
        """This plan with random bands (1..max_bands, random boundaries) on every bandable node of both sides:
        for tests that banded execution equals local inference whatever the boundaries."""
        rng = random.Random(seed)
        out: dict[str, Bands] = {ROBOT: {}, SERVER: {}}
        for sd in (ROBOT, SERVER):
            for n in self.graph.nodes:
                a, b = self.ranges(sd)[n.index]
                if b - a < 2 or not bandable(n):
                    continue
                k = rng.randint(1, min(max_bands, b - a))
                if k > 1:
                    cuts = sorted(rng.sample(range(a + 1, b), k - 1))
                    edges = [a] + cuts + [b]
                    out[sd][n.index] = [(edges[j], edges[j + 1]) for j in range(k)]
        return Plan(self.graph, self.robot, self.server, f"{self.name}_rb{seed}", out[ROBOT], out[SERVER], self.codecs)

    def renamed(self, name: str) -> Plan:
        """The same plan (same bands, same codecs, same id) under another name."""
        return Plan(self.graph, self.robot, self.server, name, self.band_map(ROBOT), self.band_map(SERVER), self.codecs)

    def _check_wire_dtypes(self) -> None:
        """Refuse, at plan time, a plan that would send a tensor whose dtype the wire cannot carry."""
        from intradp_ros.core.runtime.wire import wire_dtype_name  # late: plan.py stays light to import

        for t in self.transfers():
            n = self.graph.nodes[t.node]
            if wire_dtype_name(n.dtype) is None:
                raise PlanError(
                    f"node {n.index} '{n.name}': plan {self.name} sends its rows {t.direction}, but its dtype "
                    f"{n.dtype} cannot cross the wire; keep this node and its readers on one side"
                )

    # ---------------------------------------------------------------- constructors
    @classmethod
    def device_only(cls, g: Graph) -> Plan:
        """Everything on the robot: no transfer at all."""
        full = [(0, n.extent) for n in g.nodes]
        return cls(g, full, [EMPTY] * len(g.nodes), "device_only")

    @classmethod
    def server_only(cls, g: Graph, bands: int = 1) -> Plan:
        """Everything but the inputs on the server: raw input rows go up, outputs come down.

        bands > 1: the input goes up in `bands` bands and the server runs its local operators band by band
        as the rows arrive (streaming)."""
        robot = [(0, n.extent) if n.is_input else EMPTY for n in g.nodes]
        server = [EMPTY if n.is_input else (0, n.extent) for n in g.nodes]
        plan = cls(g, robot, server, "server_only")
        return plan.with_bands(bands) if bands > 1 else plan

    @classmethod
    def layer_partition(cls, g: Graph, cut: int) -> Plan:
        """Nodes [0, cut) on the robot, nodes [cut, n) on the server (inputs always on the robot).

        cut = 0 is server-only, cut = len(g) device-only; every value in between is one layer partition.
        """
        if not 0 <= cut <= len(g.nodes):
            raise PlanError(f"cut {cut} outside [0, {len(g.nodes)}]")
        robot = [(0, n.extent) if (n.index < cut or n.is_input) else EMPTY for n in g.nodes]
        server = [EMPTY if (n.index < cut or n.is_input) else (0, n.extent) for n in g.nodes]
        return cls(g, robot, server, f"layer_partition_{cut}")

    @classmethod
    def row_split(cls, g: Graph, fraction: float, halo: bool = True) -> Plan:
        """Every local node split at `fraction` of its rows: robot the top part, server the bottom
        part (global nodes on the robot). A simple Intra-DP plan; the scheduler finds better ones."""
        robot, server = [], []
        for n in g.nodes:
            if n.is_input or not n.is_local or n.extent == 1:
                robot.append((0, n.extent))
                server.append(EMPTY)
                continue
            r = min(max(int(round(n.extent * fraction)), 0), n.extent)
            robot.append((0, r))
            server.append((r, n.extent))
        return cls(g, robot, server, f"row_split_{fraction:g}")

    @classmethod
    def halo_split(cls, g: Graph, fraction: float) -> Plan:
        """Robot computes the top `fraction` of every row-split tensor, the server the rest, each with the
        halo rows it needs recomputed on its own side (overlapping ranges), so nothing is exchanged
        mid-way: the server's input rows go up at once, its part of each 'split root' (a tensor a global
        operator or a model output needs whole) comes down. Global work runs on the robot."""
        n_nodes = len(g.nodes)
        robot: list[Range] = [EMPTY] * n_nodes
        server: list[Range] = [EMPTY] * n_nodes
        outputs = set(g.output_indices)

        def hull(a: Range, b: Range) -> Range:
            if a == EMPTY:
                return b
            return (min(a[0], b[0]), max(a[1], b[1]))

        def splittable(n: Any) -> bool:
            return n.is_local and n.axis is not None and not n.is_input

        def split_root(n: Any) -> None:
            cut = min(max(int(round(n.extent * fraction)), 0), n.extent)
            robot[n.index] = hull(robot[n.index], (0, cut)) if cut else robot[n.index]
            if cut < n.extent:
                server[n.index] = hull(server[n.index], (cut, n.extent))

        for n in reversed(g.nodes):
            if n.is_input:
                continue
            if n.index in outputs:
                if splittable(n):
                    split_root(n)
                else:
                    robot[n.index] = (0, n.extent)
            for side_ranges in (robot, server):
                r = side_ranges[n.index]
                if r == EMPTY:
                    continue
                for u, need in zip(n.inputs, g.input_rows(n, r)):
                    if need is None:
                        continue
                    un = g.nodes[u]
                    whole_need = need == (0, un.extent)
                    if whole_need and splittable(un) and not splittable(n) and side_ranges is robot:
                        split_root(un)  # a global op on the robot: split its input's rows
                    else:
                        side_ranges[u] = hull(side_ranges[u], need)
        for n in g.nodes:
            r, s, e = robot[n.index], server[n.index], n.extent
            if n.is_input:
                robot[n.index], server[n.index] = (0, e), EMPTY
                continue
            if r == EMPTY and s == EMPTY:
                robot[n.index] = (0, e)
            elif r == EMPTY or s == EMPTY or not splittable(n):
                robot[n.index], server[n.index] = (
                    ((0, e), EMPTY) if s == EMPTY or not splittable(n) else (EMPTY, (0, e))
                )
            else:
                r, s = (0, r[1]), (s[0], e)
                if r[1] < s[0]:
                    r = (0, s[0])
                robot[n.index], server[n.index] = r, s
        return cls(g, robot, server, f"halo_split_{fraction:g}")

    @classmethod
    def random(cls, g: Graph, seed: int) -> Plan:
        """A random valid plan: per node one side, the other, both, or a split with random overlap."""
        rng = random.Random(seed)
        robot, server = [], []
        for n in g.nodes:
            e = n.extent
            if n.is_input:
                robot.append((0, e))
                server.append(EMPTY)
                continue
            choice = rng.random()
            if not n.is_local or e == 1 or choice < 0.3:
                pick = rng.random()
                if pick < 0.45:
                    robot.append((0, e))
                    server.append(EMPTY)
                elif pick < 0.9:
                    robot.append(EMPTY)
                    server.append((0, e))
                else:
                    robot.append((0, e))
                    server.append((0, e))
                continue
            cut = rng.randint(1, e - 1)
            o1, o2 = rng.randint(0, min(3, e - cut)), rng.randint(0, min(3, cut))
            top, bottom = (0, cut + o1), (cut - o2, e)
            if rng.random() < 0.5:
                robot.append(top)
                server.append(bottom)
            else:
                robot.append(bottom)
                server.append(top)
        return cls(g, robot, server, f"random_{seed}")

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise PlanError naming the first node that breaks a plan rule."""
        g = self.graph
        if len(self.robot) != len(g.nodes) or len(self.server) != len(g.nodes):
            raise PlanError(f"plan has {len(self.robot)}/{len(self.server)} ranges, graph has {len(g.nodes)} nodes")
        outputs = set(g.output_indices)
        for n in g.nodes:
            r, s = self.robot[n.index], self.server[n.index]
            where = f"node {n.index} '{n.name}' ({n.op}, extent {n.extent})"
            for side, x in ((ROBOT, r), (SERVER, s)):
                if x != EMPTY and not (0 <= x[0] < x[1] <= n.extent):
                    raise PlanError(f"{where}: {side} rows {x} outside [0, {n.extent})")
            cover = _union([r, s])
            if cover != [(0, n.extent)]:
                raise PlanError(f"{where}: robot {r} and server {s} do not cover [0, {n.extent}) contiguously")
            if n.is_input and (r != (0, n.extent) or s != EMPTY):
                raise PlanError(f"{where}: inputs are held by the robot (robot full, server empty)")
            if not n.is_local and n.extent > 1:
                for side, x in ((ROBOT, r), (SERVER, s)):
                    if x not in (EMPTY, (0, n.extent)):
                        raise PlanError(f"{where}: global operator ({n.reason}) must run whole on the {side}, got {x}")
            if n.index in outputs and r == EMPTY and s == EMPTY:
                raise PlanError(f"{where}: output node computed nowhere")
        for side in (ROBOT, SERVER):
            for v, bands in self._bands[side].items():
                if not 0 <= v < len(g.nodes):
                    raise PlanError(f"{side} bands name node {v}, the graph has {len(g.nodes)} nodes")
                n = g.nodes[v]
                where = f"node {n.index} '{n.name}' ({n.op}, extent {n.extent})"
                if not bandable(n):
                    raise PlanError(f"{where}: only local split operators run in bands, {side} has {len(bands)}")
                own = self.ranges(side)[v]
                if own == EMPTY:
                    raise PlanError(f"{where}: {side} bands {bands} for a node it does not compute")
                if bands[0][0] != own[0] or bands[-1][1] != own[1]:
                    raise PlanError(f"{where}: {side} bands {bands} do not cover its rows {own}")
                for (a0, b0), (a1, _b1) in zip(bands, bands[1:] + [(own[1], own[1] + 1)]):
                    if not a0 < b0 or b0 != a1:
                        raise PlanError(f"{where}: {side} bands {bands} are not ordered, contiguous and non-empty")

    # ---------------------------------------------------------------- transfers
    def ranges(self, side: str) -> list[Range]:
        return self.robot if side == ROBOT else self.server

    def needs(self, side: str) -> list[list[Range]]:
        """Per node: the merged row intervals `side` reads (for its own computations and, on the robot,
        the model outputs)."""
        return _needs(self.graph, self.ranges(side), side)

    def transfers(self) -> list[Transfer]:
        """Every tile that crosses the link, in the producer's topological order: rows a side reads but
        does not compute itself come from the other side (which computes them: the union is whole)."""
        if self._transfers is None:
            whole = transfers_between(self.graph, self.robot, self.server)
            if self.is_banded:
                g = self.graph
                whole = [
                    piece
                    for t in whole
                    for piece in _cut_at_bands(t, self._bands[t.sender].get(t.node, ()), g.nodes[t.node].bytes_per_row)
                ]
            self._transfers = whole
        return self._transfers

    def server_needs_start(self) -> bool:
        """True when the server has a band it can compute before any tile reaches it: the server half starts on
        a request's first tile, so such a plan must announce the request. Otherwise the server may hold rows the
        robot needs before it can send its first tile (e.g. rows of a transposed convolution made only of padding
        and bias), and both sides would wait for each other. When every server band waits (through its inputs)
        for a received tile, no server tile can precede the robot's first one, which starts the server."""
        g = self.graph
        incoming: dict[int, list[Range]] = {}
        for t in self.transfers():
            if t.direction == UP:
                incoming.setdefault(t.node, []).append((t.start, t.stop))
        fed: dict[int, list[tuple[Range, bool]]] = {}  # node -> its server bands, each: waits for a tile?

        def waits_for_tile(u: int, need: Range | None) -> bool:
            own = fed.get(u, [])
            if need is None:  # reads no row, but runs after u's own bands (as the schedule orders it)
                return any(f for _, f in own)
            lo, hi = need
            return any(a < hi and lo < b for a, b in incoming.get(u, [])) or any(
                f and a < hi and lo < b for (a, b), f in own
            )

        for n in g.nodes:
            if n.is_input:
                continue
            for r in self.bands(SERVER, n.index):
                needs = g.input_rows(n, r)
                fed.setdefault(n.index, []).append((r, any(waits_for_tile(u, nd) for u, nd in zip(n.inputs, needs))))
                if not fed[n.index][-1][1]:
                    return True
        return False

    def bytes(self, direction: str) -> int:
        return sum(t.nbytes for t in self.transfers() if t.direction == direction)

    # ---------------------------------------------------------------- JSON
    def to_json(self) -> str:
        """JSON with the graph fingerprint, so a plan never runs on a graph it was not made for."""
        d: dict[str, Any] = {
            "format": PLAN_FORMAT,
            "name": self.name,
            "graph": self.graph.fingerprint,
            "nodes": len(self.graph.nodes),
            "robot": [list(r) for r in self.robot],
            "server": [list(s) for s in self.server],
        }
        # bands as their inner boundaries, only for nodes with more than one band
        d["bands"] = {
            side: {str(v): [a for a, _ in b[1:]] for v, b in sorted(self._bands[side].items())}
            for side in (ROBOT, SERVER)
        }
        if self.codecs:
            d["codecs"] = {k: {str(v): c for v, c in per.items()} for k, per in self._codec_json().items() if per}
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str, g: Graph) -> Plan:
        """Parse and validate a plan for graph `g`; PlanError if it was made for another graph."""
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as e:
            raise PlanError(f"plan is not valid JSON: {e}") from None
        if not isinstance(d, dict) or d.get("format") not in PLAN_FORMATS:
            raise PlanError(f"not an intradp plan (format one of {PLAN_FORMATS} expected)")
        if d.get("graph") != g.fingerprint:
            raise PlanError(f"plan was made for graph {d.get('graph')!r}, the running graph is {g.fingerprint!r}")
        try:
            robot = [(int(a), int(b)) for a, b in d["robot"]]
            server = [(int(a), int(b)) for a, b in d["server"]]
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError(f"plan ranges malformed: {e}") from None
        bands: dict[str, Bands] = {ROBOT: {}, SERVER: {}}
        raw = d.get("bands", {}) if d["format"] != "intradp_plan/1" else {}
        try:
            for side in (ROBOT, SERVER):
                bands[side] = bands_from_json(robot if side == ROBOT else server, raw.get(side, {}))
        except (AttributeError, TypeError, ValueError, IndexError) as e:
            raise PlanError(f"plan bands malformed: {e}") from None
        try:
            per_direction = codecs_from_json(d.get("codecs")) if d["format"] == PLAN_FORMAT else {}
        except (AttributeError, TypeError, ValueError) as e:
            raise PlanError(f"plan codecs malformed: {e}") from None
        codecs = {(v, _DIRECTION_OF_JSON[k]): c for k, per in per_direction.items() for v, c in per.items()}
        return cls(g, robot, server, str(d.get("name", "custom")), bands[ROBOT], bands[SERVER], codecs)

    def summary(self) -> str:
        up, down = self.bytes(UP), self.bytes(DOWN)
        banded = f", up to {self.max_bands()} bands per node" if self.is_banded else ""
        codecs = f"; codecs: {self.codec_summary()}" if self.codecs else ""
        return (
            f"plan {self.name} (id {self.plan_id}): {len(self.transfers())} transfers, "
            f"{up / 1e6:.3f} MB up, {down / 1e6:.3f} MB down (uncompressed){banded}{codecs}"
        )

    def __repr__(self) -> str:
        return f"Plan({self.name!r}, id={self.plan_id}, nodes={len(self.robot)})"
