"""formats: one plan id for Plan and for the monitor's reading of plan-table JSON; format tags checked."""

from __future__ import annotations

import json

from intradp_ros.core.bandwidth_plans import plan_id_of
from intradp_ros.core.formats import PLAN_FORMAT, check_format, plan_id
from intradp_ros.core.plan import Plan


def test_plan_id_is_the_plans_and_the_monitors(graph_and_input) -> None:
    _m, g, _x = graph_and_input
    for plan in (Plan.device_only(g), Plan.server_only(g), Plan.row_split(g, 0.5)):
        d = json.loads(plan.to_json())
        assert d["format"] == PLAN_FORMAT
        assert plan_id(g.fingerprint, plan.robot, plan.server) == plan.plan_id == plan_id_of(d)
    assert Plan.device_only(g).plan_id != Plan.server_only(g).plan_id


def test_check_format() -> None:
    assert check_format({"format": PLAN_FORMAT}, PLAN_FORMAT, "plan") == (True, "")
    ok, why = check_format({"format": "intradp_plan/0"}, PLAN_FORMAT, "plan")
    assert not ok and "intradp_plan/0" in why
    assert not check_format([], PLAN_FORMAT, "plan")[0]
