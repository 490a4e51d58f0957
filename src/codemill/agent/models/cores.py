"""How many CPU threads the sampler's next forward pass should use: the cores no other
process is keeping busy, at least one.

torch runs a forward pass's kernels in OpenMP parallel regions, and each region ends at a
barrier across its threads. With the cores free, two threads decode a batch faster than
one; but when another process (a rollout's tests in a sandbox) keeps one of two cores busy,
the kernel deschedules one of the two threads now and then and every region waits for it:
the step runs slower than on one thread.
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
from pathlib import Path

from codemill.core.config import available_cpus


def _cpus() -> set[int] | None:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return None


def spare_threads(cores: int, others_busy: float) -> int:
    """Threads for the next forward pass when other processes kept ``others_busy`` cores
    busy on average: the cores left over (the nearest whole number), at least one."""
    return max(1, min(cores, cores - round(others_busy)))


def busy_seconds(cpus: set[int] | None = None, stat: Path = Path("/proc/stat")) -> float:
    """Seconds the given CPUs (all by default) have spent busy since boot, from their
    ``/proc/stat`` lines: user, nice, system, irq, softirq and steal (guest time is already
    inside user and nice). Raises ``OSError`` where the file cannot be read."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for line in stat.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            [int(x) for x in rest.split()] + [0] * 8)[:8]
        total += user + nice + system + irq + softirq + steal
    return total / tick


class SpareCores:
    """``spare()``: threads for the next forward pass (module docstring). Call it from one
    thread; it costs a file read at most every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.cores, self.interval = available_cpus(), interval
        self._cpus = _cpus()
        self.threads = self.cores
        try:
            self._last: tuple[float, float, float] | None = self._look()
        except OSError:
            self._last = None  # no /proc/stat: every core, always

    def _look(self) -> tuple[float, float, float]:
        return time.monotonic(), busy_seconds(self._cpus), time.process_time()

    def spare(self) -> int:
        if self._last is None or time.monotonic() - self._last[0] < self.interval:
            return self.threads
        now, busy, own = self._look()
        then, busy_then, own_then = self._last
        others = max(0.0, (busy - busy_then) - (own - own_then)) / (now - then)
        self._last = (now, busy, own)
        self.threads = spare_threads(self.cores, others)
        return self.threads
