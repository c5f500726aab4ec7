"""The statistics record of one frame, as the client publishes it (intradp_ros/InferenceStats), made ROS-free.

`FrameRecord` is what the robot knows when a frame's result is out (its clock times, plan, request id, whether it
used the server or fell back); `frame_stats` adds the tiles the transport recorded and the server's report and
returns `FrameStats`, whose fields are the message's (less the header) so the ROS shell copies them over as is.

The breakdown adds up: robot_compute_s + robot_transmit_only_s + robot_wait_s == latency_s; bytes are the payload
sizes of the tiles that were delivered (up: listed by the server's report, or without one written to the link;
down: received), so a frame's bytes over its transmit time is a real link rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from intradp_ros.core.frame_timing import breakdown
from intradp_ros.core.plan import UP, Plan
from intradp_ros.core.power import PowerModel
from intradp_ros.core.tile_ledger import ReceivedTile, SentTile, frame_transfers


@dataclass
class FrameRecord:
    """One finished frame, before its statistics are made (the stats thread makes them off the frame path)."""

    stamp: Any  # the sensor message's header (passed through to the published stats)
    start: float  # wall-clock time the frame's work started (s)
    end: float  # wall-clock time its result was published (s)
    request_id: int
    plan: Plan
    distributed: bool
    fell_back: bool
    idle: list[tuple[float, float]] = field(default_factory=list)
    error: str = ""
    bandwidth_mbit: float = 0.0  # the link estimate when the frame ran

    @property
    def expects_report(self) -> bool:
        """The server reports the arrivals of a request that sent it tiles and did not fall back."""
        return self.distributed and not self.fell_back and any(t.direction == UP for t in self.plan.transfers())


@dataclass(frozen=True)
class FrameStats:
    """InferenceStats without its header, field for field."""

    robot: str
    request_id: int
    model: str
    mode: str
    plan_id: int
    plan_name: str
    latency_s: float
    robot_compute_s: float
    robot_transmit_only_s: float
    robot_wait_s: float
    server_compute_s: float
    transmit_s: float
    bytes_up: int
    bytes_down: int
    tiles_up: int
    tiles_down: int
    bandwidth_estimate_mbit_per_s: float
    energy_j: float
    mean_power_w: float
    fell_back_local: bool
    error: str
    # the client's running totals of frames it never ran (node counters, not the frame's own)
    frames_dropped_stale: int = 0
    frames_dropped_replaced: int = 0
    frames_dropped_bad: int = 0

    def fields(self) -> dict[str, Any]:
        """The message's fields (plain str/int/float/bool values) by name."""
        return {k: (str(v) if isinstance(v, str) else v) for k, v in asdict(self).items()}


def frame_stats(
    frame: FrameRecord,
    robot: str,
    model: str,
    mode: str,
    sent: Sequence[SentTile],
    received: Sequence[ReceivedTile],
    arrivals: Mapping[tuple[int, int], float] | None = None,
    server_compute_s: float = 0.0,
    power: PowerModel | None = None,
) -> FrameStats:
    """Statistics of one frame from its record, the tiles sent and received, and the server's report (if any)."""
    tx = frame_transfers(sent, received, arrivals)  # only tiles that were delivered (see core/tile_ledger)
    b = breakdown(frame.start, frame.end, frame.idle, tx.up_flight, tx.down_flight)
    energy = (power or PowerModel()).energy(b.latency_s, b.compute_s, b.transmit_only_s)
    return FrameStats(
        robot=robot,
        request_id=frame.request_id,
        model=model,
        mode=str(mode),
        plan_id=frame.plan.plan_id,
        plan_name=str(frame.plan.name),
        latency_s=b.latency_s,
        robot_compute_s=b.compute_s,
        robot_transmit_only_s=b.transmit_only_s,
        robot_wait_s=b.wait_s,
        server_compute_s=float(server_compute_s),
        transmit_s=b.transmit_s,
        bytes_up=tx.bytes_up,
        bytes_down=tx.bytes_down,
        tiles_up=tx.tiles_up,
        tiles_down=tx.tiles_down,
        bandwidth_estimate_mbit_per_s=frame.bandwidth_mbit,
        energy_j=energy,
        mean_power_w=energy / b.latency_s if b.latency_s > 0 else 0.0,
        fell_back_local=frame.fell_back,
        error=frame.error,
    )
