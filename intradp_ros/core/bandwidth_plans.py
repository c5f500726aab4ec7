"""What the bandwidth monitor announces per bucket: from a plain bucket grid or from a scheduler plan table file.

The monitor does not need the model's graph: it reads the plan table JSON (`intradp_ros.core.plan_table`,
format "intradp_plan_table/1") only for the bucket edges, each row's plan name and id and the predicted
latency of the Intra-DP plan. The client, which has the graph, loads the same table and refuses it if it was
made for another graph; the PlanSwitch tells it which row (plan_id, plan_name, bucket) to run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intradp_ros.core.bandwidth import validate_grid
from intradp_ros.core.formats import PLAN_TABLE_FORMAT, bands_from_json, codecs_from_json, plan_identity

__all__ = [
    "PlanChoice",
    "PlanChoiceError",
    "choices_from_grid",
    "choices_from_plan_table",
    "load_plan_table_choices",
    "plan_id_of",
]


class PlanChoiceError(ValueError):
    """A plan table file the monitor cannot use."""


@dataclass(frozen=True)
class PlanChoice:
    """One bucket: its lower edge (MB/s) and the plan to announce when it is chosen."""

    bucket_mbyte_per_s: float
    plan_id: int
    plan_name: str
    mode: str = "intradp"
    predicted_latency_s: float = 0.0  # 0 = unknown (plain grid)


def choices_from_grid(grid_mbyte: Sequence[float], mode: str = "intradp") -> list[PlanChoice]:
    """Choices for a bare grid: plan_id is the bucket index, the name says the bucket, latency unknown (0)."""
    edges = validate_grid(grid_mbyte)
    return [PlanChoice(e, i, f"bucket_{e:g}MBps", mode) for i, e in enumerate(edges)]


def plan_id_of(plan: dict[str, Any]) -> int:
    """The id `intradp_ros.core.plan.Plan` gives this plan JSON (graph fingerprint, both range lists, row bands,
    codecs)."""
    bands = plan.get("bands") or {}
    return plan_identity(
        plan["graph"],
        plan["robot"],
        plan["server"],
        bands_from_json(plan["robot"], bands.get("robot", {})),
        bands_from_json(plan["server"], bands.get("server", {})),
        codecs_from_json(plan.get("codecs")),
    )


def choices_from_plan_table(text: str) -> list[PlanChoice]:
    """Choices from plan table JSON text, sorted by bucket (PlanChoiceError when malformed)."""
    try:
        d = json.loads(text)
    except (TypeError, ValueError) as err:
        raise PlanChoiceError(f"plan table is not valid JSON: {err}") from None
    if not isinstance(d, dict) or d.get("format") != PLAN_TABLE_FORMAT:
        raise PlanChoiceError(f"not an intradp plan table (format {PLAN_TABLE_FORMAT!r} expected)")
    rows = d.get("rows")
    if not isinstance(rows, list) or not rows:
        raise PlanChoiceError("plan table has no rows")
    out = []
    try:
        for i, row in enumerate(rows):
            plan = row["plan"]
            bucket = float(row["bandwidth_MBps"])
            latency = float(row.get("predictions", {}).get("intradp", {}).get("latency_s", 0.0))
            if not math.isfinite(latency) or latency < 0:
                raise ValueError(f"row {i}: predicted latency {latency!r}")
            out.append(PlanChoice(bucket, plan_id_of(plan), str(plan.get("name", "")), "intradp", latency))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise PlanChoiceError(f"plan table malformed: {err!r}") from None
    out.sort(key=lambda c: c.bucket_mbyte_per_s)
    try:
        validate_grid([c.bucket_mbyte_per_s for c in out])
    except ValueError as err:
        raise PlanChoiceError(f"plan table buckets: {err}") from None
    return out


def load_plan_table_choices(path: str | Path) -> list[PlanChoice]:
    """`choices_from_plan_table` of a file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise PlanChoiceError(f"cannot read plan table {path}: {err}") from None
    return choices_from_plan_table(text)


def describe(choices: Sequence[Any]) -> str:
    """'N buckets a..b MB/s' for logs."""
    return f"{len(choices)} buckets {choices[0].bucket_mbyte_per_s:g}..{choices[-1].bucket_mbyte_per_s:g} MB/s"
