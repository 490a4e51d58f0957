"""``RayExecutor``: the executor interface on Ray tasks, for scale-out.

Connects to ``address`` (``settings.executor.ray_address``, ``CODEMILL_EXECUTOR__RAY_ADDRESS``,
e.g. ``127.0.0.1:6379`` of a ``ray start --head``) when given; otherwise starts a local Ray
with ``workers`` CPUs (0: every CPU) and no dashboard. On ``close`` it disconnects if it
connected (``ray.shutdown`` in a driver leaves a cluster it joined running) and stops the
local Ray it started; a Ray the caller had already initialized is left alone.

A task whose worker or node dies is retried by Ray (``MAX_RETRIES`` times) on another
node, so an item's function must be safe to run again: codemill's assets are, since
they skip ids already in the ledger. Functions and items travel by pickle; files they
name (snapshots, environments under ``settings.home``) must be at the same path on
every node: a shared filesystem. ``ray`` is imported on construction, never at module
import. Same failure contract as ``LocalExecutor``: an item's exception, or a Ray error
such as a dead worker, comes back as an ``ItemError`` in its slot.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from codemill.core.errors import FactoryError
from codemill.factory.executor_base import Executor, ItemError, available_cpus, call_item

MAX_RETRIES = 3
"""Times Ray reruns an item whose worker process or node died (not one that raised: that
is an ``ItemError`` value, returned at once)."""


class RayExecutor(Executor):
    def __init__(self, workers: int = 0, *, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise FactoryError("executor kind 'ray' needs ray: pip install 'codemill[ray]'"
                               ) from exc
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            # Workers import functions by module name, like a process pool's children do,
            # so they search the driver's own code paths too (tests, file-loaded modules).
            job = ray.job_config.JobConfig(code_search_path=_code_paths())
            # Workers' output stays in Ray's session logs: forwarded, it would land on
            # the driver's stdout, which a command's --json owns.
            if address:
                ray.init(address=address, job_config=job, log_to_driver=False)
            else:
                ray.init(num_cpus=workers if workers > 0 else available_cpus(),
                         include_dashboard=False, job_config=job, log_to_driver=False)
            self._started = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(max_retries=MAX_RETRIES)(call_item)
        self._fn: Callable[[Any], Any] | None = None
        self._fn_ref: Any = None

    @property
    def window(self) -> int:
        # Ray tasks cost ~1 ms of scheduling each; a deeper queue keeps workers busy
        # while the driver waits on results in order.
        return max(64, self.workers * 16)

    def _start(self, fn: Callable[[Any], Any], item: Any, index: int) -> Any:
        if fn is not self._fn:  # ship the function once per map, not once per item
            self._fn, self._fn_ref = fn, self._ray.put(fn)
        return self._remote.remote(self._fn_ref, item, index)

    def _result(self, handle: Any, index: int) -> Any:
        try:
            return self._ray.get(handle)
        except self._ray.exceptions.RayError as exc:
            text = _ANSI.sub("", str(exc)).strip()
            last = text.splitlines()[-1] if text else ""
            return ItemError(index, type(exc).__name__, last[:2000], text[-8000:])

    def close(self) -> None:
        self._fn = self._fn_ref = None
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _code_paths() -> list[str]:
    """The driver's ``sys.path`` entries that hold user code (not the interpreter's own
    library or site-packages, which workers already have)."""
    system = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        if not os.path.isdir(path) or "site-packages" in path:
            continue
        if any(path == s or path.startswith(s + os.sep) for s in system):
            continue
        if path not in paths:
            paths.append(path)
    return paths
