"""Unit tests of the monitor's bucket -> plan choices (plain grid and scheduler plan table JSON)."""

import json

import pytest
import torch

from intradp_ros.core import capture
from intradp_ros.core.bandwidth import bucket_grid
from intradp_ros.core.bandwidth_plans import (
    PlanChoiceError,
    choices_from_grid,
    choices_from_plan_table,
    load_plan_table_choices,
)
from intradp_ros.core.plan import Plan


def tiny_graph():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3, padding=1)
    )
    return capture(model.eval(), torch.zeros(1, 3, 16, 16))


def table_json(rows) -> str:
    return json.dumps({"format": "intradp_plan_table/1", "graph": "g", "meta": {}, "rows": rows})


def test_grid_choices_use_the_bucket_index() -> None:
    choices = choices_from_grid(bucket_grid())
    assert len(choices) == 51
    assert (choices[4].bucket_mbyte_per_s, choices[4].plan_id, choices[4].plan_name) == (4.0, 4, "bucket_4MBps")


def test_plan_table_choices_carry_the_plan_identity(tmp_path) -> None:
    g = tiny_graph()
    plans = [Plan.device_only(g), Plan.row_split(g, 0.5), Plan.server_only(g)]
    rows = [
        {
            "bandwidth_MBps": bw,
            "source": "solver",
            "plan": json.loads(p.to_json()),
            "predictions": {"intradp": {"latency_s": lat}},
        }
        for bw, p, lat in zip([10.0, 0.5, 2.0], plans, [0.1, 0.9, 0.4])
    ]
    path = tmp_path / "table.json"
    path.write_text(table_json(rows))
    choices = load_plan_table_choices(path)
    assert [c.bucket_mbyte_per_s for c in choices] == [0.5, 2.0, 10.0]  # sorted by bucket
    assert [c.plan_id for c in choices] == [plans[1].plan_id, plans[2].plan_id, plans[0].plan_id]
    assert [c.plan_name for c in choices] == [plans[1].name, plans[2].name, plans[0].name]
    assert [c.predicted_latency_s for c in choices] == [0.9, 0.4, 0.1]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"format": "other"}),
        table_json([]),
        table_json([{"bandwidth_MBps": 1.0}]),
        table_json([{"bandwidth_MBps": "x", "plan": {"graph": "g", "robot": [], "server": []}}]),
        table_json(
            [{"bandwidth_MBps": 1.0, "plan": {"graph": "g", "robot": [], "server": []}}] * 2
        ),  # duplicate bucket
    ],
)
def test_malformed_tables_are_refused(text: str) -> None:
    with pytest.raises(PlanChoiceError):
        choices_from_plan_table(text)


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(PlanChoiceError, match="cannot read"):
        load_plan_table_choices(tmp_path / "none.json")
