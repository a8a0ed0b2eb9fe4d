"""CPU time and resident memory of process trees, read from /proc; and a py-spy profile of one process.

:class:`Sampler` reads every watched process and all its descendants every ``period_s`` (a few /proc files
each, well under a millisecond): CPU = utime + stime of every live process in the tree plus the cutime +
cstime of the children they reaped, so a child that exits keeps counting. CPU over any window is
interpolated between samples (the kernel counts in 10 ms ticks). Memory: the peak of the tree's summed VmRSS
over the samples, and each process's own VmHWM (its kernel-kept peak), by role.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.support import ROOT

TICK = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (through /proc/<pid>/task/*/children)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found + [grand for child in found for grand in descendants(child)]


def cpu_seconds(pid: int, *, reaped: bool = True, thread: int | None = None) -> float | None:
    """utime + stime (+ cutime + cstime of reaped children) of ``pid`` in seconds, or of its one ``thread``; None
    when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11 : 15 if reaped else 13]) / TICK  # proc(5) fields 14-17


def memory_kb(pid: int) -> tuple[int, int, str]:
    """(VmRSS, VmHWM, name) of ``pid`` in kB; zeros when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0, ""
    values: dict[str, str] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM", "Name"}:
            values[key] = value.strip()
    kb = {key: int(values.get(key, "0 kB").split()[0]) for key in ("VmRSS", "VmHWM")}
    return kb["VmRSS"], kb["VmHWM"], values.get("Name", "")


def box_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is already in user
    return float(total - idle), float(total)


@dataclass
class _Tree:
    root: int
    with_children: bool = True
    split: str | None = None  # report the descendants apart from the root process, under this name
    threads: bool = False  # report the root's main thread (its event loop) apart from its other threads
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    root_cpu: list[float] = field(default_factory=list)  # the root process's own utime + stime
    loop_cpu: list[float] = field(default_factory=list)  # the root's main thread's utime + stime
    peak_rss_kb: int = 0
    hwm_kb: dict[str, int] = field(default_factory=dict)  # "role pid" -> VmHWM


class Sampler:
    """Samples the CPU and memory of named process trees, and of the whole box, in the background."""

    def __init__(self, period_s: float = 0.1) -> None:
        self.period_s = period_s
        self._trees: dict[str, _Tree] = {}
        self._box: list[tuple[float, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def watch(
        self, name: str, pid: int, *, children: bool = True, split: str | None = None, threads: bool = False
    ) -> None:
        """Follow ``pid`` (and its descendants unless ``children=False``) as ``name``, replacing an earlier one.

        With ``split``, reports also show the root process alone (``"<name> main"``) and its descendants alone
        (``split``; children that exited and were reaped count there too): a worker and its inference processes.
        With ``threads``, the root's main thread (``"<name> event loop"``) and its other threads (``"<name> other
        threads"``: aiosqlite's connection thread, ``asyncio.to_thread`` work …) apart.
        """
        self._trees[name] = _Tree(pid, children, split, threads)
        self._sample_tree(self._trees[name], time.time())

    def forget(self, name: str) -> None:
        self._trees.pop(name, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sample()

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.period_s)  # the sampling period

    def sample(self) -> None:
        now = time.time()
        busy, total = box_cpu()
        self._box.append((now, busy, total))
        for tree in self._trees.values():
            self._sample_tree(tree, now)

    def _sample_tree(self, tree: _Tree, now: float) -> None:
        pids = [tree.root, *descendants(tree.root)] if tree.with_children else [tree.root]
        cpu = 0.0
        rss = 0
        alive = False
        own = cpu_seconds(tree.root, reaped=False)
        loop = cpu_seconds(tree.root, reaped=False, thread=tree.root) if tree.threads else None
        for index, pid in enumerate(pids):
            seconds = cpu_seconds(pid, reaped=tree.with_children)
            if seconds is None:
                continue
            alive = True
            cpu += seconds
            current, hwm, name = memory_kb(pid)
            rss += current
            role = "main" if index == 0 else f"child {name}"
            key = f"{role} {pid}"
            tree.hwm_kb[key] = max(tree.hwm_kb.get(key, 0), hwm)
        if not alive:
            return
        tree.times.append(now)
        tree.cpu.append(cpu)
        tree.root_cpu.append(own if own is not None else (tree.root_cpu[-1] if tree.root_cpu else 0.0))
        tree.loop_cpu.append(loop if loop is not None else (tree.loop_cpu[-1] if tree.loop_cpu else 0.0))
        tree.peak_rss_kb = max(tree.peak_rss_kb, rss)

    def cpu_s(self, name: str, start: float, end: float, *, part: str = "tree") -> float | None:
        """CPU seconds the tree ``name`` used between two UNIX times (interpolated between samples); ``part``:
        the whole ``tree``, its ``root`` process alone, its ``descendants`` alone, the root's main thread
        (``loop``) or its other threads (``threads``)."""
        tree = self._trees.get(name)
        if tree is None or len(tree.times) < 2:
            return None

        def used(series: list[float]) -> float:
            return _interpolate(tree.times, series, end) - _interpolate(tree.times, series, start)

        whole, root, loop = used(tree.cpu), used(tree.root_cpu), used(tree.loop_cpu)
        value = {"tree": whole, "root": root, "descendants": whole - root, "loop": loop, "threads": root - loop}
        return max(value[part], 0.0)

    def box_busy(self, start: float, end: float) -> float | None:
        """How busy all CPUs were between two UNIX times (1.0 = every core fully busy)."""
        if len(self._box) < 2:
            return None
        times = [t for t, _, _ in self._box]
        busy = _interpolate(times, [b for _, b, _ in self._box], end) - _interpolate(
            times, [b for _, b, _ in self._box], start
        )
        total = _interpolate(times, [t for _, _, t in self._box], end) - _interpolate(
            times, [t for _, _, t in self._box], start
        )
        return round(busy / total, 3) if total > 0 else None

    def cpu_report(self, start: float, end: float, per: int) -> dict[str, Any]:
        """CPU ms per unit of work (``per`` photos) and cores used, per tree, over a window."""
        out: dict[str, Any] = {}
        span = max(end - start, 1e-9)
        parts: dict[str, Any] = {}
        for name, tree in self._trees.items():
            seconds = self.cpu_s(name, start, end)
            if seconds is None:
                continue
            out[name] = _usage(seconds, per, span)
            if tree.split is not None:
                parts[f"{name} main"] = _usage(self.cpu_s(name, start, end, part="root") or 0.0, per, span)
                parts[tree.split] = _usage(self.cpu_s(name, start, end, part="descendants") or 0.0, per, span)
            if tree.threads:
                parts[f"{name} event loop"] = _usage(self.cpu_s(name, start, end, part="loop") or 0.0, per, span)
                parts[f"{name} other threads"] = _usage(self.cpu_s(name, start, end, part="threads") or 0.0, per, span)
        busy = self.box_busy(start, end)
        if busy is not None:
            ours = sum(v["cores"] for v in out.values())
            out["others_cores"] = round(max(busy * (os.cpu_count() or 1) - ours, 0.0), 2)
        out["box_busy"] = busy
        if parts:  # only for trees watched with split or threads (the other benchmarks read every dict as a tree)
            out["parts"] = parts
        return out

    def memory_report(self) -> dict[str, Any]:
        """Peak resident memory (MB) per tree: the summed tree peak, and each process's own VmHWM."""
        return {
            name: {
                "peak_tree_rss_mb": round(tree.peak_rss_kb / 1024, 1),
                "vm_hwm_mb": {key: round(kb / 1024, 1) for key, kb in sorted(tree.hwm_kb.items())},
            }
            for name, tree in self._trees.items()
        }


def _usage(seconds: float, per: int, span: float) -> dict[str, Any]:
    return {"cpu_ms_per_photo": round(seconds * 1000 / per, 2) if per else None, "cores": round(seconds / span, 3)}


def _interpolate(times: list[float], values: list[float], at: float) -> float:
    if at <= times[0]:
        return values[0]
    if at >= times[-1]:
        return values[-1]
    i = bisect_left(times, at)
    t0, t1 = times[i - 1], times[i]
    v0, v1 = values[i - 1], values[i]
    return v0 + (v1 - v0) * (at - t0) / (t1 - t0) if t1 > t0 else v1


# --- profiling -------------------------------------------------------------------------------------------


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.is_file() else shutil.which("py-spy")


Groups = Sequence[tuple[str, Sequence[str]]]
"""Parts of a program for a profile: (name, markers); a stack belongs to the first part with a marker in any of its
frames (``"function (path/file.py"`` or a path); a part without markers takes every stack left. Frames that hold a
marker of ``ENTRY_FRAMES`` (a service's entry point, under every stack of its main thread) are not looked at."""

ENTRY_FRAMES = (
    "/queue_gateway/main.py", "/queue_gateway/runtime/", "/queue_gateway/public/entry.py",
    "/queue_gateway/public/runner.py", "/detectbot/cli.py", "/worker/main.py", "/bots/telegram/main.py",
)  # fmt: skip

# Leaf frames of a thread that waits (py-spy's own idle test misses some under --nonblocking); a pipe's read or
# write waits for the other end (a job is written ahead while the slot still works on the one before)
IDLE_LEAVES = (
    "select (selectors.py", "EpollSelector.select", "_PollLikeSelector.select", "Condition.wait (threading.py",
    "Event.wait (threading.py", "Queue.get (queue.py", "_recv (multiprocessing/connection.py",
    "_send (multiprocessing/connection.py", "wait (multiprocessing/connection.py", "Thread.join",
)  # fmt: skip


class Profile:
    """``py-spy record`` attached to one process until :meth:`stop`; then its top functions by self time.

    ``gil``: sample only the thread holding the GIL, i.e. Python running on a CPU (C code that lets the GIL go,
    such as SQLite under aiosqlite or ONNX Runtime, and every wait, are left out); otherwise every thread that is
    not waiting (``IDLE_LEAVES``). ``groups``: the share of each part of the program (:data:`Groups`).
    """

    def __init__(
        self,
        pid: int,
        out: Path,
        *,
        rate: int = 100,
        subprocesses: bool = False,
        gil: bool = False,
        groups: Groups = (),
    ) -> None:
        self.pid = pid
        self.subprocesses = subprocesses
        self.out = out
        self.rate = rate
        self.gil = gil
        self.groups = groups
        self._proc: asyncio.subprocess.Process | None = None
        self._log = out.with_suffix(".log")
        self._started = 0.0

    async def start(self) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        with self._log.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw", "--function",
                "--nonblocking", *(["--subprocesses"] if self.subprocesses else []), *(["--gil"] if self.gil else []),
                "-o", str(self.out), stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        self._started = time.time()

    async def stop(self, top: int = 40) -> dict[str, Any]:
        if self._proc is None:
            return {}
        seconds = time.time() - self._started
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            await asyncio.wait_for(self._proc.wait(), 30)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        if not self.out.is_file():
            return {"error": self._log.read_text(errors="replace")[-500:]}
        found = top_functions(self.out.read_text(), top, groups=self.groups, root_pid=self.pid, drop_idle=not self.gil)
        return {"mode": "gil" if self.gil else "on-cpu threads", "rate_hz": self.rate,
                "seconds": round(seconds, 1), **found}  # fmt: skip


@dataclass
class _Tally:
    """Samples counted by leaf function, by every function on the stack, by package, by part and by process."""

    groups: Groups
    root_pid: int | None
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)
    parts: Counter[str] = field(default_factory=Counter)
    inside: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # part -> leaves
    processes: Counter[str] = field(default_factory=Counter)

    def add(self, stack: str, frames: list[str], count: int) -> None:
        self.samples += count
        self.own[frames[-1]] += count
        self.packages[_package(frames[-1])] += count
        for frame in set(frames):
            self.total[frame] += count
        if self.groups:
            part = _part(stack, self.groups)
            self.parts[part] += count
            self.inside[part][_package(frames[-1])] += count
        if self.root_pid is not None:
            self.processes[_process(frames, self.root_pid)] += count


def top_functions(
    raw: str, top: int = 40, *, groups: Groups = (), root_pid: int | None = None, drop_idle: bool = False
) -> dict[str, Any]:
    """py-spy's raw (collapsed) stacks -> the functions with the most self and total samples, by package, by part
    (``groups``, with the packages each part's samples end in) and, for a profile with subprocesses, by process
    (the root, ``root_pid``, and its children)."""
    tally = _Tally(groups, root_pid)
    idle = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if drop_idle and any(marker in frames[-1] for marker in IDLE_LEAVES):
            idle += int(count_text)
            continue
        tally.add(stack, frames, int(count_text))
    samples, own, total = tally.samples, tally.own, tally.total
    if not samples:
        return {"samples": 0, "idle_samples_dropped": idle}

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": _short(frame), "self_pct": round(100 * own[frame] / samples, 1),
             "total_pct": round(100 * total[frame] / samples, 1), "self_samples": own[frame]}
            for frame, _ in counter.most_common(top)
        ]  # fmt: skip

    def shares(counter: Counter[str], key: str) -> list[dict[str, Any]]:
        return [{key: name, "pct": round(100 * n / samples, 1), "samples": n} for name, n in counter.most_common()]

    found: dict[str, Any] = {
        "samples": samples,
        "idle_samples_dropped": idle,
        "top_self": rows(own),
        "top_total": rows(total),
        "self_by_package": [
            {"package": name, "self_pct": round(100 * n / samples, 1)} for name, n in tally.packages.most_common(15)
        ],
    }
    if groups:
        found["parts"] = shares(tally.parts, "part")
        for row in found["parts"]:  # where each part's own time goes: the packages its samples end in
            leaves = tally.inside[row["part"]]
            row["leaf_packages_pct"] = {name: round(100 * n / row["samples"], 1) for name, n in leaves.most_common(6)}
    if root_pid is not None and len(tally.processes) > 1:
        found["processes"] = shares(tally.processes, "process")
    return found


def _part(stack: str, groups: Groups) -> str:
    if any(marker in stack for marker in ENTRY_FRAMES):
        stack = ";".join(f for f in stack.split(";") if not any(marker in f for marker in ENTRY_FRAMES))
    for name, markers in groups:
        if not markers or any(marker in stack for marker in markers):
            return name
    return "other"


def _process(frames: list[str], root_pid: int) -> str:
    """``main`` for the profiled process itself, ``child`` for its subprocesses (py-spy's ``process N:`` frames)."""
    pids = [frame.split(":", 1)[0].removeprefix("process ") for frame in frames if frame.startswith("process ")]
    return "main" if not pids or pids[-1] == str(root_pid) else "child"


def _short(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py:12)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3.11/", f"{ROOT}/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def _package(frame: str) -> str:
    """The top-level package (or stdlib module) of a frame; py-spy names files relative to sys.path."""
    where = frame.partition(" (")[2].rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", f"{ROOT}/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return where.split("/", 1)[0].removesuffix(".py") or "?"


def find_pid(name: str) -> int | None:
    """The oldest process whose command name is ``name`` (e.g. RabbitMQ's ``beam.smp``), or None."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return min(found) if found else None
