"""Per-run cgroups: limits (memory, pids, cpu) and a kill switch for a whole process tree.

Each sandboxed command gets fresh cgroups nested under this process's own, created before the
command starts and removed after it ends. Works with cgroup v1 controllers (what this machine
has), the v2 unified tree (``cgroup.kill`` kills a tree atomically, even a fork bomb), or a
mix. A controller that is missing or not writable is skipped, never faked: ``limits_applied``
says what is enforced.

CPU accounting: a run's CPU time (the v2 ``cpu.stat`` ``usage_usec``, or v1
``cpuacct.usage`` where that controller is in the run's hierarchies) is added, when its
cgroups are removed, to a per-process total that ``sandboxes_cpu_seconds()`` returns: a
sandbox's processes are not this process's waited-for children, so ``getrusage`` misses them.
Where no hierarchy accounts CPU, the total stays 0.

Non-goals: io limits, cpusets, swap accounting beyond setting memsw equal to memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from codemill.core.config import SandboxConfig

V1_CONTROLLERS = ("memory", "pids", "cpu", "freezer")
CPU_PERIOD_US = 100_000
# bwrap itself and bwrap's pid 1 live in the pids cgroup too; the command gets ``pids``.
PIDS_OVERHEAD = 2
_CPU_USED_S = [0.0]  # this process's removed runs, summed (``sandboxes_cpu_seconds``)


def sandboxes_cpu_seconds() -> float:
    """CPU seconds used by the sandboxed runs this process has finished (and removed the
    cgroups of), by cgroup accounting; 0 where no hierarchy accounts CPU."""
    return _CPU_USED_S[0]


@dataclass(frozen=True)
class _Hierarchy:
    """One mounted cgroup hierarchy and this process's place in it."""

    mount: Path
    controllers: frozenset[str]
    current: str
    v2: bool

    def parent(self) -> Path:
        return self.mount / self.current.lstrip("/")


def _parse_mountinfo() -> list[tuple[Path, str, frozenset[str]]]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields, rest = pre.split(), post.split()
        if len(fields) < 5 or len(rest) < 3 or fields[3] != "/":
            continue
        fstype, options = rest[0], rest[2].split(",")
        if fstype == "cgroup2":
            mounts.append((Path(fields[4]), "v2", frozenset()))
        elif fstype == "cgroup":
            mounts.append((Path(fields[4]), "v1", frozenset(o for o in options
                                                             if o in V1_CONTROLLERS)))
    return mounts


@cache
def hierarchies() -> tuple[_Hierarchy, ...]:
    """The writable hierarchies we can nest under (cached; the mounts do not change)."""
    own_v1: dict[str, str] = {}
    own_v2 = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if names == "":
            own_v2 = path
        for name in names.split(","):
            own_v1[name] = path
    found: list[_Hierarchy] = []
    seen: set[str] = set()
    for mount, kind, ctrls in _parse_mountinfo():
        if kind == "v2" and own_v2 is not None:
            avail = (mount / own_v2.lstrip("/") / "cgroup.subtree_control")
            enabled = frozenset(avail.read_text().split()) if avail.exists() else frozenset()
            found.append(_Hierarchy(mount, enabled & {"memory", "pids", "cpu"}, own_v2, True))
        elif kind == "v1" and ctrls and not ctrls & seen:
            name = sorted(ctrls)[0]
            if name in own_v1:
                found.append(_Hierarchy(mount, ctrls, own_v1[name], False))
                seen |= ctrls
    return tuple(h for h in found if os.access(h.parent(), os.W_OK))


@dataclass
class CgroupEvents:
    """What the kernel recorded during one run."""

    oom_kills: int = 0
    pids_limited: int = 0


@dataclass
class RunCgroup:
    """The cgroups of one run. ``procs_files`` are joined by writing the leader's pid."""

    name: str
    dirs: list[tuple[_Hierarchy, Path]] = field(default_factory=list)
    limits_applied: set[str] = field(default_factory=set)
    cpu_counted: bool = False
    """Its CPU time is in the process total (a second ``remove`` does not add it again)."""

    @classmethod
    def create(cls, name: str, limits: SandboxConfig) -> RunCgroup:
        run = cls(name)
        taken: set[str] = set()
        for h in hierarchies():
            path = h.parent() / name
            try:
                path.mkdir()
            except OSError:
                continue
            run.dirs.append((h, path))
            for ctrl in sorted(h.controllers - taken):
                if run._limit(h, path, ctrl, limits):
                    taken.add(ctrl)
                    run.limits_applied.add(ctrl)
        return run

    def _limit(self, h: _Hierarchy, path: Path, ctrl: str, limits: SandboxConfig) -> bool:
        mem = limits.memory_mb * 1024 * 1024
        quota = int(limits.cpu_quota * CPU_PERIOD_US)
        if h.v2:
            writes = {
                "memory": [("memory.max", mem), ("memory.swap.max", 0)],
                "pids": [("pids.max", limits.pids + PIDS_OVERHEAD)],
                "cpu": [("cpu.max", f"{quota} {CPU_PERIOD_US}")] if quota > 0 else [],
            }.get(ctrl, [])
        else:
            writes = {
                "memory": [("memory.limit_in_bytes", mem), ("memory.memsw.limit_in_bytes", mem)],
                "pids": [("pids.max", limits.pids + PIDS_OVERHEAD)],
                "cpu": [("cpu.cfs_period_us", CPU_PERIOD_US), ("cpu.cfs_quota_us", quota)]
                if quota > 0 else [],
            }.get(ctrl, [])
        ok = ctrl != "freezer"
        for fname, value in writes:
            try:
                (path / fname).write_text(str(value))
            except FileNotFoundError:
                continue  # memsw / swap files exist only with swap accounting
            except OSError:
                ok = False
        return ok and bool(writes)

    @property
    def procs_files(self) -> list[Path]:
        return [p / "cgroup.procs" for _, p in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError):
                found |= {int(x) for x in f.read_text().split()}
        return found

    def kill(self) -> None:
        """SIGKILL every process in the run's cgroups, including ones forked meanwhile."""
        for h, p in self.dirs:
            if h.v2 and (p / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (p / "cgroup.kill").write_text("1")
        freezer = next((p for h, p in self.dirs if "freezer" in h.controllers), None)
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            if freezer is not None:  # a frozen tree cannot fork while we kill it
                with contextlib.suppress(OSError):
                    (freezer / "freezer.state").write_text("FROZEN")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if freezer is not None:
                with contextlib.suppress(OSError):
                    (freezer / "freezer.state").write_text("THAWED")
            time.sleep(0.002)

    def cpu_seconds(self) -> float:
        """CPU time the run's processes used, from the first hierarchy that accounts it."""
        for _, p in self.dirs:
            usec = _counter(p / "cpu.stat", "usage_usec")  # v2
            if usec:
                return usec / 1e6
            with contextlib.suppress(OSError, ValueError):
                return int((p / "cpuacct.usage").read_text()) / 1e9  # v1, nanoseconds
        return 0.0

    def events(self) -> CgroupEvents:
        ev = CgroupEvents()
        for _, p in self.dirs:
            for fname in ("memory.oom_control", "memory.events"):
                ev.oom_kills = max(ev.oom_kills, _counter(p / fname, "oom_kill"))
            ev.pids_limited = max(ev.pids_limited, _counter(p / "pids.events", "max"))
        return ev

    def remove(self, wait_s: float = 2.0) -> bool:
        """Kill what is left and remove the directories; False if one would not go."""
        self.kill()
        if not self.cpu_counted:
            _CPU_USED_S[0] += self.cpu_seconds()
            self.cpu_counted = True
        deadline = time.monotonic() + wait_s
        left = []
        for _, p in reversed(self.dirs):
            while True:
                try:
                    p.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        left.append(p)
                        break
                    self.kill()
                    time.sleep(0.005)
        self.dirs = [(h, p) for h, p in self.dirs if p in left]
        return not left


def _counter(path: Path, key: str) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return 0


def leftover_cgroups(prefix: str = "codemill-") -> list[Path]:
    """Cgroup directories named ``prefix*`` under our own cgroups (for leak checks)."""
    out = []
    for h in hierarchies():
        with contextlib.suppress(OSError):
            out += [p for p in h.parent().iterdir() if p.name.startswith(prefix)]
    return out
