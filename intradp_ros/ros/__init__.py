"""ROS glue: the only package that imports rospy (nodes, master bridge, message conversion, ROS transport)."""
