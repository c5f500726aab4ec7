"""ROS-free core: graph capture, operator rules, tiling, plans, cost model, solver, executor, transports."""
