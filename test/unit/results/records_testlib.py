"""A consistent frame record for the results and evaluation tests."""


def rec(system, latency, transmit, energy, trace="indoor", frame=0, error="", local=False, t=0.0):
    """A consistent record: compute 60 %, transmit-only 10 %, wait 30 % of the latency."""
    return {
        "system": system,
        "trace": trace,
        "frame": frame,
        "t_s": t,
        "link_mbit": 5.0,
        "stamp_s": 1.0,
        "robot": "robot1",
        "request_id": frame,
        "model": "kapao_l6",
        "mode": system,
        "plan_id": 3,
        "plan_name": "p",
        "latency_s": latency,
        "robot_compute_s": 0.6 * latency,
        "robot_transmit_only_s": 0.1 * latency,
        "robot_wait_s": 0.3 * latency,
        "server_compute_s": 0.01,
        "transmit_s": transmit,
        "bytes_up": 1000,
        "bytes_down": 10,
        "tiles_up": 2,
        "tiles_down": 1,
        "bandwidth_estimate_mbit_per_s": 4.5,
        "energy_j": energy,
        "mean_power_w": energy / latency,
        "fell_back_local": local,
        "error": error,
    }
