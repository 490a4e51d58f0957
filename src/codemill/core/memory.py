"""Giving freed memory back to the operating system.

glibc's ``malloc`` keeps what a program frees in its arenas for reuse, and returns to the
system only what sits at the top of a heap. A block at least as large as its mmap
threshold gets its own mapping and goes back when freed, but the threshold rises (up to
32 MB) each time such a block is freed, so a torch step on a CPU, which frees thousands of
activations of a few megabytes, leaves gigabytes resident after it returns. A GRPO round
runs an update and then samples in the same process: the sampler's keys and values are
then allocated beside what the update left behind (``resident_gb`` in each round's
metrics). ``malloc_trim(0)`` hands every free page of every arena back. Where the C library
has no ``malloc_trim`` (macOS, musl) there is nothing to do.
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
