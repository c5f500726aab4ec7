"""The three-line API::

    from intradp_ros import IntraDP
    idp = IntraDP(server="inproc")     # or a server host ("gpu-box", "http://10.0.0.2:11311", "ros")
    idp.start_client(model)            # from now on model(x) runs distributed and returns what model(x) returns

The model is captured on its first call (and again for every new input shape/dtype). Plans come from
`plan=`: a name ("halo_split[:f]" (default), "row_split[:f]", "device_only", "server_only"), a Plan, plan JSON,
or a callable `graph -> Plan` (e.g. a scheduler); with a remote server, a mode of its plan book (default
"intradp"), at the bucket of `bandwidth_bytes_per_s` (the book's middle bucket when not given).
`set_plan()` switches plans between calls. When the distributed run fails (server gone, tile lost), the call
finishes locally, so the robot always gets its result: the same FrameRunner (intradp_ros.core.robot_session) as
the client nodes, and for a remote server the same handshake protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from intradp_ros.core.capture_graph import capture
from intradp_ros.core.executor import ClientHalf, RequestStats, ServerHalf
from intradp_ros.core.graph import Graph
from intradp_ros.core.plan import Plan
from intradp_ros.core.robot_session import FrameRunner, PlanChoice
from intradp_ros.core.transport import inprocess_pair

PlanSpec = str | Plan | Callable[[Graph], Plan]


class IntraDPUnavailable(RuntimeError):
    """The requested deployment cannot be made (e.g. a remote server for a model it cannot replicate)."""


class _Session:
    """One captured graph with its client half (and, in-process, its server half)."""

    def __init__(
        self,
        graph: Graph,
        client: ClientHalf,
        server: ServerHalf | None,
        local: Callable[..., Any],
        fallback: bool,
        remote: Any = None,
    ) -> None:
        self.graph, self.client, self.server = graph, client, server
        self.remote = remote  # RemoteSession when the server half runs in an intradp_server node
        self.plan: Plan | None = None
        # the client's timeout stays fixed (no per-frame deadline); a failed run finishes with `local`
        self.runner = FrameRunner(client, Plan.device_only(graph), local=local, fallback=fallback, label="IntraDP")

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
        else:
            self.client.close()
        if self.server is not None:
            self.server.close()


class IntraDP:
    """Client-side entry point: makes `model(x)` run as Intra-DP collaborative inference."""

    def __init__(
        self,
        server: str = "inproc",
        plan: PlanSpec | None = None,
        robot: str = "robot",
        bandwidth_bytes_per_s: float | None = None,
        server_device: Any = None,
        timeout: float = 30.0,
        fallback_local: bool = True,
        key_file: str = "",
    ) -> None:
        if not isinstance(server, str) or not server:
            raise ValueError("server must be 'inproc' or a server host name")
        self.server = server
        self.robot = robot
        self.bandwidth = bandwidth_bytes_per_s
        self.server_device = server_device
        self.timeout = timeout
        self.fallback_local = fallback_local
        self.key_file = key_file  # remote server: its shared secret file (docs/security.md); "" unauthenticated
        self._plan_spec: PlanSpec = plan if plan is not None else ("halo_split" if server == "inproc" else "intradp")
        self._model: nn.Module | None = None
        self._orig_forward: Callable[..., Any] | None = None
        self._sessions: dict[tuple, _Session] = {}
        self._capturing = threading.local()
        self._lock = threading.Lock()
        self.last_stats: RequestStats | None = None
        self.last_plan: Plan | None = None
        self.local_fallbacks = 0

    # ------------------------------------------------------------------ public
    def start_client(self, model: nn.Module) -> nn.Module:
        """Hook `model` so that calling it runs distributed inference; returns the same model."""
        if self.server != "inproc" and not getattr(model, "model_name", None):
            raise IntraDPUnavailable(
                f"server={self.server!r}: a remote intradp_server holds a replica of a registry model, "
                "so the model must come from intradp_ros.models.build(name); "
                "any other model runs with IntraDP(server='inproc')"
            )
        if self._model is not None:
            raise RuntimeError("start_client() was already called; call stop() first")
        model.eval()
        self._model = model
        self._orig_forward = model.forward
        model.forward = self._forward  # type: ignore[method-assign]
        return model

    def set_plan(self, plan: PlanSpec) -> None:
        """Use `plan` from the next call on (plans are re-derived for every captured graph)."""
        with self._lock:
            self._plan_spec = plan
            for s in self._sessions.values():
                s.plan = None

    def graph(self, *example_inputs: torch.Tensor) -> Graph:
        """The captured graph for inputs like these (captures if needed)."""
        return self._session(example_inputs).graph

    def stop(self) -> None:
        """Restore the model's own forward and stop both halves."""
        if self._model is not None and self._orig_forward is not None:
            try:
                del self._model.forward
            except AttributeError:
                pass
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()
        self._model = None

    def __enter__(self) -> IntraDP:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if (
            getattr(self._capturing, "on", False)
            or kwargs
            or not inputs
            or not all(isinstance(x, torch.Tensor) for x in inputs)
        ):
            return self._orig_forward(*inputs, **kwargs)  # capture in progress, or a call form we do not split
        session = self._session(inputs)
        plan = self._plan_for(session)
        out = session.runner.run(PlanChoice(plan, True), inputs)  # ExecutionError only without fallback_local
        if out.fell_back:
            self.local_fallbacks += 1
        else:
            self.last_stats = session.client.last_stats
            self.last_plan = plan
        return out.outputs

    def _session(self, inputs: tuple) -> _Session:
        key = tuple((tuple(x.shape), x.dtype, x.device.type) for x in inputs)
        with self._lock:
            s = self._sessions.get(key)
            if s is not None:
                return s
            if self.server != "inproc":
                return self._remote_session(key, inputs)
            self._capturing.on = True
            try:
                g = capture(self._model, *inputs)
            finally:
                self._capturing.on = False
            robot_end, server_end = inprocess_pair(self.bandwidth)
            server = ServerHalf(g, server_end, [], device=self.server_device, timeout=self.timeout)
            client = ClientHalf(g, robot_end, device=inputs[0].device, timeout=self.timeout, robot=self.robot)
            s = self._sessions[key] = _Session(g, client, server, self._local, self.fallback_local)
            return s

    def _remote_session(self, key: tuple, inputs: tuple) -> _Session:
        from intradp_ros.ros.remote_session import RemoteSession  # rospy only on this path

        if len(inputs) != 1:
            raise IntraDPUnavailable("a remote server serves single-input registry models")
        self._capturing.on = True
        try:
            remote = RemoteSession.connect(
                self._model, inputs[0], self.server, self.robot, timeout=self.timeout, key_file=self.key_file
            )
        finally:
            self._capturing.on = False
        s = self._sessions[key] = _Session(
            remote.replica.graph, remote.client, None, self._local, self.fallback_local, remote
        )
        return s

    def _local(self, *inputs: Any) -> Any:
        """The model's own forward: what a frame whose distributed run failed is finished with."""
        with torch.no_grad():
            return self._orig_forward(*inputs)

    def _plan_for(self, s: _Session) -> Plan:
        with self._lock:
            if s.plan is None and s.remote is not None:
                if not isinstance(self._plan_spec, str):
                    raise IntraDPUnavailable(
                        "a remote server runs the plans of its plan book: give plan as a mode name"
                    )
                mbps = None if self.bandwidth is None else self.bandwidth / 1e6  # picks the plan book's bucket
                s.plan = s.remote.plan(self._plan_spec, mbps)
            if s.plan is None:
                s.plan = make_plan(self._plan_spec, s.graph)
                if s.server is not None:
                    s.server.add_plan(s.plan)
            return s.plan


def make_plan(spec: PlanSpec, g: Graph) -> Plan:
    """A Plan for graph `g` from a name, a Plan, plan JSON or a callable."""
    if isinstance(spec, Plan):
        if spec.graph.fingerprint != g.fingerprint:
            raise ValueError("plan was made for another graph")
        return spec if spec.graph is g else Plan(g, spec.robot, spec.server, spec.name)
    if callable(spec):
        return spec(g)
    if isinstance(spec, str):
        if spec.lstrip().startswith("{"):
            return Plan.from_json(spec, g)
        if spec == "device_only":
            return Plan.device_only(g)
        if spec == "server_only":
            return Plan.server_only(g)
        for prefix, make in (("halo_split", Plan.halo_split), ("row_split", Plan.row_split)):
            if spec == prefix or spec.startswith(prefix + ":"):
                frac = float(spec.split(":", 1)[1]) if ":" in spec else 0.5
                return make(g, frac)
    raise ValueError(
        f"unknown plan {spec!r} (halo_split[:fraction], row_split[:fraction], device_only, server_only, "
        "a Plan, JSON or a callable)"
    )
