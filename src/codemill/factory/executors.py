"""Executors: run one function over many items, in parallel, results in input order.

One interface, two implementations, picked by ``settings.executor.kind`` in
``make_executor``:

- ``LocalExecutor``: a process pool sized to the machine (``settings.executor.workers``,
  0 meaning one per CPU this process may use), started with the ``forkserver`` context so
  it is safe next to threads; with one worker it runs items in-process, in order.
- ``RayExecutor`` (``codemill.factory.ray_executor``): Ray tasks on a local or remote cluster.

Failures are data, never lost: ``map`` yields exactly one result per item, in input order,
and an item whose function raised (or whose worker died) yields an ``ItemError`` *value*
in its slot instead of raising, so its siblings' results survive. Callers check
``isinstance(result, ItemError)``; ``ItemError.raise_()`` re-raises it as a ``FactoryError``.
Functions and items must pickle (module-level functions; the usual multiprocessing rule).

Executors are context managers; ``close()`` stops the workers they started.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from codemill.core.errors import FactoryError
from codemill.factory.executor_base import (
    Executor,
    ItemError,
    Progress,
    available_cpus,
    call_item,
)
from codemill.factory.ray_executor import RayExecutor

if TYPE_CHECKING:
    from codemill.core.config import Settings

__all__ = ["Executor", "ItemError", "LocalExecutor", "Progress", "RayExecutor",
           "available_cpus", "call_item", "make_executor"]


class LocalExecutor(Executor):
    """A process pool on this machine; in-process when ``workers == 1``."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers if workers > 0 else available_cpus()
        self._pool: cf.ProcessPoolExecutor | None = None

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        # forkserver: children fork from a clean server, not from this (possibly threaded)
        # process, and start faster than spawn.
        ctx = multiprocessing.get_context("forkserver")
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

    def _start(self, fn: Callable[[Any], Any], item: Any, index: int) -> Any:
        if self.workers == 1:
            return call_item(fn, item, index)
        if self._pool is None:
            self._pool = self._new_pool()
        try:
            return self._pool.submit(call_item, fn, item, index)
        except cf.process.BrokenProcessPool:
            # A worker died earlier; the in-flight items got their ItemError. Go on with a
            # fresh pool for the rest.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(call_item, fn, item, index)

    def _result(self, handle: Any, index: int) -> Any:
        if self.workers == 1:
            return handle
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as exc:
            return ItemError(index, "WorkerDied", f"worker process died: {exc}")
        except Exception as exc:  # e.g. an item or function that does not pickle
            return ItemError(index, type(exc).__name__, str(exc)[:2000])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(settings: Settings) -> Executor:
    """The executor ``settings.executor`` asks for."""
    cfg = settings.executor
    if cfg.kind == "local":
        return LocalExecutor(cfg.workers)
    if cfg.kind == "ray":
        return RayExecutor(cfg.workers, address=cfg.ray_address)
    raise FactoryError(f"unknown executor kind {cfg.kind!r} (known: local, ray)")
