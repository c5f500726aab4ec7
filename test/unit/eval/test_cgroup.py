"""The robot throttle (eval/cgroup.py): CFS quota/period arithmetic and both cgroup layouts, against fake cgroup
trees in a temp dir (no cgroup is created)."""

from __future__ import annotations

from pathlib import Path

import pytest

from intradp_ros.eval import cgroup


def v2_tree(root: Path, controllers: str = "cpuset cpu io memory pids", subtree: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text(subtree + "\n")
    (root / "cgroup.procs").write_text("1\n")
    return root


def v1_tree(root: Path) -> Path:
    cpu = root / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    return cpu


def test_v2_is_found_and_the_group_gets_cpu_max_with_cpu_delegated(tmp_path):
    v2_tree(tmp_path)
    group = cgroup.CpuGroup("intradp-x", period_us=10_000, root=tmp_path)
    assert group.controller == cgroup.CpuController(2, tmp_path)
    group.create(0.25)
    assert (tmp_path / "intradp-x" / "cpu.max").read_text() == "2500 10000"
    # the fake file holds what was written last; the kernel would list "cpu" among the enabled controllers
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu"
    assert (group.quota_us, group.period_us, group.fraction) == (2500, 10_000, 0.25)
    assert group.wrap(["true"])[3] == str(tmp_path / "intradp-x" / "cgroup.procs")


def test_v2_with_cpu_already_delegated_leaves_subtree_control_alone(tmp_path):
    v2_tree(tmp_path, subtree="cpu memory")
    cgroup.CpuGroup("g", root=tmp_path).create(0.5)
    assert (tmp_path / "cgroup.subtree_control").read_text().split() == ["cpu", "memory"]
    assert (tmp_path / "g" / "cpu.max").read_text() == "50000 100000"


def test_v1_gets_period_then_quota(tmp_path):
    cpu = v1_tree(tmp_path)
    group = cgroup.CpuGroup("intradp-y", period_us=10_000, root=tmp_path)
    assert group.controller == cgroup.CpuController(1, cpu)
    group.create(0.05)  # 0.05 CPU needs a 20 ms period for the kernel's 1 ms minimum quota
    assert (cpu / "intradp-y" / "cpu.cfs_period_us").read_text() == "20000"
    assert (cpu / "intradp-y" / "cpu.cfs_quota_us").read_text() == "1000"
    assert not (cpu / "intradp-y" / "cpu.max").exists()


def test_mixed_layout_uses_v1_when_the_unified_mount_has_no_cpu(tmp_path):
    cpu = v1_tree(tmp_path)
    v2_tree(tmp_path / "unified", controllers="")
    controller, why = cgroup.find_cpu_controller(tmp_path)
    assert controller == cgroup.CpuController(1, cpu) and why == ""


def test_unified_mount_with_cpu_is_preferred_to_v1(tmp_path):
    v1_tree(tmp_path)
    v2_tree(tmp_path / "unified")
    controller, _ = cgroup.find_cpu_controller(tmp_path)
    assert controller == cgroup.CpuController(2, tmp_path / "unified")


def test_neither_layout_gives_the_reason_and_create_refuses(tmp_path):
    v2_tree(tmp_path, controllers="memory pids")
    controller, why = cgroup.find_cpu_controller(tmp_path)
    assert controller is None
    assert "no cpu controller" in why and "no v1 cpu hierarchy" in why
    group = cgroup.CpuGroup("z", root=tmp_path)
    with pytest.raises(cgroup.ThrottleUnavailable, match="no usable cgroup cpu controller"):
        group.create(0.25)
    assert not (tmp_path / "cpu" / "z").exists() and group.fraction is None


def test_v2_delegation_failure_is_a_throttle_unavailable(tmp_path, monkeypatch):
    v2_tree(tmp_path)
    real_write = Path.write_text

    def refuse(self, data, *args, **kwargs):
        if self.name == "cgroup.subtree_control":
            raise OSError(16, "Device or resource busy")
        return real_write(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(cgroup.ThrottleUnavailable, match=r"\+cpu"):
        cgroup.CpuGroup("w", root=tmp_path).create(0.25)


def test_remove_takes_the_group_away(tmp_path):
    v1_tree(tmp_path)
    group = cgroup.CpuGroup("r", root=tmp_path)
    group.create(0.5)
    for f in group.path.iterdir():  # a real cgroupfs directory can be rmdir'ed with its interface files
        f.unlink()
    group.remove()
    assert not group.exists


@pytest.mark.parametrize(
    "fraction,period,expected",
    [
        (0.1, 100_000, (10_000, 100_000)),
        (0.1, 10_000, (1_000, 10_000)),
        (0.1, 1_000, (1_000, 10_000)),  # 0.1 ms quota is below the kernel's 1 ms: the period grows
        (0.05, 10_000, (1_000, 20_000)),
        (1.5, 10_000, (15_000, 10_000)),  # more than one CPU: quota above the period
    ],
)
def test_quota_and_period_keep_the_fraction_and_the_kernel_minimum(fraction, period, expected):
    quota, p = cgroup.quota_and_period(fraction, period)
    assert (quota, p) == expected
    assert quota >= cgroup.MIN_QUOTA_US and quota / p == pytest.approx(fraction)


@pytest.mark.parametrize(
    "fraction,period", [(0.0, 100_000), (-1, 100_000), (0.1, 999), (0.1, 2_000_000), (0.0005, 100_000)]
)
def test_quota_and_period_refuse_what_the_kernel_cannot_do(fraction, period):
    with pytest.raises(ValueError):
        cgroup.quota_and_period(fraction, period)


def test_group_remembers_its_period():
    g = cgroup.CpuGroup("intradp-test-period", period_us=10_000)
    assert g.period_us == 10_000 and g.fraction is None and g.quota_us is None
    assert cgroup.CpuGroup("intradp-test-default").period_us == cgroup.PERIOD_US
