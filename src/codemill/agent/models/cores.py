"""How many CPU threads the sampler's next forward pass should use: the cores no other
process is keeping busy, at least one.

torch runs a forward pass's kernels in OpenMP parallel regions, and each region ends at a
barrier across its threads. With the cores free, two threads decode a batch about 1.5x
faster than one; but when another process (a rollout's tests in a sandbox) keeps one of two
cores busy, the kernel deschedules one of the two threads now and then and every region
waits for it: the step runs about twice as slow as on one thread.
``bench/bench_engines.py`` measures both on the machine at hand. A fixed count is wrong for
one of the two cases, so the engine asks ``SpareCores`` before each step.

``SpareCores`` reads the busy time of this process's CPUs from ``/proc/stat``, subtracts
what this process itself used (``time.process_time``: its threads, not its children, so a
sandboxed tool counts as another process), and looks again at most every ``interval``
seconds. Where ``/proc/stat`` cannot be read it answers every core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def machine_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def spare_threads(cores: int, others_busy: float) -> int:
    """Threads for the next forward pass when other processes kept ``others_busy`` cores
    busy on average: the cores left over, rounded to the nearest, at least one."""
    return max(1, min(cores, cores - round(others_busy)))


def busy_seconds(cpus: set[int] | None = None, stat: Path = Path("/proc/stat")) -> float:
    """Seconds the given CPUs (all by default) have spent busy since boot: every field of
    their ``/proc/stat`` lines but idle and iowait. Raises ``OSError`` where unreadable."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for line in stat.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        fields = [int(x) for x in rest.split()]
        total += sum(fields) - fields[3] - fields[4]   # idle, iowait
    return total / tick


class SpareCores:
    """``spare()``: threads for the next forward pass (module docstring). Call it from one
    thread; it costs a file read at most every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5,
                 busy: Callable[[], float] | None = None,
                 own: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        try:
            cpus: set[int] | None = os.sched_getaffinity(0)
        except AttributeError:
            cpus = None
        self.cores = machine_cores()
        self.interval = interval
        self._busy = busy or (lambda: busy_seconds(cpus))
        self._own, self._clock = own, clock
        self.threads = self.cores
        try:
            self._last: tuple[float, float, float] | None = (
                self._clock(), self._busy(), self._own())
        except OSError:
            self._last = None  # no /proc/stat: every core, always

    def spare(self) -> int:
        if self._last is None:
            return self.threads
        now = self._clock()
        if now - self._last[0] < self.interval:
            return self.threads
        busy, own = self._busy(), self._own()
        wall = now - self._last[0]
        others = max(0.0, (busy - self._last[1]) - (own - self._last[2])) / wall
        self._last = (now, busy, own)
        self.threads = spare_threads(self.cores, others)
        return self.threads
