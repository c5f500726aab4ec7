"""client_node (the parts that need no master): its settings and the replica it asks for."""

from __future__ import annotations

import pytest

from intradp_ros.core.session import ReplicaError
from intradp_ros.ros.client_node import COMMON_SPEC, ClientSettings, model_config
from intradp_ros.ros.node_params import from_mapping, resolve


def test_the_client_settings_keep_their_documented_defaults() -> None:
    assert COMMON_SPEC["robot"][:2] == (str, "robot1") and COMMON_SPEC["deadline"][:2] == (float, 2.0)
    assert COMMON_SPEC["mode"][:2] == (str, "intradp") and COMMON_SPEC["names_base"][:2] == (str, "intradp")
    s = from_mapping(ClientSettings, dict(resolve(COMMON_SPEC, None, use_ros=False), input_topic="x", conf=0.3))
    assert s == ClientSettings()


def test_model_config_takes_sizes_from_settings_and_heads_from_the_adapter() -> None:
    settings = resolve(COMMON_SPEC, None, use_ros=False)
    settings.update(model="kapao_s6", input_size=["256", "320"], seed=2)
    cfg = model_config(settings, {"head": "candidates"})
    assert cfg.model_id == 'kapao_s6{"head":"candidates","input_size":[256,320]}' and cfg.seed == 2
    with pytest.raises(ReplicaError):
        model_config(dict(settings, model=""))


def test_a_dead_worker_thread_is_reported_not_silent() -> None:
    import threading

    from intradp_ros.core.health import ERROR, ClientFacts, client_status
    from intradp_ros.ros.client_node import ClientRuntime

    rt = ClientRuntime.__new__(ClientRuntime)  # only the thread bookkeeping: no model, no ROS graph
    rt.robot, rt._stop, rt.dead_threads = "robot1", threading.Event(), []

    def broken() -> None:
        raise RuntimeError("adapter bug")

    rt.threads = [threading.Thread(target=rt._guarded(broken, "intradp-worker"), name="intradp-worker", daemon=True)]
    rt.threads[0].start()
    rt.threads[0].join(5)
    rt._check_threads()
    rt._check_threads()  # reported once
    assert rt.dead_threads == ["intradp-worker"]
    facts = ClientFacts(
        "robot1", "intradp", "up", True, None, 1.0, 0.1, 3, 0, 0, {}, False, 5.0, tuple(rt.dead_threads)
    )
    h = client_status(facts)
    assert h.level == ERROR and "intradp-worker died" in h.message


def test_join_cgroup_writes_this_pid_to_the_inherited_descriptor_and_closes_it(tmp_path) -> None:
    import os

    from intradp_ros.ros.client_node import join_cgroup

    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    fd = os.open(procs, os.O_WRONLY)
    join_cgroup(fd)
    assert procs.read_text() == f"{os.getpid()}\n"
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: the client keeps no handle on the cgroup
    with pytest.raises(OSError, match="descriptor 987654"):
        join_cgroup(987654)  # a bad descriptor is a fatal start-up error, never a silently unthrottled client
    assert ClientSettings().join_cgroup_fd == -1 and ClientSettings().calibration_file == ""
