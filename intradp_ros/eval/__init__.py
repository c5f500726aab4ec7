"""Evaluation tooling: testbed (namespaces, shaping, traces, slow-down), rosbag replay, tables and plots."""
