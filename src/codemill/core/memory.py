"""A process's memory: how much is resident, and giving freed memory back to the system.

glibc's ``malloc`` keeps what a program frees in its arenas for reuse, and returns to the
system only what sits at the top of a heap. A block at least as large as its mmap
threshold gets its own mapping and goes back when freed, but the threshold rises (up to
32 MB) each time such a block is freed, so a torch step on a CPU, which frees thousands of
activations of a few megabytes, leaves gigabytes resident after it returns. A GRPO round
runs an update and then samples in the same process: the sampler's keys and values are
then allocated beside what the update left behind (``resident_gb`` in each round's
metrics). ``malloc_trim(0)`` hands every free page of every arena back. Where the C library
has no ``malloc_trim`` (macOS, musl) there is nothing to do.

``resident_bytes`` reads the resident set and its peak from Linux's ``/proc``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Return the C allocator's free pages to the operating system (after a phase that
    freed a lot: a training step, a sampler's storage). True where the C library can
    (glibc); it takes a few hundredths of a second for gigabytes."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True


def resident_bytes() -> tuple[int, int]:
    """(resident set now, its peak so far) of this process in bytes, from Linux's
    ``/proc/self/status``; (0, 0) where there is none."""
    try:
        with open("/proc/self/status") as status:
            kb = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in status)
                  if k in ("VmRSS", "VmHWM")}
    except OSError:
        return 0, 0
    return kb.get("VmRSS", 0) * 1024, kb.get("VmHWM", 0) * 1024
