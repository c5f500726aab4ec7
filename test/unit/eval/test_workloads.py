"""Benchmark arithmetic (eval/workloads.py): reference GPU times, dilation k, robot factor, physical floor,
KAPAO size for a time budget."""

from __future__ import annotations

import math

import pytest

from intradp_ros.eval.workloads import (
    KAPAO_SIZES,
    Workload,
    dilation_k,
    kapao_size_for_budget,
    physical_floor,
    reference_gpu_s,
    robot_factor,
    scaled_kapao_s,
    seed_workloads,
)


def test_seed_workloads_are_the_seeds_sizes() -> None:
    by_family = {w.family: w for w in seed_workloads()}
    assert by_family["kapao"].options["input_size"] == (960, 1280) and by_family["kapao"].model == "kapao_l6"
    assert by_family["vgg19"].model == "torchvision:vgg19" and by_family["vgg19"].elements == 224 * 224
    assert by_family["sconet"].elements == 256 * 32 * 256


def test_reference_times_scale_by_elements() -> None:
    assert reference_gpu_s("kapao", 1280 * 960) == pytest.approx(30e-3)
    assert reference_gpu_s("kapao", 640 * 512) == pytest.approx(30e-3 * (640 * 512) / (1280 * 960))
    assert reference_gpu_s("vgg19", 224 * 224) == pytest.approx(2e-3)
    assert reference_gpu_s("sconet", 128 * 32 * 128) == pytest.approx(2.5e-3)
    with pytest.raises(ValueError):
        reference_gpu_s("resnet", 10)


def test_dilation_is_cpu_time_over_gpu_time() -> None:
    # the example: KAPAO-L 1280x960 at 1.35 s on this CPU against a 30 ms GPU -> k = 45
    assert dilation_k(1.35, 30e-3) == pytest.approx(45.0)
    assert dilation_k(0.010, 0.030) == 1.0  # a server faster than the reference is not sped up
    with pytest.raises(ValueError):
        dilation_k(0.0, 0.03)


def test_robot_factor_keeps_robot_at_20x_the_gpu() -> None:
    # dilated: robot device-only should take 20 x 30 ms x 45 = 27 s; this CPU does it in 1.35 s -> x20
    assert robot_factor(1.35, 30e-3, 45.0) == pytest.approx(20.0)
    # real GPU (k = 1) and a CPU already slower than the robot target: the robot runs unslowed
    assert robot_factor(2.0, 30e-3, 1.0) == 1.0
    assert robot_factor(0.3, 30e-3, 1.0) == pytest.approx(2.0)


def test_physical_floor() -> None:
    # 1.2 MB up at 10 MB/s (0.12 s) + 30 ms server + 10 kB down (1 ms) = 0.151 s < 0.6 s device-only
    f = physical_floor(0.6, 1.2e6, 0.03, 1e4, 1e7)
    assert f.offload_s == pytest.approx(0.151) and f.floor_s == pytest.approx(0.151) and f.via == "offload"
    # a slow link: device-only is the floor
    g = physical_floor(0.6, 1.2e6, 0.03, 1e4, 1e6)
    assert g.floor_s == pytest.approx(0.6) and g.via == "device"
    with pytest.raises(ValueError):
        physical_floor(0.6, 1, 0.03, 1, 0.0)
    with pytest.raises(ValueError):
        physical_floor(0.6, -1, 0.03, 1, 1.0)


def test_kapao_size_for_budget() -> None:
    measured = 27.0  # device-only seconds at 1280x960 as the benchmark runs it

    def at(hw: tuple) -> float:
        return scaled_kapao_s(measured, (960, 1280), hw)

    assert kapao_size_for_budget(at, 30.0)[0] == (960, 1280)
    hw, why = kapao_size_for_budget(at, 18.0)
    assert hw == (768, 1024) and "exceed" in why and "18 s" in why
    hw, why = kapao_size_for_budget(at, 1.0)
    assert hw == KAPAO_SIZES[-1] == (512, 640) and "smallest allowed" in why
    assert all(h % 64 == 0 and w % 64 == 0 for h, w in KAPAO_SIZES)


def test_workload_elements_default() -> None:
    assert Workload("x", "kapao_l6", "kapao").elements == 1280 * 960
    assert math.isclose(Workload("x", "sconet", "sconet", {"grid_xzy": (128, 32, 128)}).elements, 128 * 32 * 128)
