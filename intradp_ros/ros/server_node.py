"""The Intra-DP server node (`intradp_server`, launch/server.launch): the GPU side of every robot it serves.

Per robot (one namespace `/intradp/<robot>/` each): a Handshake service, and after the first accepted
handshake a ServerHalf (its own executor threads, on cuda when available else cpu) on the robot's tile
topics, registered with every plan of the session's plan book, and a ServerReport publisher. Requests are
freed by the executor on completion or after `request_timeout`. The model replicas are loaded once at start
(seeded random weights or a checkpoint) and fingerprinted; a handshake for another model, other weights or
another graph is refused with the reason. The server's profile is measured once per model (cached on disk),
or derived from the client's by `server_speedup` (time dilation on CPU-only testbeds). Plan books are solved
in a worker process (models/plan_book_worker: the node's ROS API stays responsive), announced with their expected
duration and followed with progress (log lines every 10 s, a tqdm bar on stderr, diagnostics); concurrent
handshakes needing the same book wait for the one solve in flight; books are cached on disk and a cached book
whose profiles are within `plan_cache_tolerance` of the new ones is reused. The bandwidth probe endpoints of its
robots run in the same process. Health (device, robots, replicas, memory, solves) goes to /diagnostics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rospy
import torch

from intradp_ros.core.auth import AuthError, load_secret
from intradp_ros.core.codec_choice import camera_entry, camera_profile
from intradp_ros.core.codecs.camera import DecoderIdentity, local_decoder
from intradp_ros.core.executor import SideExecutor, default_server_device
from intradp_ros.core.graph import Graph
from intradp_ros.core.handshake_limits import HEADS, HandshakeLimits, check_handshake, parse_option_ranges
from intradp_ros.core.health import Health, SolveFacts, server_status
from intradp_ros.core.log_throttle import LogThrottle, clip
from intradp_ros.core.plan import SERVER
from intradp_ros.core.plan_book import (
    BookKeys,
    PlanBook,
    PlanBookError,
    book_keys,
    check_codec_policy,
    lookup_plan_book,
    parse_grid,
)
from intradp_ros.core.power import PowerModel
from intradp_ros.core.profiler import Profile, ProfileError, cached_profile
from intradp_ros.core.progress import ProgressBar
from intradp_ros.core.runtime.halves import DEFAULT_MAX_IN_FLIGHT
from intradp_ros.core.session import ModelConfig, Replica, ReplicaError, check_peer
from intradp_ros.core.session_auth import DEFAULT_IDLE_S, Grant, NotThisSession, ServerSessions, security_status
from intradp_ros.core.solver import SolverConfig
from intradp_ros.core.tile import CODEC_CAMERA, TileError
from intradp_ros.models.camera_input import measure_camera_decode, sample_camera_payload
from intradp_ros.models.plan_book_worker import Flight, SolveCoalescer, SolveRefused, solve_in_worker
from intradp_ros.models.profile_inputs import profile_input
from intradp_ros.models.replica import VariantCache, load_replica
from intradp_ros.msg import ServerReport
from intradp_ros.ros.diagnostics import RANDOM_WEIGHTS_BANNER, UNAUTHENTICATED_BANNER, NodeDiagnostics
from intradp_ros.ros.handshake import NO_SESSION, camera_fields, handshake_service, server_report_topic
from intradp_ros.ros.node_params import (
    ParamLookup,
    Spec,
    build_parser,
    cli_args,
    forward_core_logging,
    from_mapping,
    resolve,
    setting,
    spec_of,
)
from intradp_ros.ros.probe_server import ProbeServer, validate_robot
from intradp_ros.ros.session_transport import RecordingTransport, ReportingServerHalf
from intradp_ros.srv import Handshake, HandshakeRequest, HandshakeResponse


@dataclass
class ServerSettings:
    """The server's settings (defaults < private parameters < command line, `ros/node_params.py`)."""

    robots: list = setting(["robot1"], "robot names served, each on /intradp/<robot>/...")
    models: list = setting([], "model replicas: list of {name, input_size|grid_xzy|num_classes, weights, seed}")
    model: str = setting("", "shortcut for one model: registry name (adds to 'models')")
    input_size: list = setting([], "shortcut model's input H W (KAPAO, torchvision)")
    grid_xzy: list = setting([], "shortcut model's SCONet grid X Z Y")
    weights: str = setting("", "shortcut model's checkpoint (empty: seeded random weights)")
    seed: int = setting(0, "shortcut model's init seed when no checkpoint is given")
    model_weights: str = setting(
        "",
        "checkpoints of the 'models' entries by name, name=path[,name=path] (launch arg weights:=); an entry's own "
        "weights win",
    )
    device: str = setting("auto", "auto (cuda when available, else cpu), cpu or cuda")
    request_timeout: float = setting(10.0, "a request waiting longer than this for a tile is failed and freed (s)")
    grid: str = setting("0.5:50:1", "bandwidth buckets in MB/s: 'lo:hi:step' or 'a,b,c'")
    deadline: float = setting(1.0, "deadline of the SPSO-GA-style baseline (s)")
    maxiter: int = setting(30, "solver generations per bucket")
    popsize: int = setting(24, "solver population")
    solver_seconds: float = setting(30.0, "solver time limit per bucket (s)")
    plan_cache_tolerance: float = setting(
        0.25,
        "reuse a cached plan book whose robot and server profile totals are within this relative difference "
        "(a client's calibration factor moves ~10% run to run); 0: exact profiles only",
    )
    codecs: str = setting(
        "intradp", "lossless codecs per transfer: intradp (Intra-DP's plans), all (every mode's), raw (none)"
    )
    server_speedup: float = setting(
        0.0, "0: measure this machine's profile; >0: derive it from the client's as this many times faster"
    )
    profile_repeats: int = setting(3, "profiling repeats per tile size")
    cache_dir: str = setting("", "profile / plan book cache (default $INTRADP_CACHE or ~/.cache/intradp_ros)")
    probes: bool = setting(True, "serve /intradp/<robot>/probe for the bandwidth monitor")
    max_probe_bytes: int = setting(4 << 20, "largest probe payload / reply (bytes)")
    key_file: str = setting(
        "",
        "shared secret file, mode 600, the same on every robot (docs/security.md): handshakes must prove it and "
        "every tile is MACed; empty: unauthenticated (warned about at start and in /diagnostics)",
    )
    session_idle_s: float = setting(
        DEFAULT_IDLE_S,
        "with a key: a robot's session without an authentic heartbeat or tile for this long may be taken by a new "
        "handshake (a restarted robot); a live one only by its holder",
    )
    max_requests_in_flight: int = setting(
        DEFAULT_MAX_IN_FLIGHT, "requests of one robot run at once (a fixed worker pool); more are refused"
    )
    # handshake hygiene (docs/reliability.md): checked before anything is built, profiled or solved
    allowed_heads: list = setting(list(HEADS), "output heads a handshake may ask for (other heads are refused)")
    option_ranges: str = setting("candidate_conf=0:1", "allowed ranges of numeric model options: name=lo:hi[,...]")
    max_profile_bytes: int = setting(8 << 20, "largest client profile JSON accepted in a handshake (bytes)")
    variant_budget_mb: float = setting(
        2048.0, "memory for model variants built on request (other heads); least recently used evicted beyond it"
    )
    variant_build_interval: float = setting(30.0, "a robot may make the server build a new variant once per this (s)")
    solve_interval: float = setting(30.0, "a robot may start a new plan-book solve once per this (s)")
    max_running_solves: int = setting(2, "plan-book solves (worker processes) running at once; more wait in a queue")
    max_queued_solves: int = setting(4, "plan-book solves waiting beyond those running; more are refused")
    tile_stall_s: float = setting(
        2.0, "a tile subscriber that accepts no byte for this long while tiles wait is dropped (s)"
    )


SPEC: Spec = spec_of(ServerSettings)


def load_settings(args: argparse.Namespace | None, params: ParamLookup | None = None) -> ServerSettings:
    """The server's settings from the command line and private parameters (ValueError naming a bad one)."""
    return from_mapping(ServerSettings, resolve(SPEC, args, params=params))


def settings_from_argv(argv: Sequence[str]) -> ServerSettings:
    """The settings a server started with `argv` (its command line, program first) has, parameters aside:
    what another process (the evaluation's prediction) needs to look up this server's plan books."""
    parser = build_parser("intradp_server", __doc__.split("\n\n")[0], SPEC)
    return load_settings(parser.parse_args(cli_args(list(argv))), params=lambda _name: (False, None))


def solver_config(settings: ServerSettings) -> SolverConfig:
    """The plan search effort the settings ask for (part of every plan book's cache key)."""
    return SolverConfig(maxiter=settings.maxiter, popsize=settings.popsize, max_seconds=settings.solver_seconds)


def server_book_keys(settings: ServerSettings, g: Graph, client: Profile, server: Profile) -> BookKeys:
    """Cache keys of the plan book a server with `settings` solves for the (client, server) profiles it priced:
    one function for the server and for the evaluation's prediction, which must find that very book."""
    cache = Path(settings.cache_dir) if settings.cache_dir else None
    grid, cfg = parse_grid(settings.grid), solver_config(settings)
    return book_keys(g, client, server, grid, PowerModel(), cfg, float(settings.deadline), cache, str(settings.codecs))


@dataclass
class RobotSession:
    """What the server holds for one robot after an accepted handshake."""

    robot: str
    replica: Replica
    transport: RecordingTransport
    half: ReportingServerHalf
    book: PlanBook
    reports: rospy.Publisher
    started: float

    def close(self) -> None:
        self.half.close()
        self.reports.unregister()


HEAD_OPTIONS = ("head", "candidate_conf")  # model options that pick an output head, not another network


class IntraDPServer:
    """Handshake services, per-robot sessions and their executors; ROS wiring kept thin around `handle()`."""

    def __init__(self, settings: ServerSettings) -> None:
        self.s = settings
        dev = settings.device
        self.device = default_server_device() if dev == "auto" else torch.device(dev)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {dev} requested but {no_cuda_reason()}: use device auto or cpu")
        if dev == "auto" and self.device.type != "cuda":
            rospy.logwarn(
                "*** intradp_server: device auto found no GPU (%s): serving on the CPU, much slower than a GPU. "
                "Set device:=cuda to refuse to start without one. ***",
                no_cuda_reason(),
            )
        self.robots = [validate_robot(r) for r in settings.robots]
        check_codec_policy(str(settings.codecs))  # a typo fails at start, not at the first handshake
        if not self.robots:
            raise ValueError("no robots to serve")
        self.grid = parse_grid(settings.grid)
        self.cache_dir = Path(settings.cache_dir) if settings.cache_dir else None
        self.solver = solver_config(settings)
        self.replicas: dict[str, Replica] = {}
        self.profiles: dict[str, Profile] = {}
        self.sessions: dict[str, RobotSession] = {}
        self._lock = threading.Lock()
        self._profile_lock = threading.Lock()
        self.camera_decode: dict[str, float] = {}  # model id -> measured camera decode s per MB of model input
        self._head_lock = threading.Lock()
        self._services: list[rospy.Service] = []
        self.probes: ProbeServer | None = None
        self.limits = HandshakeLimits(
            max_profile_bytes=int(settings.max_profile_bytes),
            allowed_heads=tuple(str(h) for h in settings.allowed_heads),
            option_ranges=parse_option_ranges(settings.option_ranges),
        )
        self.variants = VariantCache(int(float(settings.variant_budget_mb) * 2**20))
        self._variant_builds: dict[str, float] = {}  # robot -> when it last made the server build a variant
        self._refusals = LogThrottle(10.0)
        self.solves = SolveCoalescer(
            float(settings.plan_cache_tolerance),
            max_running=int(settings.max_running_solves),
            max_queued=int(settings.max_queued_solves),
            min_interval_s=float(settings.solve_interval),
        )
        self.diagnostics: NodeDiagnostics | None = None
        self.auth = server_sessions(settings)

    # ------------------------------------------------------------------ start / stop
    def load_models(self, configs: Sequence[ModelConfig]) -> None:
        for cfg in configs:
            t0 = time.perf_counter()
            rep = load_replica(cfg, "cpu")  # captured on the CPU like the client's; executors move it to self.device
            self.replicas[rep.model_id] = rep
            if not cfg.weights:
                rospy.logwarn(RANDOM_WEIGHTS_BANNER, f"intradp_server {rep.model_id}")
            rospy.loginfo(
                "server: loaded %s on %s in %.1f s (%d graph nodes, weights %s, graph %s)",
                rep.model_id,
                self.device,
                time.perf_counter() - t0,
                len(rep.graph.nodes),
                rep.weights_fingerprint,
                rep.graph_fingerprint,
            )

    def start(self) -> None:
        for robot in self.robots:
            self._services.append(rospy.Service(handshake_service(robot), Handshake, self._callback(robot)))
        if self.s.probes:
            self.probes = ProbeServer(self.robots, self.s.max_probe_bytes, self.s.max_probe_bytes)
            self.probes.start()
        self.diagnostics = NodeDiagnostics("server", {"server": self.health, "security": self.security})
        rospy.loginfo(
            "server ready: robots %s, models %s, device %s", ",".join(self.robots), ",".join(self.replicas), self.device
        )

    def shutdown(self) -> None:
        if self.diagnostics is not None:
            self.diagnostics.stop()
        for svc in self._services:
            svc.shutdown("server stopping")
        if self.probes is not None:
            self.probes.shutdown()
        with self._lock:
            for sess in self.sessions.values():
                sess.close()
            self.sessions.clear()

    def _callback(self, robot: str) -> Any:
        def on_handshake(req: HandshakeRequest) -> HandshakeResponse:
            try:
                return self.handle(robot, req)
            except Exception as e:  # noqa: BLE001 - every failure becomes a refused handshake, never a dead service
                return self._refuse(robot, f"server error: {type(e).__name__}: {clip(e, 300)}")

        return on_handshake

    # ------------------------------------------------------------------ handshake
    def handle(self, robot: str, req: HandshakeRequest) -> HandshakeResponse:
        """Answer one handshake or heartbeat of `robot` (the service it arrived on names the robot)."""
        refuse = lambda why: self._refuse(robot, why)  # noqa: E731
        rep = self._admit(robot, req)
        if isinstance(rep, str):
            return refuse(rep)
        grant, rep = rep
        if not req.client_profile_json:  # heartbeat
            with self._lock:
                sess = self.sessions.get(robot)
            if sess is None or sess.replica is not rep:
                return refuse(NO_SESSION)
            cam = camera_fields(req, rep.example.shape)  # [wire] decoder identity, camera probe
            if req.camera_probe and not cam["camera_probe_error"]:
                self._time_camera_decode(rep, bytes(req.camera_probe))
            return HandshakeResponse(accepted=True, server_device=str(self.device), **cam)
        try:
            client = Profile.from_json(req.client_profile_json, rep.graph)
        except ProfileError as e:
            return refuse(f"client profile: {e}")
        client = self._camera_checked(robot, client, req)
        server = self._with_camera(rep, client, self._server_profile(rep, client))  # outside the lock
        client, server = self._link_costs(client), self._link_costs(server)
        t0 = time.perf_counter()
        try:
            book, how = self._plan_book(robot, rep, client, server)
        except SolveRefused as e:
            return refuse(str(e))
        rospy.loginfo(
            "server: plan book for %s/%s %s in %.1f s (%d plans, %d buckets)",
            robot,
            rep.model_id,
            how,
            time.perf_counter() - t0,
            len(book.plans),
            len(book.buckets),
        )
        self._install_session(robot, rep, book, grant)
        return HandshakeResponse(
            accepted=True,
            error="",
            server_device=str(self.device),
            server_profile_json=server.to_json(),
            plan_table_json=book.to_json(),
            **camera_fields(req, rep.example.shape),  # [wire] decoder identity
            **self._auth_fields(grant),
        )

    def _install_session(self, robot: str, rep: Replica, book: PlanBook, grant: Grant | None) -> None:
        """Open the robot's session (or give the one it holds the new plan book) after an accepted handshake."""
        with self._lock:
            sess = self.sessions.get(robot)
            if sess is not None and sess.replica is not rep:
                sess.close()
                sess = None
            if sess is None:
                sess = self._open_session(robot, rep, book)
                self.sessions[robot] = sess
            else:
                sess.book = book
            for p in book.plans:
                sess.half.add_plan(p)
            self._begin_session(sess, grant)

    # ------------------------------------------------------------------ session authentication (docs/security.md)
    def _authenticate(self, robot: str, req: HandshakeRequest) -> tuple[Grant | None, str]:
        """(grant of a full handshake, refusal reason): the request's proofs checked before anything else.

        Full handshake: proof of the shared secret (and of the live session's key to replace it). Heartbeat or
        camera probe: proof of the session key, unless the robot holds no session (answered NO_SESSION below, so
        a restarted server makes the client handshake again). Without a key file: (None, "") for everything."""
        if not self.auth.enabled:
            return None, ""
        try:
            if req.client_profile_json:
                return self.auth.hello(robot, bytes(req.nonce), bytes(req.proof), bytes(req.renew_proof)), ""
            with self._lock:
                held = robot in self.sessions
            if held:
                self.auth.beat(robot, bytes(req.nonce), bytes(req.proof))
            return None, ""
        except NotThisSession:  # a replaced session's holder: "handshake again" (it cannot renew a live one)
            return None, NO_SESSION
        except AuthError as e:  # logged (throttled, with counts) by _refuse, like every refusal
            return None, f"authentication: {e}"

    def _begin_session(self, sess: RobotSession, grant: Grant | None) -> None:
        """A full handshake was accepted (holding `_lock`): the new session's key takes over the robot's tiles, and
        its request ids start a new sequence."""
        self.auth.commit(grant)
        sess.half.new_session()

    def _link_costs(self, prof: Profile) -> Profile:
        """`prof` as the plan book should see it: tile MACs cost CPU time only on authenticated links."""
        return prof if self.auth.enabled else dataclasses.replace(prof, mac_s_per_byte=0.0)

    @staticmethod
    def _auth_fields(grant: Grant | None) -> dict[str, bytes]:
        return {} if grant is None else {"server_nonce": grant.nonce_s, "server_proof": grant.proof_s}

    def security(self) -> Health:
        """Link security for /diagnostics: authenticated or not, and what was refused (per robot where it counts)."""
        counts: dict[str, int] = {"refused_handshakes": self.auth.refused}
        with self._lock:
            sessions = dict(self.sessions)
        for robot, sess in sessions.items():
            counts[f"{robot}_forged_tiles"] = sess.transport.forged
            counts[f"{robot}_refused_busy"] = sess.half.refused_busy
            counts[f"{robot}_refused_unannounced"] = sess.half.refused_stale
        return security_status(self.auth.enabled, counts)

    def _admit(self, robot: str, req: HandshakeRequest) -> tuple[Grant | None, Replica] | str:
        """(grant, replica) the request is for, or why it is refused: the request's fields first (cheap, before any
        HMAC), then its proofs (a stranger costs one HMAC, nothing is built for it), then the replica (maybe a
        variant built now), then its fingerprints."""
        why = self.check_request(robot, req)
        if why:
            return why
        grant, why = self._authenticate(robot, req)
        if why:
            return why
        rep = self._replica_for(req.model_id, robot)
        if isinstance(rep, str):
            return rep
        why = check_peer(rep, req.model_id, req.weights_fingerprint, req.graph_fingerprint)
        return why or (grant, rep)

    def check_request(self, robot: str, req: HandshakeRequest) -> str:
        """Why a request must be refused before any work (core.handshake_limits; '' when it may proceed): field
        sizes, names and option values, the robot the service belongs to, and the fingerprints of a variant built
        before (so wrong fingerprints never build a model copy twice)."""
        fields = {name: getattr(req, name, "") for name in self.limits.field_limits()}
        why = check_handshake(fields, self.limits)
        if why:
            return why
        if req.robot and req.robot != robot:
            return f"request names robot {clip(req.robot, 64)!r} on {robot!r}'s service"
        known = self.variants.known_fingerprints(req.model_id)
        if known is not None and known != (req.weights_fingerprint, req.graph_fingerprint):
            return (
                f"fingerprints (weights {req.weights_fingerprint!r}, graph {req.graph_fingerprint!r}) differ from "
                f"the server's {clip(req.model_id, 120)} (weights {known[0]!r}, graph {known[1]!r})"
            )
        return ""

    def _refuse(self, robot: str, why: str) -> HandshakeResponse:
        """A refusal with a bounded reason, logged throttled with counts (refusals are cheap to provoke)."""
        why = clip(why, 400)
        n = self._refusals.hit(f"{robot}:{why[:60]}")
        if n:
            rospy.logerr("server: refused %s (%d such refusals since the last line): %s", robot, n, why)
        return HandshakeResponse(accepted=False, error=why, server_device=str(self.device))

    def _plan_book(self, robot: str, rep: Replica, client: Profile, server: Profile) -> tuple[PlanBook, str]:
        """(book, how it was got): the disk cache (exact or close profiles), a solve in flight, or a new solve in
        a worker process (announced with its expected duration, followed with progress)."""
        tol = float(self.s.plan_cache_tolerance)
        keys = server_book_keys(self.s, rep.graph, client, server)
        cached = lookup_plan_book(rep.graph, keys, tol)
        if cached is not None:
            return cached, "from cache"
        expected = expected_solve_s(len(self.grid), self.solver)
        job = {
            "model_id": rep.model_id,
            "weights": rep.config.weights,
            "seed": rep.config.seed,
            "graph": rep.graph.fingerprint,
            "robot_profile": client.to_json(),
            "server_profile": server.to_json(),
            "grid": list(self.grid),
            "power": PowerModel().to_dict(),
            "solver": dataclasses.asdict(self.solver),
            "deadline_s": float(self.s.deadline),
            "cache_dir": str(keys.folder),
            "tolerance": tol,
            "codecs": str(self.s.codecs),
        }

        def run(flight: Flight) -> str:
            rospy.loginfo(
                "server: solving the plan book of %s for %s: %d buckets, expect up to %.0f s (solver_seconds %g per "
                "bucket, table budget %g s); the ROS API stays responsive, the client waits",
                rep.model_id,
                robot,
                len(self.grid),
                expected,
                self.solver.max_seconds,
                self.solver.table_seconds,
            )
            report = SolveReporter(flight, f"plan book {robot}/{rep.model_id}")
            try:
                text, _hit = solve_in_worker(job, report)
            finally:
                report.close()
            return text

        text, joined = self.solves.solve(keys, robot, len(self.grid), expected, run)
        return PlanBook.from_json(text, rep.graph), ("shared with a solve in flight" if joined else "solved")

    def health(self) -> Health:
        """Device, robots and sessions, replicas, memory and solves in flight (core.health.server_status)."""
        now = time.monotonic()
        with self._lock:
            sessions = list(self.sessions)
        solves = [
            SolveFacts(
                f.keys.key[:8],
                tuple(f.robots),
                now - f.started,
                (now - f.started) + f.eta_s(now),
                f.done_buckets,
                f.buckets,
            )
            for f in self.solves.in_flight()
        ]
        random = [r.model_id for r in self.replicas.values() if not r.config.weights]
        replicas = list(self.replicas) + self.variants.ids()
        return server_status(
            str(self.device),
            self.s.device,
            self.robots,
            sessions,
            replicas,
            random,
            memory_mb(self.device),
            solves,
        )

    def _replica_for(self, model_id: str, robot: str = "") -> Replica | str:
        """The replica of `model_id`, or why there is none: a configured one, one a session holds, or another
        output head of a configured model (same name, sizes, weights and seed; e.g. KAPAO's sparse candidate head)
        built on request into the variant cache (LRU under `variant_budget_mb`; a robot may cause one build per
        `variant_build_interval`). Call after check_request (the id's options are allowed)."""
        rep = self.replicas.get(model_id) or self.variants.get(model_id)
        if rep is not None:
            return rep
        with self._lock:
            held = [s.replica for s in self.sessions.values() if s.replica.model_id == model_id]
        if held:
            return held[0]
        not_served = f"model {clip(model_id, 120)!r} is not served here (serving: {', '.join(self.replicas) or 'none'})"
        try:
            want = ModelConfig.from_model_id(model_id)
        except ReplicaError:
            return not_served
        base_id = ModelConfig(want.name, {k: v for k, v in want.options.items() if k not in HEAD_OPTIONS}).model_id
        base = self.replicas.get(base_id)
        if base is None or base_id == model_id:
            return not_served
        with self._head_lock:
            rep = self.variants.get(model_id)
            if rep is not None:
                return rep
            now = time.monotonic()
            last = self._variant_builds.get(robot)
            if last is not None and now - last < self.s.variant_build_interval:
                return (
                    f"not building {clip(model_id, 120)}: robot {robot} had a variant built {now - last:.1f} s ago "
                    f"(at most one per {self.s.variant_build_interval:g} s); retry later"
                )
            self._variant_builds[robot] = now
            t0 = time.perf_counter()
            cfg = ModelConfig(want.name, want.options, base.config.weights, base.config.seed)
            try:
                rep = load_replica(cfg, "cpu")
            except ReplicaError as e:
                return f"cannot build head {clip(model_id, 120)}: {clip(e, 200)}"
            evicted = self.variants.put(rep)
            rospy.loginfo(
                "server: built %s (a head of %s) in %.1f s (%d graph nodes); variants hold %.0f MB%s",
                model_id,
                base_id,
                time.perf_counter() - t0,
                len(rep.graph.nodes),
                self.variants.bytes_used / 2**20,
                f", evicted {', '.join(evicted)}" if evicted else "",
            )
        return rep

    # ------------------------------------------------------------------ camera passthrough as a codec option
    def _camera_checked(self, robot: str, client: Profile, req: HandshakeRequest) -> Profile:
        """`client` without its camera entry unless its decoder is this server's (the plan book must not price a
        camera file the server would refuse)."""
        if camera_entry(client.codecs) is None:
            return client
        if DecoderIdentity.from_json(req.decoder_json) == local_decoder():
            return client
        n = self._refusals.hit(f"{robot}:camera decoder")
        if n:
            rospy.logwarn(
                "server: %s's profile prices camera passthrough with another decoder (x%d): ignored", robot, n
            )
        return client.with_codecs([c for c in client.codecs if c.codec != CODEC_CAMERA])

    def _time_camera_decode(self, rep: Replica, payload: bytes) -> None:
        """Time this server's decode of a probe frame (a robot's real camera file): the camera option's cost."""
        try:
            per_mb = measure_camera_decode(payload, tuple(rep.example.shape))
        except TileError:
            return
        self.camera_decode[rep.model_id] = per_mb
        rospy.loginfo(
            "server: camera decode of %s's probe frame %.1f ms per MB of model input", rep.model_id, per_mb * 1e3
        )

    def _with_camera(self, rep: Replica, client: Profile, server: Profile) -> Profile:
        """`server` whose camera entry is this server's measured decode, present only when the client offers
        verified passthrough (a derived server profile would otherwise carry the robot's entry)."""
        codecs = [c for c in server.codecs if c.codec != CODEC_CAMERA]
        if camera_entry(client.codecs) is not None:
            per_mb = self.camera_decode.get(rep.model_id)
            if per_mb is None:  # no probe timed since start (a server restart): time the bundled photograph
                payload = sample_camera_payload(tuple(rep.example.shape[-2:]))
                if payload is not None:
                    self._time_camera_decode(rep, payload)
                    per_mb = self.camera_decode.get(rep.model_id)
            if per_mb is not None:
                codecs.append(camera_profile("server", 1.0, decode_s_per_mb=per_mb))
        return server if codecs == list(server.codecs) else server.with_codecs(codecs)

    def _server_profile(self, rep: Replica, client: Profile) -> Profile:
        speedup = self.s.server_speedup
        if speedup > 0:
            return client.scaled(
                1.0 / speedup, f"server ({speedup:g}x faster than the robot, derived)", codec_factor=1.0
            )  # codecs run on the server's CPU, not its GPU
        with self._profile_lock:
            return self._measured_profile(rep)

    def _measured_profile(self, rep: Replica) -> Profile:
        prof = self.profiles.get(rep.model_id)
        if prof is None:
            t0 = time.perf_counter()
            from intradp_ros.core.plan_table import default_cache_dir

            # codec ratios (downloads are priced with the server's) on a realistic input, not the random example
            x, what = profile_input(rep.example)
            with ProgressBar(f"server: profiling {rep.model_id} on {self.device}", unit="node") as bar:
                prof, hit = cached_profile(
                    rep.graph,
                    [x.to(self.device)],
                    self.cache_dir or default_cache_dir(),
                    self.device,
                    codec_input=what,
                    repeats=self.s.profile_repeats,
                    progress=bar,
                    band_overhead=True,  # the server runs streamed plans' bands: price them (measured once, cached)
                    check_frame=lambda why: rospy.logwarn("server: %s", why),  # a stale cached profile is redone
                )
            rospy.loginfo(
                "server: profile of %s on %s %s in %.1f s",
                rep.model_id,
                self.device,
                "from cache" if hit else "measured",
                time.perf_counter() - t0,
            )
            self.profiles[rep.model_id] = prof
        return prof

    def _open_session(self, robot: str, rep: Replica, book: PlanBook) -> RobotSession:
        transport = RecordingTransport(
            SERVER, robot, rep.graph, auth=self.auth.tiles(robot), stall_s=self.s.tile_stall_s
        )
        reports = rospy.Publisher(server_report_topic(robot), ServerReport, queue_size=50)

        def on_done(ex: SideExecutor, error: str) -> None:
            _sent, recv = transport.take_records(ex.request_id)
            st = ex.stats
            msg = ServerReport(
                robot=robot,
                request_id=ex.request_id,
                plan_id=ex.plan.plan_id,
                server_compute_s=st.compute_s,
                server_wait_s=st.wait_s,
                server_total_s=st.total_s,
                tiles_in=st.tiles_in,
                bytes_in=st.bytes_in,
                tiles_out=st.tiles_out,
                bytes_out=st.bytes_out,
                error=error,
            )
            msg.header.stamp = rospy.Time.from_sec(time.time())
            msg.in_node_ids = [r[0] for r in recv]
            msg.in_row_starts = [r[1] for r in recv]
            msg.in_stamps = [r[3] for r in recv]
            reports.publish(msg)

        half = ReportingServerHalf(
            rep.graph,
            transport,
            book.plans,
            self.device,
            self.s.request_timeout,
            on_done,
            max_in_flight=self.s.max_requests_in_flight,
        )
        rospy.loginfo(
            "server: session for %s (%s) on %s and %s", robot, rep.model_id, transport.in_topic, transport.out_topic
        )
        return RobotSession(robot, rep, transport, half, book, reports, time.time())


def server_sessions(settings: ServerSettings) -> ServerSessions:
    """The server's session authority from its key file (AuthError for a bad file: the server refuses to start), or
    an inert one and a loud warning without a key file."""
    if settings.key_file:
        sessions = ServerSessions(load_secret(settings.key_file), settings.session_idle_s)
        rospy.loginfo("server: authenticated links (key file %s): handshakes and tiles are MACed", settings.key_file)
        return sessions
    rospy.logwarn(UNAUTHENTICATED_BANNER, "intradp_server")
    return ServerSessions(None)


def no_cuda_reason() -> str:
    """Why torch sees no GPU, in words."""
    if torch.version.cuda is None:
        return f"this torch {torch.__version__} is a CPU-only build"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable CUDA device or driver"


def memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process and, on a GPU, torch's allocated and reserved memory (MB)."""
    out = {"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if device.type == "cuda":
        out["cuda_allocated_mb"] = torch.cuda.memory_allocated(device) / 2**20
        out["cuda_reserved_mb"] = torch.cuda.memory_reserved(device) / 2**20
    return out


def expected_solve_s(buckets: int, solver: SolverConfig) -> float:
    """About the longest a solve takes: each bucket stops after max_seconds and the whole table after about
    table_seconds (each bucket still gets 0.1 s), plus ~10 s for the worker's start, graph capture and baselines."""
    return min(buckets * solver.max_seconds, solver.table_seconds + 0.1 * buckets) + 10.0


class SolveReporter:
    """Progress of one solve: a tqdm bar on stderr and a log line at most every 10 s, with the time left."""

    def __init__(self, flight: Flight, what: str, log_every_s: float = 10.0) -> None:
        self.flight = flight
        self.what = what
        self.log_every_s = log_every_s
        self._logged = time.monotonic()
        self.bar = ProgressBar(what, unit="bucket")

    def __call__(self, done: int, total: int, text: str) -> None:
        self.flight.progress(done, total, text)
        self.bar(done, total)
        now = time.monotonic()
        if now - self._logged >= self.log_every_s or done == total:
            self._logged = now
            rospy.loginfo(
                "server: %s: %d/%d buckets after %.0f s, about %.0f s left (last: %s)",
                self.what,
                done,
                total,
                now - self.flight.started,
                self.flight.eta_s(now),
                text,
            )

    def close(self) -> None:
        self.bar.close()


def parse_model_weights(text: str) -> dict[str, str]:
    """'kapao_s6=/a.pt,sconet=/b.pt' -> {name: path} (ValueError for an entry without '=')."""
    out: dict[str, str] = {}
    for item in str(text or "").replace(" ", ",").split(","):
        if not item:
            continue
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"model_weights entry {item!r}: use name=path")
        out[name] = path
    return out


def model_configs(settings: ServerSettings) -> list[ModelConfig]:
    """The configured replicas: the `models` list plus the one-model shortcut (`model`, `input_size`, ...)."""
    out = []
    by_name = parse_model_weights(settings.model_weights)
    for m in settings.models or []:
        d = json.loads(m) if isinstance(m, str) else dict(m)
        if not d.get("weights") and d.get("name") in by_name:
            d["weights"] = by_name[d["name"]]
        out.append(ModelConfig.from_dict(d))
    if settings.model:
        d: dict[str, Any] = {"name": settings.model, "seed": settings.seed, "weights": settings.weights}
        if settings.input_size:
            d["input_size"] = [int(v) for v in settings.input_size]
        if settings.grid_xzy:
            d["grid_xzy"] = [int(v) for v in settings.grid_xzy]
        out.append(ModelConfig.from_dict(d))
    if not out:
        raise ReplicaError("no model configured (set 'models' or 'model')")
    return out


def main(argv: Sequence[str]) -> int:
    """Entry point of scripts/intradp_server."""
    parser = build_parser("intradp_server", __doc__.split("\n\n")[0], SPEC)
    args = parser.parse_args(cli_args(argv))
    rospy.init_node("intradp_server", anonymous=False)
    forward_core_logging()
    try:
        settings = load_settings(args)
        server = IntraDPServer(settings)
        server.load_models(model_configs(settings))
    except (ValueError, ReplicaError, PlanBookError, AuthError) as e:
        rospy.logfatal(f"intradp_server: {e}")
        return 2
    server.start()
    rospy.on_shutdown(server.shutdown)
    rospy.spin()
    return 0
