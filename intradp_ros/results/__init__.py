"""Statistics records, ROS-free: the per-frame record the client publishes (frame_stats), the evaluation's
flat records and their CSV form (stats_records), and per-system aggregates (aggregates).

Layer: above core and models, below ros; rendering tables and plots is tooling (intradp_ros.eval).
"""
