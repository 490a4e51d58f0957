"""The order a task's selection runs in at grading: pytest's own listing of the whole suite.

Validation ran the whole suite and a task's PASS_TO_PASS lists what passed there; a suite
whose tests depend on their order fails an honest fix when the same tests run in another
order. ``listed(...)`` asks the project's pytest, in the task's gold state (never the
candidate's: its code would run during the listing), for the node ids a whole-suite run
reaches, in that order (``PytestRunner.collect``), and keeps them on disk under
``<home>/cache/run_order/``, named by everything they depend on (the environment, the
task's patches and hidden paths, the runner's command), so a kept listing is never stale
and a task is listed once however often it is graded. None when pytest could not list the
suite; the grader then orders by reading the sources (``codemill.testing.order``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from codemill.core.boundary import boundary
from codemill.core.ids import content_id
from codemill.core.records import EnvSpec, TaskSpec
from codemill.rewards import workspace as W
from codemill.sandbox.api import open_sandbox

RUN_ORDER_VERSION = "1"
LIST_TIMEOUT_S = 300.0
LIST_OUTPUT_BYTES = 64 << 20
"""Output kept for a listing: one line per test (a 26,000-test suite lists about 3 MB)."""

_LOCKS = tuple(threading.Lock() for _ in range(64))
"""Striped by key: a group of samples of one task lists it once, the number of locks stays
fixed however many tasks a process grades (two tasks on one stripe only wait in turn)."""


def listed(task: TaskSpec, env: EnvSpec, home: Path, spec: Any, runner: Any,
           defences: W.Defences, backend: str | None) -> list[str] | None:
    """The whole suite's node ids in run order, in ``task``'s gold state (module doc)."""
    key = content_id("run-order", RUN_ORDER_VERSION, env.env_id, task.broken_patch,
                     task.gold_patch, task.test_patch, sorted(task.hidden_paths),
                     list(runner.command(None)))
    path = Path(home) / "cache" / "run_order" / f"{key}.json"
    with _LOCKS[hash(key) % len(_LOCKS)]:
        try:
            return list(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
        ids = _list(task, home, spec, runner, defences, backend)
        if ids is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(ids))
            os.replace(tmp, path)
        return ids


def _list(task: TaskSpec, home: Path, spec: Any, runner: Any, defences: W.Defences,
          backend: str | None) -> list[str] | None:
    limits = spec.limits.model_copy(update={"output_limit": LIST_OUTPUT_BYTES})
    with (boundary("sandbox", "list the suite in its gold state") as b,
          open_sandbox(spec.model_copy(update={"limits": limits}), home,
                       backend=backend) as sb):
        prep = W.prepare(sb, task, task.gold_patch, base_layers=spec.layers,
                         defences=defences)
        ids = runner.collect(sb, timeout_s=LIST_TIMEOUT_S) if prep.ok else None
    return None if b.failed else ids
