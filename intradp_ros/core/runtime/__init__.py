"""The distributed runtime, split by concern (in the spirit of torch.distributed.pipelining):

- `schedule`: what one side runs for a plan (steps = row bands of nodes, their dependencies, sends), as printable data;
- `stage`: one side's execution of one request (wavefront over the schedule, tile intake, fail-fast aborts);
- `halves`: the client and server request life cycle around one transport, with public hooks (request ids,
  timeouts, started/finished, abort, server completion) that ROS code builds on;
- `wire`: how a computed value becomes a tile and how a received tile is checked against the plan (one validator).

`intradp_ros.core.executor` re-exports the public names for older imports.
"""
