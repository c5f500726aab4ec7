"""The schedule: what one side runs for a plan, as printable data.

A step is one band (sub-operation) of one node: the rows it computes, the input rows it reads, the steps
of this side whose bands it reads (`deps`), the received tiles it reads (`waits`), the tiles it sends the
moment it exists (`sends`). The stage runs a step as soon as its deps are done and its tiles are here,
lowest `priority` first: the band's position in its node (a wavefront: the first band of every node
before the second of any), then topological order. Built once per plan and side, cached on the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from intradp_ros.core.graph import Node, Range
from intradp_ros.core.plan import DOWN, EMPTY, ROBOT, SERVER, UP, Plan, PlanError
from intradp_ros.core.runtime.wire import TileKey

# Producers whose output is a fresh tensor (never a view or alias of another activation): an in-place
# consumer may overwrite it when it is that output's only reader.
FRESH_OPS = {
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "batch_norm",
    "layer_norm",
    "linear",
    "add",
    "sub",
    "mul",
    "div",
    "truediv",
    "cat",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "interpolate",
    "matmul",
    "relu",
    "silu",
    "gelu",
    "hardswish",
    "sigmoid",
    "hardsigmoid",
    "relu6",
    "leaky_relu",
}


@dataclass
class Step:
    """One band of one node on one side."""

    node: Node
    rows: Range
    needs: list[Range | None]
    sends: list[Range]
    free: list[int] = field(default_factory=list)  # kept for older readers: nodes released after this step
    inplace: bool = False
    local_whole: bool = False  # full range and every input held whole on this side: the plain call applies
    deps: list[int] = field(default_factory=list)  # steps of this side whose bands this step reads
    waits: list[TileKey] = field(default_factory=list)  # received tiles this step reads
    priority: tuple[float, int] = (0.0, 0)
    band: int = 0
    bands: int = 1


@dataclass
class Schedule:
    """What one side does for a plan: steps (topological order), the tiles it expects to receive, the nodes
    it keeps to the end (the robot's outputs), how many steps read each node (to release it after the last)."""

    side: str
    steps: list[Step]
    expected: set[TileKey]
    keep: set[int]
    readers: dict[int, int] = field(default_factory=dict)
    output_deps: list[int] = field(default_factory=list)
    output_waits: list[TileKey] = field(default_factory=list)

    def describe(self) -> str:
        """One line per step: node, band, rows, what it waits for, what it sends."""
        lines = [f"schedule ({self.side}): {len(self.steps)} steps, {len(self.expected)} tiles expected"]
        for i, st in enumerate(self.steps):
            n = st.node
            lines.append(
                f"  {i:4d} node {n.index:4d} {n.op:<12s} band {st.band + 1}/{st.bands} rows {st.rows}"
                f" deps {st.deps} waits {[list(k) for k in st.waits]} sends {st.sends}"
                + (" inplace" if st.inplace else "")
            )
        return "\n".join(lines)


def _overlapping(bands: list[tuple[int, Range]], lo: int, hi: int) -> list[int]:
    return [i for i, (a, b) in bands if a < hi and lo < b]


def build_schedule(plan: Plan, side: str) -> Schedule:
    g = plan.graph
    mine = plan.ranges(side)
    out_dir = UP if side == ROBOT else DOWN
    sends: dict[int, list[Range]] = {}
    expected: set[TileKey] = set()
    incoming: dict[int, list[TileKey]] = {}
    for t in plan.transfers():
        if t.direction == out_dir:
            sends.setdefault(t.node, []).append((t.start, t.stop))
        else:
            expected.add((t.node, t.start, t.stop))
            incoming.setdefault(t.node, []).append((t.node, t.start, t.stop))
    keep = set(g.output_indices) if side == ROBOT else set()
    steps: list[Step] = []
    band_steps: dict[int, list[tuple[int, Range]]] = {}  # node -> (step index, band rows)
    readers: dict[int, int] = {}

    def sources(u: int, lo: int, hi: int) -> tuple[list[int], list[TileKey]]:
        """Steps of this side and received tiles that hold rows [lo, hi) of node u."""
        own = mine[u]
        deps: list[int] = []
        if own != EMPTY and own[0] < hi and lo < own[1]:
            deps = _overlapping(band_steps.get(u, []), max(lo, own[0]), min(hi, own[1]))
        waits = [k for k in incoming.get(u, []) if k[1] < hi and lo < k[2]]
        return deps, waits

    for n in g.nodes:
        bands = plan.bands(side, n.index)
        for j, r in enumerate(bands):
            needs: list[Range | None] = [] if n.is_input else g.input_rows(n, r)
            deps: list[int] = []
            waits: list[TileKey] = []
            for u, need in zip(n.inputs, needs):
                w: list[TileKey] = []
                if need is None:  # reads no row; still after u's own bands (topological order, release after use)
                    d = [i for i, _ in band_steps.get(u, [])]
                else:
                    d, w = sources(u, need[0], need[1])
                deps += [x for x in d if x not in deps]
                waits += [x for x in w if x not in waits]
            for u in set(n.inputs):
                readers[u] = readers.get(u, 0) + 1
            my_sends = [(s, e) for s, e in sends.get(n.index, []) if r[0] <= s and e <= r[1]]
            st = Step(n, r, needs, my_sends, deps=deps, waits=waits, band=j, bands=len(bands))
            st.priority = (j / len(bands), len(steps))
            band_steps.setdefault(n.index, []).append((len(steps), r))
            steps.append(st)
    output_deps: list[int] = []
    output_waits: list[TileKey] = []
    if side == ROBOT:
        for o in g.output_indices:
            d, w = sources(o, 0, g.nodes[o].extent)
            output_deps += d
            output_waits += w
    whole_single = {
        st.node.index for st in steps if st.rows == (0, st.node.extent) and st.bands == 1
    }  # held whole in one piece on this side
    for st in steps:
        st.local_whole = (
            not st.node.is_input and st.rows == (0, st.node.extent) and all(u in whole_single for u in st.node.inputs)
        )
    last_use: dict[int, int] = {}
    for i, st in enumerate(steps):
        for u in st.node.inputs:
            last_use[u] = i
    for u, i in last_use.items():
        if u not in keep:
            steps[i].free.append(u)
    for st in steps:
        n = st.node
        rmap = n.rowmap
        if n.is_input or rmap.inplace_call is None or st.rows != (0, n.extent) or not rmap.whole_ok:
            continue
        u = n.inputs[0]
        un = g.nodes[u]
        st.inplace = (
            st.local_whole
            and n.inputs.count(u) == 1
            and g.consumers(u) == [n.index]
            and u not in keep
            and un.op in FRESH_OPS
            and u in whole_single
            and u not in sends
            and mine[u] == (0, un.extent)
            and u not in incoming
            and u in st.free
        )
    return Schedule(side, steps, expected, keep, readers, output_deps, output_waits)


def plan_schedule(plan: Plan, side: str) -> Schedule:
    """The schedule of `plan` on `side`, built once and cached on the plan."""
    cache: dict[str, Schedule] = plan.__dict__.setdefault("_schedules", {})
    if side not in cache:
        cache[side] = build_schedule(plan, side)
    return cache[side]


def check_progress(plan: Plan) -> None:
    """Raise PlanError when the two sides' schedules of `plan` cannot both finish: a step waits for a tile that
    is never sent, or that is sent only after a step which itself waits for it (the server half starts only on a
    request's first tile or on FLAG_START). Checked once per plan, so such a request fails at once, naming the
    blocked step and its missing tiles, instead of after the tile timeout. Cached on the plan."""
    cache = plan.__dict__.setdefault("_schedules", {})
    if "progress" in cache:
        return
    sides: dict[str, Schedule] = {side: plan_schedule(plan, side) for side in (ROBOT, SERVER)}
    done: dict[str, set[int]] = {side: set() for side in sides}
    sent: set[TileKey] = set()
    server_started = plan.server_needs_start()
    # readiness as the stage keeps it: unmet deps and tiles per step, who waits on each step and each tile
    missing: dict[str, list[int]] = {}
    dependents: dict[str, list[list[int]]] = {}
    readers: dict[TileKey, list[tuple[str, int]]] = {}
    ready: list[tuple[str, int]] = []
    for side, sched in sides.items():
        missing[side] = [len(st.deps) + len(st.waits) for st in sched.steps]
        dependents[side] = [[] for _ in sched.steps]
        for i, st in enumerate(sched.steps):
            for d in st.deps:
                dependents[side][d].append(i)
            for w in st.waits:
                readers.setdefault(w, []).append((side, i))
        if side == ROBOT or server_started:
            ready += [(side, i) for i, m in enumerate(missing[side]) if m == 0]

    def satisfy(side: str, i: int) -> None:
        missing[side][i] -= 1
        if missing[side][i] == 0 and (side == ROBOT or server_started):
            ready.append((side, i))

    while ready:
        at, i = ready.pop()
        st = sides[at].steps[i]
        done[at].add(i)
        for d in dependents[at][i]:
            satisfy(at, d)
        for a, b in st.sends:
            key = (st.node.index, a, b)
            if key in sent:
                continue
            sent.add(key)
            if at == ROBOT and not server_started:  # the robot's first tile starts the server half
                server_started = True
                ready += [(SERVER, j) for j, m in enumerate(missing[SERVER]) if m == 0]
            for r_side, r in readers.get(key, []):
                satisfy(r_side, r)
    never_started = (
        " (the server half never starts: no tile reaches it first and no start is announced)"
        if sides[SERVER].steps and not server_started
        else ""
    )
    for side, sched in sides.items():
        for i, st in enumerate(sched.steps):
            if i in done[side]:
                continue
            lacking = [list(k) for k in st.waits if k not in sent]
            why = (
                f"it waits for tiles (node, start, stop) {lacking} that are never sent"
                if lacking
                else "a band of this side it reads never runs"
            )
            raise PlanError(
                f"plan {plan.name!r} cannot finish: {side} node {st.node.index} '{st.node.name}' rows {st.rows}"
                f" band {st.band + 1}/{st.bands}: {why}{never_started}"
            )
    robot = sides[ROBOT]
    missing_out = [list(k) for k in robot.output_waits if k not in sent]
    if missing_out:
        raise PlanError(f"plan {plan.name!r} cannot finish: the robot's outputs wait for tiles {missing_out}")
    cache["progress"] = True
