"""Module-level functions the executor tests send to worker processes (they must pickle)."""

import os


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError(f"no threes ({x})")
    return x * x


def die_on_two(x: int) -> int:
    if x == 2:
        os._exit(7)  # a worker that dies without a Python exception
    return x + 100


def pid_of(_: int) -> int:
    return os.getpid()
