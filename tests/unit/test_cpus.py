"""The worker sizes itself from the CPUs its cgroup gives it, not the host's: fake cgroup trees in a tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cpus import cgroup_cpu_limit, cpu_budget
from worker.settings import WorkerSettings

HOST = range(64)  # a 64-core node


def tree(root: Path, files: dict[str, str], self_cgroup: str) -> Path:
    """Write cgroup files under ``root/sys`` and ``/proc/self/cgroup`` as ``root/cgroup``; return the latter."""
    for relative, content in files.items():
        path = root / "sys" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (root / "sys").mkdir(exist_ok=True)
    proc = root / "cgroup"
    proc.write_text(self_cgroup)
    return proc


def budget(root: Path, files: dict[str, str], self_cgroup: str = "0::/\n", affinity=HOST) -> int:
    proc = tree(root, files, self_cgroup)
    return cpu_budget(cgroup_root=root / "sys", proc_cgroup=proc, affinity=affinity)


def test_cgroup_v2_quota_of_two_cpus_on_a_large_host(tmp_path: Path) -> None:
    assert budget(tmp_path, {"cpu.max": "200000 100000\n"}) == 2


def test_cgroup_v2_without_a_quota_leaves_the_affinity(tmp_path: Path) -> None:
    assert budget(tmp_path, {"cpu.max": "max 100000\n"}) == 64
    assert budget(tmp_path, {"cpu.max": "max 100000\n"}, affinity={0, 1, 2}) == 3


def test_a_fraction_rounds_down_but_never_below_one(tmp_path: Path) -> None:
    assert budget(tmp_path / "a", {"cpu.max": "250000 100000"}) == 2
    assert budget(tmp_path / "b", {"cpu.max": "50000 100000"}) == 1


def test_the_affinity_caps_a_larger_quota(tmp_path: Path) -> None:
    assert budget(tmp_path, {"cpu.max": "800000 100000"}, affinity={4, 5}) == 2


def test_cgroup_v2_nested_path_and_the_tightest_ancestor(tmp_path: Path) -> None:
    """A host view: the process's cgroup sets no quota, its pod's does; the tightest one applies."""
    files = {
        "kubepods/pod1/cpu.max": "300000 100000",
        "kubepods/pod1/c1/cpu.max": "max 100000",
        "kubepods/cpu.max": "max 100000",
    }
    assert budget(tmp_path, files, "0::/kubepods/pod1/c1\n") == 3
    assert cgroup_cpu_limit(cgroup_root=tmp_path / "sys", proc_cgroup=tmp_path / "cgroup") == 3.0


def test_container_view_where_the_host_path_is_not_mounted(tmp_path: Path) -> None:
    """Inside a container /proc/self/cgroup may name the host's path while the mount shows only its own cgroup."""
    assert budget(tmp_path, {"cpu.max": "150000 100000"}, "0::/kubepods/burstable/pod9/abc\n") == 1


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    assert budget(tmp_path, files, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n") == 2


def test_cgroup_v1_no_quota(tmp_path: Path) -> None:
    files = {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert budget(tmp_path, files, "3:cpu:/\n") == 64


def test_cgroup_v1_nested_path(tmp_path: Path) -> None:
    files = {
        "cpu/cpu.cfs_quota_us": "-1",
        "cpu/cpu.cfs_period_us": "100000",
        "cpu/docker/abc/cpu.cfs_quota_us": "400000",
        "cpu/docker/abc/cpu.cfs_period_us": "100000",
    }
    assert budget(tmp_path, files, "3:cpu:/docker/abc\n") == 4


def test_no_cgroup_files_at_all(tmp_path: Path) -> None:
    assert budget(tmp_path, {}, "") == 64
    assert cpu_budget(cgroup_root=tmp_path / "none", proc_cgroup=tmp_path / "missing", affinity={0}) == 1


def test_garbage_is_no_quota(tmp_path: Path) -> None:
    assert budget(tmp_path, {"cpu.max": "lots\n"}) == 64
    assert budget(tmp_path / "b", {"cpu.max": "abc 100000\n"}) == 64


def test_this_machine_reads_without_error() -> None:
    """The real /sys/fs/cgroup and /proc/self/cgroup: a whole number of CPUs, at most what the process may use."""
    import os

    assert 1 <= cpu_budget() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("cpus", "slots", "threads"), [(2, 2, 1), (1, 1, 1), (3, 3, 1), (16, 4, 4), (64, 4, 16)])
def test_a_worker_given_n_cpus_starts_the_slots_and_threads_that_fit(
    tmp_path: Path, cpus: int, slots: int, threads: int
) -> None:
    """A worker given 2 CPUs by its cgroup on a 64-core host: 2 inference processes of 1 thread each."""
    given = budget(tmp_path, {"cpu.max": f"{cpus * 100000} 100000"})
    settings = WorkerSettings(cpus=given, data_dir=tmp_path)
    assert (settings.slots, settings.threads_per_slot(), settings.prefetch_count()) == (slots, threads, 2 * slots)


def test_explicit_slots_and_threads_win(tmp_path: Path) -> None:
    settings = WorkerSettings(cpus=2, slots=3, infer_threads=2, data_dir=tmp_path)
    assert (settings.slots, settings.threads_per_slot()) == (3, 2)


def test_the_default_comes_from_the_cgroup(tmp_path: Path) -> None:
    settings = WorkerSettings(data_dir=tmp_path)
    assert settings.cpus == cpu_budget()
    assert settings.slots == min(cpu_budget(), 4)
