"""Run a started process to completion: bounded output capture and a wall-clock deadline.

Shared by both sandbox backends. stdout and stderr are read as they come (so a chatty
command never blocks on a full pipe) and each keeps at most ``limit`` bytes: the first half
and the last half, with a note in the middle saying how much was cut (test summaries live at
the end of the output). At the deadline, or when ``tick`` reports a reason (a full disk),
``kill`` is called once; it must kill the whole process tree. Pipes that stay open after the
main process exited (an orphan holding them) are given a moment, then ``kill`` too.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

ORPHAN_GRACE_S = 0.2
DRAIN_GRACE_S = 5.0
READ_CHUNK = 1 << 16


class BoundedBuffer:
    """Keeps the head and the tail of a byte stream, at most ``limit`` bytes in all."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        head_cap = self.limit - self.limit // 2
        take = min(len(data), head_cap - len(self.head))
        if take > 0:
            self.head += data[:take]
            data = data[take:]
        if data:
            self.tail += data
            tail_cap = self.limit // 2
            if len(self.tail) > tail_cap:
                del self.tail[: len(self.tail) - tail_cap]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        cut = self.total - len(self.head) - len(self.tail)
        note = f"\n[... codemill: {cut} bytes of output cut ...]\n"
        return (self.head.decode("utf-8", "replace") + note
                + self.tail.decode("utf-8", "replace"))


@dataclass
class Outcome:
    exit_code: int | None
    stdout: str
    stderr: str
    truncated: bool
    stderr_truncated: bool
    killed_reason: str | None
    duration_s: float


def drive(
    proc: subprocess.Popen[bytes],
    *,
    started: float,
    timeout_s: float,
    limit: int,
    kill: Callable[[], None],
    tick: Callable[[], str | None] | None = None,
    tick_s: float = 1.0,
) -> Outcome:
    """Capture ``proc``'s output until it exits and its pipes close, or kill it."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = started + timeout_s
    buffers = {
        proc.stdout.fileno(): BoundedBuffer(limit),
        proc.stderr.fileno(): BoundedBuffer(limit),
    }
    order = list(buffers)
    sel = selectors.DefaultSelector()
    for fd in buffers:
        sel.register(fd, selectors.EVENT_READ)
    reason: str | None = None
    give_up_at: float | None = None
    exited_at: float | None = None
    next_tick = started + tick_s

    def stop(why: str) -> None:
        nonlocal reason, give_up_at
        if reason is None:
            reason = why
            give_up_at = time.monotonic() + DRAIN_GRACE_S
            kill()

    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                stop("timeout")
            if tick is not None and now >= next_tick and reason is None:
                next_tick = now + tick_s
                why = tick()
                if why:
                    stop(why)
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > ORPHAN_GRACE_S and reason is None:
                stop("orphans")
            if give_up_at is not None and now > give_up_at:
                break
            wait = min(deadline - now, next_tick - now if tick else 1.0, 0.05 if exited_at else 1.0)
            for key, _ in sel.select(max(0.0, wait)):
                data = os.read(key.fd, READ_CHUNK)
                if data:
                    buffers[key.fd].feed(data)
                else:
                    sel.unregister(key.fd)
        remaining = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            stop("timeout")
            proc.wait()
    finally:
        sel.close()
    if reason == "orphans":
        reason = None  # the command itself finished; only leftovers were killed
    out, err = (buffers[fd] for fd in order)
    return Outcome(
        exit_code=proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        truncated=out.truncated or err.truncated,
        stderr_truncated=err.truncated,
        killed_reason=reason,
        duration_s=time.monotonic() - started,
    )
