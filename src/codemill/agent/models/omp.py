"""Give back the calling thread's OpenMP workers, so another thread's torch kernels run at
full speed.

torch's CPU kernels on Linux run in libgomp parallel regions. libgomp keeps a pool of worker
threads for every thread that has started a region, and once the pools together hold more
threads than the machine has CPUs it stops letting workers spin between regions: each
worker sleeps on a futex and every region pays a wake-up. A decode step is thousands of
short regions, so a model driven from a second thread (the batched engine's scheduler) runs
slower than on the thread that loaded it and keeps fewer cores busy
(``bench/bench_sampler.py --thread-check`` measures both on the machine at hand).

``release_openmp_threads()`` frees the calling thread's pool (OpenMP 5's
``omp_pause_resource_all``): a thread that is done with torch for a while calls it, and the
thread that works next has the cores alone. The pool comes back by itself at the caller's
next parallel region, so calling it is always safe; where libgomp is not loaded (another
OpenMP runtime, macOS) it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

_OMP_PAUSE_SOFT = 1


@functools.cache
def _libgomp() -> Any | None:
    """The libgomp this process has loaded (torch's own copy), or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.rsplit(" ", 1)[-1]  # the mapped file's path ends the line
        if "/libgomp" in path and ".so" in path:
            try:
                lib = ctypes.CDLL(path)  # already loaded: dlopen returns the same handle
                fn = lib.omp_pause_resource_all
            except (OSError, AttributeError):
                return None
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            return fn
    return None


def release_openmp_threads() -> bool:
    """Free the calling thread's OpenMP worker pool; True if one was freed (or none held).
    Call it outside any torch operation, from the thread that is going idle."""
    fn = _libgomp()
    return fn is not None and fn(_OMP_PAUSE_SOFT) == 0
