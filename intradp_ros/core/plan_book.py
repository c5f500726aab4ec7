"""The plan book of a session: for every mode (intradp, device_only, server_only, dsccs, spso_ga) and
bandwidth bucket, the plan to run, so all five systems run through the same client and server code.

The server builds it once per (graph, client profile, server profile, grid, deadline, solver settings) from
the scheduler's plan table (Intra-DP rows) plus the baselines (DSCCS-style latency-optimal and
SPSO-GA-style energy-optimal layer partitions per bucket), registers every plan with its ServerHalf and sends
the book to the client inside the Handshake's `plan_table_json`: it is the plan table JSON (format
"intradp_plan_table/1", so the bandwidth monitor reads it unchanged) with two extra keys, "book_plans"
(distinct plans) and "book_modes" ({mode: [[bucket_MBps, plan index], ...]}). The book is cached on disk.

Codecs (`codecs` policy): "intradp" (default) lets the Intra-DP solve choose lossless codecs per transfer where the
profiles carry codec profiles, the baselines send raw tensors as the seeds publish them; "all" gives every mode's
plan, per bucket, the codecs that pay there; "raw" drops the codec profiles: every system as published.

The cache file is named by the graph, a context key (grid, power model, solver settings, deadline) and the
exact key (the two profiles too). A client's profile is calibrated to whole frames at every start and its factor
moves run to run (measured 1.017 vs 1.143), so with `tolerance` > 0 a cached book of the same graph and context
whose robot and server profiles' device-only totals are both within that relative tolerance is reused instead
of solving again (the plans are optimal for profiles a few percent apart, well inside the cost model's error).
Bounded: after each solve only the newest MAX_CACHED_PER_GRAPH books and plan tables of the graph are kept (a
client sending ever-different profiles cannot fill the disk); the server also rate-limits and queues solves
(models/plan_book_worker.SolveCoalescer).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intradp_ros.core.cache import default_cache_dir, write_atomic
from intradp_ros.core.formats import PLAN_BOOK_KEY_TAG
from intradp_ros.core.graph import Graph
from intradp_ros.core.plan import Plan, PlanError
from intradp_ros.core.plan_table import PlanTable, PlanTableError, cached_table
from intradp_ros.core.power import PowerModel
from intradp_ros.core.profiler import Profile
from intradp_ros.core.solver import SolverConfig
from intradp_ros.core.vocabulary import MODES, Mode

MB = 1e6
MAX_CACHED_PER_GRAPH = 32  # plan books (and plan tables) kept on disk per graph; the oldest go first
CODEC_POLICIES = ("intradp", "all", "raw")  # who gets lossless codecs: Intra-DP only, every mode, nobody


def check_codec_policy(policy: str) -> str:
    """`policy` if it is one of CODEC_POLICIES (PlanBookError otherwise)."""
    if policy not in CODEC_POLICIES:
        raise PlanBookError(f"codec policy {policy!r}: choose one of {', '.join(CODEC_POLICIES)}")
    return policy


def policy_profiles(policy: str, robot: Profile, server: Profile) -> tuple[Profile, Profile]:
    """The profiles a book of `policy` is solved from: without codec profiles for "raw"."""
    if check_codec_policy(policy) == "raw":
        return robot.with_codecs([]), server.with_codecs([])
    return robot, server


class PlanBookError(ValueError):
    """A book that is malformed, made for another graph, or asked for an unknown mode."""


def validate_mode(mode: str) -> Mode:
    """The Mode spelled `mode` (PlanBookError listing the valid modes otherwise)."""
    try:
        return Mode.parse(mode)
    except ValueError as e:
        raise PlanBookError(str(e)) from None


@dataclass
class PlanBook:
    """Plans per mode and bucket (ascending bucket lower edges in MB/s) for one graph."""

    graph: Graph
    table: PlanTable
    plans: list[Plan]
    modes: dict[str, list[tuple[float, int]]]

    def plan_for(self, mode: str, bandwidth_MBps: float | None) -> Plan:
        """The plan of `mode` for a bandwidth (its bucket: the largest edge not above it; the lowest if none).
        With no bandwidth known yet, the middle bucket of the grid."""
        rows = self.modes[validate_mode(mode)]
        if bandwidth_MBps is None:
            return self.plans[rows[len(rows) // 2][1]]
        below = [i for b, i in rows if b <= bandwidth_MBps + 1e-9]
        return self.plans[below[-1] if below else rows[0][1]]

    def by_id(self) -> dict[int, Plan]:
        return {p.plan_id: p for p in self.plans}

    @property
    def buckets(self) -> list[float]:
        return [b for b, _ in self.modes[Mode.INTRADP]]

    def to_json(self, meta: dict[str, Any] | None = None) -> str:
        d = json.loads(self.table.to_json())
        if meta:
            d["book_meta"] = meta
        d["book_plans"] = [json.loads(p.to_json()) for p in self.plans]
        d["book_modes"] = {m: [[b, i] for b, i in rows] for m, rows in self.modes.items()}
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str, g: Graph) -> PlanBook:
        """Parse a book for graph `g` (PlanBookError when malformed or made for another graph)."""
        try:
            table = PlanTable.from_json(text, g)
            d = json.loads(text)
            plans = [Plan.from_json(json.dumps(p), g) for p in d["book_plans"]]
            modes = {str(m): [(float(b), int(i)) for b, i in rows] for m, rows in d["book_modes"].items()}
        except (PlanTableError, PlanError) as e:
            raise PlanBookError(str(e)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise PlanBookError(f"plan book malformed: {e!r}") from None
        missing = [m for m in MODES if not modes.get(m)]
        if missing:
            raise PlanBookError(f"plan book lacks modes {missing}")
        for m, rows in modes.items():
            if any(not 0 <= i < len(plans) for _, i in rows):
                raise PlanBookError(f"plan book mode {m} points outside its {len(plans)} plans")
            modes[m] = sorted(rows)
        return cls(g, table, plans, modes)


def _add(plans: list[Plan], index: dict[int, int], plan: Plan) -> int:
    if plan.plan_id not in index:
        index[plan.plan_id] = len(plans)
        plans.append(plan)
    return index[plan.plan_id]


def context_key(
    g: Graph, grid: Sequence[float], power: PowerModel, cfg: SolverConfig, deadline_s: float, codecs: str = "intradp"
) -> str:
    """Everything a book depends on except the two profiles."""
    ident: list[Any] = [
        g.fingerprint, sorted(float(b) for b in grid), power.to_dict(), repr(cfg), deadline_s, PLAN_BOOK_KEY_TAG
    ]  # fmt: skip
    if codecs != "intradp":  # the default policy keeps the keys books had before policies existed
        ident.append(f"codecs={codecs}")
    text = json.dumps(ident)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def profiles_close(a: tuple[float, float], b: tuple[float, float], tolerance: float) -> bool:
    """True when both (robot, server) device-only totals differ by at most `tolerance` (relative)."""
    if tolerance <= 0:
        return False
    limit = math.log1p(tolerance)
    return all(x > 0 and y > 0 and abs(math.log(x / y)) <= limit for x, y in zip(a, b))


def profile_totals(robot: Profile, server: Profile) -> tuple[float, float]:
    return (robot.device_only_s(), server.device_only_s())


def camera_ratio(robot: Profile) -> float:
    """The robot's camera passthrough ratio its profile offers (0: none): books with and without it differ."""
    from intradp_ros.core.codec_choice import camera_entry  # late: imports the codec registry

    entry = camera_entry(robot.codecs)
    return float(entry.ratio) if entry is not None else 0.0


def cameras_close(a: float, b: float, tolerance: float) -> bool:
    """True when both books offer no camera file, or both do at ratios within `tolerance` (relative)."""
    if a <= 0 or b <= 0:
        return a <= 0 and b <= 0
    return abs(math.log(a / b)) <= math.log1p(tolerance)


def codec_ratios(robot: Profile, server: Profile) -> dict[str, float]:
    """Every codec's payload ratio the two profiles price, by side, tile kind and codec ("robot:image:delta_zstd"):
    a book solved for other ratios chooses other codecs (a torchvision client that profiled its codecs on a random
    example priced images at ratio 1.0, and its book, reused as "close" once its codecs were profiled on a
    photograph at 0.68, kept sending raw pixels)."""
    return {
        f"{side}:{c.kind_name}:{c.name}": float(c.ratio)
        for side, prof in (("robot", robot), ("server", server))
        for c in prof.codecs
    }


def codecs_close(a: Mapping[str, float], b: Mapping[str, float], tolerance: float) -> bool:
    """True when every codec both price has ratios within `tolerance` (relative). A codec only one prices is not
    compared: the set follows the code's candidates and the graph's tile kinds, not the robot (and a book written by
    hand, e.g. a test's forced book, may record none)."""
    limit = math.log1p(tolerance)
    return all(a[k] > 0 and b[k] > 0 and abs(math.log(a[k] / b[k])) <= limit for k in set(a) & set(b))


def find_close_book(
    folder: Path,
    g: Graph,
    context: str,
    totals: tuple[float, float],
    tolerance: float,
    camera: float = 0.0,
    codecs: Mapping[str, float] | None = None,
) -> tuple[PlanBook, Path] | None:
    """The cached book of this graph and context whose profile totals are closest to `totals`, if within
    `tolerance`, that prices the camera file as `camera` does (its ratio within `tolerance`; 0: none) and the
    codecs both price at ratios within `tolerance` (`codec_ratios`; a book stored without the record, as before
    it existed, is not close: its codec ratios are unknown)."""
    best: tuple[float, Path, dict[str, Any]] | None = None
    for path in (folder / "plan_books").glob(f"{g.fingerprint}_{context}_*.json"):
        try:
            d = json.loads(path.read_text())
            cached = (float(d["book_meta"]["robot_s"]), float(d["book_meta"]["server_s"]))
            cached_camera = float(d["book_meta"].get("camera_ratio", 0.0))
            cached_codecs = d["book_meta"].get("codec_ratios")
            if codecs is not None and not (
                isinstance(cached_codecs, dict)
                and codecs_close({k: float(v) for k, v in cached_codecs.items()}, codecs, tolerance)
            ):
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if profiles_close(cached, totals, tolerance) and cameras_close(cached_camera, camera, tolerance):
            dist = max(abs(math.log(x / y)) for x, y in zip(cached, totals))
            if best is None or dist < best[0]:
                best = (dist, path, d)
    if best is None:
        return None
    try:
        return PlanBook.from_json(json.dumps(best[2]), g), best[1]
    except PlanBookError:
        return None


@dataclass(frozen=True)
class BookKeys:
    """Where a book is cached: `context` (all but the profiles), `key` (exact), the file, the profile totals."""

    context: str
    key: str
    path: Path
    totals: tuple[float, float]
    folder: Path
    camera: float = 0.0  # the robot's camera passthrough ratio (0: none)
    codecs: Mapping[str, float] = field(default_factory=dict)  # codec_ratios of the two profiles


def book_keys(
    g: Graph,
    robot: Profile,
    server: Profile,
    grid_MBps: Sequence[float],
    power: PowerModel | None = None,
    config: SolverConfig | None = None,
    deadline_s: float = 1.0,
    cache_dir: Path | None = None,
    codecs: str = "intradp",
) -> BookKeys:
    """Cache keys of a book (profiles as `policy_profiles` makes them for the codec policy)."""
    robot, server = policy_profiles(codecs, robot, server)
    grid = sorted(float(b) for b in grid_MBps)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    context = context_key(g, grid, power or PowerModel(), config or SolverConfig(), deadline_s, codecs)
    key = hashlib.sha256(json.dumps([context, robot.to_json(), server.to_json()]).encode()).hexdigest()[:24]
    path = folder / "plan_books" / f"{g.fingerprint}_{context}_{key}.json"
    return BookKeys(
        context, key, path, profile_totals(robot, server), folder, camera_ratio(robot), codec_ratios(robot, server)
    )


def lookup_plan_book(g: Graph, keys: BookKeys, tolerance: float = 0.0) -> PlanBook | None:
    """The cached book for exactly these profiles, else (tolerance > 0) the closest one within tolerance."""
    if keys.path.is_file():
        try:
            return PlanBook.from_json(keys.path.read_text(), g)
        except PlanBookError:
            pass
    close = find_close_book(keys.folder, g, keys.context, keys.totals, tolerance, keys.camera, keys.codecs)
    return None if close is None else close[0]


def build_plan_book(
    g: Graph,
    robot: Profile,
    server: Profile,
    grid_MBps: Sequence[float],
    power: PowerModel | None = None,
    config: SolverConfig | None = None,
    deadline_s: float = 1.0,
    cache_dir: Path | None = None,
    tolerance: float = 0.0,
    progress: Callable[[int, int, str], None] | None = None,
    codecs: str = "intradp",
) -> tuple[PlanBook, bool]:
    """(book, True if it came from the disk cache: the exact profiles' book, or with `tolerance` a close one).
    The Intra-DP table comes from the scheduler's cache; `progress(done, total, text)` follows its solve.
    `codecs`: the codec policy (CODEC_POLICIES, module docstring)."""
    from intradp_ros.core.baselines import LayerPartitions, dsccs_plan, spso_plan
    from intradp_ros.core.cost_model import CostModel

    grid = sorted(float(b) for b in grid_MBps)
    power = power or PowerModel()
    cfg = config or SolverConfig()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    keys = book_keys(g, robot, server, grid, power, cfg, deadline_s, folder, codecs)
    cached = lookup_plan_book(g, keys, tolerance)
    if cached is not None:
        return cached, True
    robot, server = policy_profiles(codecs, robot, server)
    path, totals = keys.path, keys.totals
    table, _ = cached_table(g, robot, server, grid, power, cfg, deadline_s, cache_dir=folder, progress=progress)
    plans: list[Plan] = []
    index: dict[int, int] = {}
    modes: dict[str, list[tuple[float, int]]] = {m: [] for m in MODES}
    cm = CostModel(g, robot, server, power)
    lp = LayerPartitions(g, cm)
    dev = _add(plans, index, Plan.device_only(g))
    srv = _add(plans, index, Plan.server_only(g))

    def coded(plan: Plan, b: float) -> int:
        """The plan as the policy sends it at bucket `b`: with the codecs that pay there under "all"."""
        return _add(plans, index, cm.with_codecs(plan, b * MB) if codecs == "all" else plan)

    for row in table.rows:
        b = row.bandwidth_MBps
        modes[Mode.INTRADP].append((b, _add(plans, index, row.plan)))
        modes[Mode.DEVICE_ONLY].append((b, dev))
        modes[Mode.SERVER_ONLY].append((b, coded(plans[srv], b)))
        modes[Mode.DSCCS].append((b, coded(dsccs_plan(g, cm, b * MB), b)))
        modes[Mode.SPSO_GA].append((b, coded(spso_plan(g, cm, b * MB, deadline_s, lp), b)))
    book = PlanBook(g, table, plans, modes)
    meta = {"robot_s": totals[0], "server_s": totals[1], "camera_ratio": keys.camera, "codec_ratios": dict(keys.codecs)}
    write_atomic(path, book.to_json(meta))
    for sub in ("plan_books", "plan_tables"):
        prune_cache(folder / sub, f"{g.fingerprint}_*.json", MAX_CACHED_PER_GRAPH)
    return book, False


def prune_cache(folder: Path, pattern: str, keep: int) -> list[Path]:
    """Delete all but the `keep` newest (by modification time) files of `folder` matching `pattern`; the removed."""
    try:
        files = sorted(folder.glob(pattern), key=lambda f: f.stat().st_mtime, reverse=True)
    except OSError:
        return []
    removed = []
    for f in files[max(0, keep) :]:
        try:
            f.unlink()
            removed.append(f)
        except OSError:
            pass
    return removed


def parse_grid(text: str) -> list[float]:
    """'1,2,5' or 'lo:hi:step' (MB/s) -> ascending bucket edges."""
    from intradp_ros.core.plan_table import make_grid

    text = str(text).strip()
    try:
        if ":" in text:
            lo, hi, step = (float(v) for v in text.split(":"))
            grid = make_grid(lo, hi, step)
        else:
            grid = sorted({float(v) for v in text.replace(" ", "").split(",") if v})
    except ValueError:
        raise PlanBookError(f"bandwidth grid {text!r}: use 'a,b,c' or 'lo:hi:step' in MB/s") from None
    if not grid or any(not b > 0 for b in grid):
        raise PlanBookError(f"bandwidth grid {text!r} must hold positive MB/s values")
    return grid
