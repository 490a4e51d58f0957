"""Environments on request: ``codemill env build`` and ``solve`` through the same assets as
``codemill run`` (``snapshots`` -> ``environments``), so a build is recorded, cached and
named alike whichever command asked for it.

    built = build_environment("path/or/url[@rev]" | "pypi:NAME[==VER]", settings)
    built.env, built.row (the ledger row: disk_bytes, attempt, build_log ...), built.counts
    env = ensure_env(source, settings, usable_only=False)   # solve: failing tests will do
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.records import EnvSpec, Outcome, RepoSnapshot

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltEnv:
    """An environment as the ledger records it, after ``build_environment``."""

    env: EnvSpec
    snapshot: RepoSnapshot
    row: dict[str, Any]
    """The ``environments`` row (with ``disk_bytes``, ``shared_venv``, ``attempt``,
    ``python_reason`` and the tail of ``build_log`` when this codemill built it)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Baseline outcomes of the first run: ``{passed, failed, error, skipped}``."""
    cached: bool = False
    """Nothing was built: the ledger already had it."""


def _materialize_env(source: str, settings: Settings, python: str | None,
                     progress: Progress | None) -> tuple[RepoSnapshot, Any]:
    from codemill.factory.graph import REGISTRY, load_modules
    from codemill.factory.materialize import materialize
    from codemill.repos.sources import snapshot_source

    load_modules()
    snap = snapshot_source(source, settings.home, progress=progress)
    config = {"snapshots": {"snapshot": snap.model_dump(mode="json")},
              "environments": {"snapshot_id": snap.snapshot_id, "python": python}}
    result = materialize(["environments"], config, settings, registry=REGISTRY,
                         command=f"env build {source}",
                         progress=(lambda name, done, total: progress(f"{name} {done}"))
                         if progress else None)
    result.raise_for_status()
    return snap, result


def build_environment(source: str, settings: Settings, *, python: str | None = None,
                      progress: Progress | None = None) -> BuiltEnv:
    """Snapshot ``source`` and build its environment unless the ledger has it; return the
    recorded environment (usable or not: its status and reason say)."""
    from codemill.factory.lookup import env_from_row, env_rows, pick_env
    from codemill.store.reader import LedgerReader

    snap, result = _materialize_env(source, settings, python, progress)
    with LedgerReader.open(settings) as reader:
        rows = env_rows(reader, f"snapshot_id == '{snap.snapshot_id}'")
        env = pick_env(rows, python=python) or (env_from_row(rows[0]) if rows else None)
        if env is None:
            raise FactoryError(f"no environment was recorded for {source}")
        row = next(r for r in rows if r["env_id"] == env.env_id)
        first = reader.read("test_results", columns=["outcome", "run_index", "phase"],
                            row_filter=f"env_id == '{env.env_id}'").to_pylist()
    counts = {o.value: 0 for o in Outcome}
    for r in first:
        if r["phase"] == "baseline" and r["run_index"] == 0 and r["outcome"] in counts:
            counts[r["outcome"]] += 1
    return BuiltEnv(env=env, snapshot=snap, row=row, counts=counts,
                    cached=result.outcomes["environments"].rows == 0)


def ensure_env(source: str, settings: Settings, *, python: str | None = None,
               progress: Progress | None = None, usable_only: bool = True) -> EnvSpec:
    """Snapshot ``source`` and return its environment, building it if needed; with
    ``usable_only=False`` an installed environment whose tests fail will do."""
    from codemill.factory.lookup import env_rows, pick_env
    from codemill.store.reader import LedgerReader

    snap, _ = _materialize_env(source, settings, python, progress)
    with LedgerReader.open(settings) as reader:
        rows = env_rows(reader, f"snapshot_id == '{snap.snapshot_id}'")
    env = pick_env(rows, usable_only=usable_only, python=python)
    if env is None:
        why = rows[0].get("reason") if rows else "no environment was recorded"
        raise FactoryError(f"no usable environment for {source}: {why}")
    return env
