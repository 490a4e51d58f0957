"""The executor interface: an ordered, windowed ``map`` whose failures are values.

``Executor`` is the base both executors build on (``LocalExecutor`` in
``codemill.factory.executors``, ``RayExecutor`` in ``codemill.factory.ray_executor``);
``ItemError`` is one item's failure returned in its slot; ``call_item`` runs one item in a
worker. Kept apart from ``executors`` so the Ray executor and ``make_executor`` import it
without importing each other.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# re-exported for the factory's callers; it lives in core, where the sampler reads it too
from codemill.core.config import available_cpus as available_cpus
from codemill.core.errors import FactoryError

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called as each result is handed out."""


class ItemError(FactoryError):
    """The failure of one item of a ``map``: where (index), what (type, message), and the
    worker's traceback text. Returned as a value, picklable across processes."""

    def __init__(self, index: int, error_type: str, message: str, tb: str = "") -> None:
        super().__init__(f"item {index}: {error_type}: {message}")
        self.index = index
        self.error_type = error_type
        self.message = message
        self.traceback = tb

    def __reduce__(self) -> tuple[Any, ...]:
        return (ItemError, (self.index, self.error_type, self.message, self.traceback))

    def raise_(self) -> None:
        raise self


def call_item(fn: Callable[[Any], Any], item: Any, index: int) -> Any:
    """Run ``fn(item)`` in a worker; an exception comes back as an ``ItemError`` value, so
    an unpicklable exception cannot break the pool."""
    try:
        return fn(item)
    except Exception as exc:  # any failure of user code becomes data in its slot
        return ItemError(index, type(exc).__name__, str(exc)[:2000],
                         traceback.format_exc()[-8000:])


class Executor:
    """Base: an ordered, windowed ``map`` over ``_start`` (submit one) and ``_result``
    (wait for one). At most ``window`` items are in flight, so a long list of items does
    not flood the workers' queues."""

    workers: int = 1

    @property
    def window(self) -> int:
        return max(1, self.workers * 4)

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], *, progress: Progress | None = None
    ) -> Iterator[Any]:
        """Yield ``fn(item)`` for each item in input order (``ItemError`` for failures)."""
        items = list(items)
        total = len(items)
        pending: deque[tuple[int, Any]] = deque()
        nxt = 0
        done = 0
        while done < total:
            while nxt < total and len(pending) < self.window:
                pending.append((nxt, self._start(fn, items[nxt], nxt)))
                nxt += 1
            index, handle = pending.popleft()
            result = self._result(handle, index)
            done += 1
            if progress is not None:
                progress(done, total)
            yield result

    def _start(self, fn: Callable[[Any], Any], item: Any, index: int) -> Any:
        raise NotImplementedError

    def _result(self, handle: Any, index: int) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers this executor started (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
