"""``release_freed_memory``: freed blocks the allocator kept go back to the system."""

from __future__ import annotations

import sys

from codemill.core.memory import release_freed_memory, resident_bytes

MB = 1 << 20


def _resident() -> int:
    return resident_bytes()[0]


def test_memory_freed_between_live_blocks_is_given_back():
    assert sys.platform == "linux"  # the factory's machines; glibc has malloc_trim
    # Freeing a 24 MB block raises glibc's mmap threshold past 1 MB, so the blocks below
    # come from the heap, as a torch step's activations do.
    big = bytearray(24 * MB)
    del big
    blocks = [bytearray(MB) for _ in range(256)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
    held = _resident()
    del blocks[::2]  # every other block: each hole sits between two live blocks
    freed = _resident()
    assert release_freed_memory()
    after = _resident()
    assert held - freed < 32 * MB  # free() kept the holes resident
    assert freed - after > 64 * MB  # the trim gave most of the 128 MB back
    del blocks
