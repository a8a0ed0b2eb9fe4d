"""How many CPUs this process may really use: its CPU affinity, capped by its cgroup's CPU quota.

``os.cpu_count()`` is the host's CPUs: in a container limited to 2 CPUs on a 64-core node it says 64, and a worker
sized from it starts more inference processes and threads than it has CPU time for (they then throttle each other).
The quota is cgroup v2's ``cpu.max`` (``"200000 100000"`` is 2 CPUs, ``"max 100000"`` none) or cgroup v1's
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: none), read for this process's cgroup and each of its ancestors
(the tightest wins), as the kernel applies them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
_V1_CPU_DIRS = ("cpu,cpuacct", "cpu", "cpuacct,cpu")


def cpu_budget(
    *,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_SELF_CGROUP,
    affinity: Collection[int] | None = None,
) -> int:
    """Whole CPUs this process may use (at least 1): the CPUs it may run on, capped by its cgroup's quota."""
    if affinity is None:
        affinity = _affinity()
    cpus = max(1, len(affinity))
    quota = cgroup_cpu_limit(cgroup_root=cgroup_root, proc_cgroup=proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return cpus


def cgroup_cpu_limit(*, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The CPU quota in CPUs (2.0 for 200 ms per 100 ms), or None where no cgroup sets one."""
    paths = _cgroup_paths(proc_cgroup)
    limits: list[float] = []
    for directory in _ancestors(cgroup_root, paths.get("", "/")):  # cgroup v2 (the unified hierarchy)
        limit = _read_cpu_max(directory / "cpu.max")
        if limit is not None:
            limits.append(limit)
    for name in _V1_CPU_DIRS:  # cgroup v1: the cpu controller's hierarchy
        for directory in _ancestors(cgroup_root / name, paths.get("cpu", "/")):
            limit = _read_cfs(directory)
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def _affinity() -> Collection[int]:
    getter = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every CPU counts
    if getter is not None:
        affinity: Collection[int] = getter(0)
        return affinity
    return range(os.cpu_count() or 1)


def _cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """``{"": v2 path, "cpu": v1 cpu path}`` from ``/proc/self/cgroup`` lines such as ``0::/kubepods/pod1/c1``."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return {}
    paths: dict[str, str] = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths[""] = path
        elif "cpu" in controllers.split(","):
            paths["cpu"] = path
    return paths


def _ancestors(mount: Path, path: str) -> Iterator[Path]:
    """``mount/a/b``, ``mount/a``, ``mount``: the cgroup and its ancestors, as far as this mount shows them.

    Inside a container the mount often shows only the container's own cgroup at its root, while
    ``/proc/self/cgroup`` still names the host's path; directories that do not exist are passed over.
    """
    parts = [part for part in path.strip("/").split("/") if part and part not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        directory = mount.joinpath(*parts[:depth])
        if directory.is_dir():
            yield directory


def _read_cpu_max(path: Path) -> float | None:
    try:
        fields = path.read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _read_cfs(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:  # -1: no quota
        return None
    return q / p
