"""The three-line API with the in-process server half."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from engine_testlib import assert_close, one_thread  # noqa: F401 (fixture)

from intradp_ros import IntraDP
from intradp_ros.api import IntraDPUnavailable
from intradp_ros.core import Plan

pytestmark = pytest.mark.usefixtures("one_thread")


def test_three_line_api_returns_what_local_inference_returns() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    local = copy.deepcopy(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    idp = IntraDP(server="inproc")
    try:
        idp.start_client(model)
        y = model(x)
        assert_close(ref, y)
        assert idp.last_stats is not None and idp.last_stats.tiles_out > 0, "the default plan sends input rows up"
        idp.set_plan(lambda g: Plan.random(g, 5))
        assert_close(ref, model(x))
        assert idp.last_plan.name == "random_5"
        idp.set_plan("server_only")
        assert_close(ref, model(x))
        x2 = torch.randn(1, 3, 96, 64)  # a new input size is captured again
        with torch.no_grad():
            assert_close(local(x2), model(x2))
        assert len(idp._sessions) == 2
    finally:
        idp.stop()
    assert_close(ref, model(x)), "stop() restores the local forward"


def test_remote_server_gives_a_clear_error() -> None:
    with pytest.raises(IntraDPUnavailable, match="models.build"):
        IntraDP(server="gpu-server.local").start_client(torch.nn.Conv2d(3, 3, 1))


def test_unreachable_remote_server_fails_fast_with_the_master_uri() -> None:
    from intradp_ros.ros.remote_session import RemoteUnavailable

    model = torch.nn.Conv2d(3, 3, 1)
    model.model_name = "kapao_s6"  # looks like a registry model: the API goes remote
    idp = IntraDP(server="http://127.0.0.1:9")  # discard port: nothing answers
    idp.start_client(model)
    try:
        with pytest.raises(RemoteUnavailable, match="127.0.0.1:9"):
            model(torch.zeros(1, 3, 64, 64))
    finally:
        idp.stop()
