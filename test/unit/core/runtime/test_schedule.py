"""The schedule: one step per band, dependencies on exactly the bands and tiles holding the rows a band reads,
each tile sent by the band that produces it, wavefront priorities; printable."""

from __future__ import annotations

import torch
import torch.nn as nn

from intradp_ros.core import Plan, capture
from intradp_ros.core.plan import SERVER, UP
from intradp_ros.core.runtime.schedule import build_schedule


def _graph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1)).eval()
    return capture(model, torch.randn(1, 3, 32, 8))


def test_steps_are_bands_with_exact_sources() -> None:
    g = _graph()
    plan = Plan.server_only(g, bands=4)
    sched = build_schedule(plan, SERVER)
    assert len(sched.steps) == sum(len(plan.bands(SERVER, n.index)) for n in g.nodes)
    assert sched.expected == {(t.node, t.start, t.stop) for t in plan.transfers() if t.direction == UP}
    index = {(st.node.index, st.rows): i for i, st in enumerate(sched.steps)}
    for st in sched.steps:
        for u, need in zip(st.node.inputs, st.needs):
            if need is None:
                continue
            lo, hi = need
            own = [sched.steps[d].rows for d in st.deps if sched.steps[d].node.index == u]
            got = [(a, b) for _, a, b in st.waits] + own
            covered = sorted(r for r in got if r[0] < hi and lo < r[1])
            assert covered and covered[0][0] <= lo and covered[-1][1] >= hi, (st.node.index, st.rows)
            for a, b in covered[:-1]:
                assert (a, b) in [r for r in got], "sources are contiguous pieces"
            assert all(r[0] < hi and lo < r[1] for r in got), "no source the band does not read"
        for d in st.deps:
            assert index[(sched.steps[d].node.index, sched.steps[d].rows)] < index[(st.node.index, st.rows)]


def test_wavefront_priorities_and_description() -> None:
    g = _graph()
    sched = build_schedule(Plan.server_only(g, bands=4), SERVER)
    first = [st for st in sched.steps if st.band == 0]
    later = [st for st in sched.steps if st.band > 0]
    assert max(s.priority for s in first) < min(s.priority for s in later), "every first band before any second"
    text = sched.describe()
    assert (
        text.startswith("schedule (server):") and "band 2/4" in text and len(text.splitlines()) == len(sched.steps) + 1
    )


def test_robot_sends_the_input_band_by_band_first_band_first() -> None:
    g = _graph()
    sched = build_schedule(Plan.server_only(g, bands=4), "robot")
    sends = [s for st in sorted(sched.steps, key=lambda s: s.priority) for s in st.sends]
    assert sends == [(0, 8), (8, 16), (16, 24), (24, 32)]
