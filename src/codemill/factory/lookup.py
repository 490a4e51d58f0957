"""One lookup for what the ledger knows, by id, prefix or SWE-bench ``instance_id``.

Every command and asset that turns a reference a person typed into a record comes here;
the ledger is the truth (the installed environments on disk, ``envs/installs.py``, hold
venvs and layers, no records: a cache of what the ledger's rows describe). Functions
take a ``reader``: anything with ``read(table, row_filter=, columns=)`` returning Arrow and
``table_names()`` (``codemill.store.reader.LedgerReader``, or the factory's ``Ledger``).

- ``find_task(reader, ref)``: a task id, a unique prefix of one (4+ hex digits), or the
  ``instance_id`` of its SWE-bench export (``<repo>__codemill-<12 hex>``, or the
  original id of an imported instance).
- ``find_env(reader, ref)``: an environment id or unique prefix.
- ``env_for_snapshot(reader, snapshot_id)`` / ``pick_env(rows)``: the snapshot's latest
  usable environment whose venv is on disk (or, ``usable_only=False``, any installed one).
- ``snapshot_of(reader, snapshot_id)``: the snapshot record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from codemill.core.errors import BuildError, TaskError
from codemill.core.records import EnvSpec, EnvStatus, RepoSnapshot, TaskSpec

_HEX = re.compile(r"^[0-9a-f]{4,64}$")
_INSTANCE = re.compile(r"__codemill-([0-9a-f]{12})$")


def _rows(reader: Any, table: str, row_filter: str | None = None) -> list[dict[str, Any]]:
    if table not in reader.table_names():
        return []
    return reader.read(table, row_filter=row_filter).to_pylist()


def _latest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: str(r.get("created_at") or ""), reverse=True)


def _quote(value: str) -> str:
    if "'" in value:
        raise TaskError(f"not an id: {value!r}")
    return f"'{value}'"


# -- tasks ---------------------------------------------------------------------------------


def load_tasks(reader: Any, env_id: str | None = None) -> list[TaskSpec]:
    """The tasks in the ledger (one per id, first recorded wins), optionally of one env."""
    from codemill.store.rows import row_to_record

    flt = f"env_id == {_quote(env_id)}" if env_id else None
    seen: dict[str, TaskSpec] = {}
    for row in _rows(reader, "tasks", flt):
        seen.setdefault(row["task_id"], row_to_record(TaskSpec, row))
    return list(seen.values())


def find_task(reader: Any, ref: str, tasks: list[TaskSpec] | None = None) -> TaskSpec:
    """The one task ``ref`` names (see the module docstring); ``TaskError`` if none or
    several."""
    ref = ref.strip()
    pool = tasks if tasks is not None else load_tasks(reader)
    exported = _INSTANCE.search(ref)
    if exported:
        matches = {t.task_id: t for t in pool if t.task_id.startswith(exported.group(1))}
    else:
        matches = {t.task_id: t for t in pool if t.metadata.get("instance_id") == ref}
        if not matches and _HEX.match(ref.lower()):
            matches = {t.task_id: t for t in pool if t.task_id.startswith(ref.lower())}
    if len(matches) != 1:
        raise TaskError(f"{'no' if not matches else 'ambiguous'} task id {ref!r}")
    return next(iter(matches.values()))


def decided_candidates(reader: Any, env_id: str, *, retry_rejected: bool = False
                       ) -> tuple[set[str], set[str]]:
    """(candidate ids decided before, task ids present) for ``env_id``: a rerun skips
    the candidates, so a crashed run resumes without redoing or duplicating them. With
    ``retry_rejected`` only accepted candidates count as decided."""
    cands: set[str] = set()
    if not retry_rejected:
        for r in _rows(reader, "task_validations", f"env_id == {_quote(env_id)}"):
            details = json.loads(r["details"]) if r.get("details") else {}
            cands.add(details.get("candidate_id") or r["task_id"])
    tasks = load_tasks(reader, env_id)
    cands |= {str(t.metadata.get("candidate_id") or t.task_id) for t in tasks}
    return cands, {t.task_id for t in tasks}


# -- environments and snapshots ------------------------------------------------------------


def env_from_row(row: dict[str, Any]) -> EnvSpec:
    """An ``EnvSpec`` from an ``environments`` row (extra columns are left out)."""
    data = {k: row.get(k) for k in EnvSpec.model_fields if row.get(k) is not None}
    for key in ("test_command", "env_vars"):
        value = data.get(key)
        if isinstance(value, str):
            data[key] = json.loads(value)
    return EnvSpec.model_validate(data)


def env_rows(reader: Any, row_filter: str | None = None) -> list[dict[str, Any]]:
    """The latest row of each environment (newest first)."""
    out: dict[str, dict[str, Any]] = {}
    for row in _latest_first(_rows(reader, "environments", row_filter)):
        out.setdefault(row["env_id"], row)
    return list(out.values())


def find_env(reader: Any, ref: str) -> EnvSpec:
    """The environment whose id starts with ``ref`` (4+ hex digits); ``BuildError`` if
    none or ambiguous."""
    prefix = ref.strip().lower()
    if not _HEX.match(prefix):
        raise BuildError(f"not an environment id: {prefix!r} (give at least 4 hex digits)")
    matches = {r["env_id"]: r for r in env_rows(reader) if r["env_id"].startswith(prefix)}
    if not matches:
        raise BuildError(f"no environment with id {prefix}")
    if len(matches) > 1:
        raise BuildError(f"environment id {prefix} is ambiguous",
                         ", ".join(sorted(i[:12] for i in matches)))
    return env_from_row(next(iter(matches.values())))


def pick_env(rows: list[dict[str, Any]], *, usable_only: bool = True,
             python: str | None = None, builder_version: str | None = None
             ) -> EnvSpec | None:
    """The newest environment among ``environments`` rows whose install finished and
    whose venv is on disk: a usable one, or with ``usable_only=False`` any (its tests may
    fail: a repository a user wants fixed often has failing tests). ``python`` (a version
    prefix) and ``builder_version`` narrow the choice."""
    latest: dict[str, dict[str, Any]] = {}
    for row in _latest_first(rows):
        latest.setdefault(row["env_id"], row)
    envs = [env_from_row(r) for r in latest.values()]
    envs = [e for e in envs if e.lock_hash and e.venv_path and Path(e.venv_path).is_dir()
            and (not python or not python[0].isdigit() or (e.python or "").startswith(python))
            and (not builder_version or e.builder_version == builder_version)]
    usable = [e for e in envs if e.status == EnvStatus.USABLE]
    pool = usable if usable_only or usable else envs
    return pool[0] if pool else None


def env_for_snapshot(reader: Any, snapshot_id: str, *, usable_only: bool = True,
                     python: str | None = None) -> EnvSpec | None:
    """``pick_env`` over the recorded environments of ``snapshot_id``."""
    return pick_env(env_rows(reader, f"snapshot_id == {_quote(snapshot_id)}"),
                    usable_only=usable_only, python=python)


def snapshot_of(reader: Any, snapshot_id: str) -> RepoSnapshot | None:
    """The snapshot record ``snapshot_id``, if recorded."""
    from codemill.store.rows import row_to_record

    rows = _rows(reader, "snapshots", f"snapshot_id == {_quote(snapshot_id)}")
    return row_to_record(RepoSnapshot, rows[0]) if rows else None


def baseline_reports(reader: Any, env_id: str, phase: str = "baseline") -> list[Any]:
    """The build's k full baseline runs of ``env_id`` (``TestReport``s, in run order);
    ``phase="baseline-repeat"``: its runs of a sample of the suite after them."""
    from codemill.store.rows import reports_from_rows

    rows = [r for r in _rows(reader, "test_results", f"env_id == {_quote(env_id)}")
            if r.get("phase") == phase and not r.get("task_id")]
    return reports_from_rows(rows)
