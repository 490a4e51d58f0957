"""Reading what evals need from the ledger: suites, their tasks and environments, lineage.

The eval assets (``codemill.factory.evaluation``) and the CLI go through these readers;
``codemill.evals`` stays pure and gets plain rows. ``reader`` is a function
``read(table, columns=None, row_filter=None) -> list[dict]``: ``AssetContext.read`` inside
an asset, ``ledger_reader(ledger)`` outside.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from codemill.core.errors import FactoryError
from codemill.core.records import EnvSpec, TaskSpec
from codemill.evals.suites import SuiteSpec, SuiteTask, suite_task


def ledger_reader(ledger: Any) -> Any:
    """A reader over an open ``Ledger``."""
    def read(table: str, columns: list[str] | None = None,
             row_filter: str | None = None) -> list[dict[str, Any]]:
        return ledger.read(table, row_filter=row_filter, columns=columns).to_pylist()
    return read


def _rows(reader: Any, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    return list(reader(table, columns=columns))


def quoted(ids: Iterable[str]) -> str:
    # ids are content hashes (hex): safe to quote
    return ", ".join(f"'{i}'" for i in sorted(set(ids)))


def env_snapshots(reader: Any) -> dict[str, str]:
    """``env_id -> snapshot_id`` for every recorded environment."""
    return {r["env_id"]: r["snapshot_id"]
            for r in _rows(reader, "environments", ["env_id", "snapshot_id"])}


def snapshot_projects(reader: Any) -> dict[str, str]:
    """``snapshot_id -> project name`` (the snapshot's name, else its source)."""
    out = {}
    for r in _rows(reader, "snapshots", ["snapshot_id", "name", "source"]):
        out[r["snapshot_id"]] = r["name"] or r["source"] or r["snapshot_id"][:12]
    return out


def candidate_tasks(reader: Any) -> list[SuiteTask]:
    """Every recorded task as a suite member candidate, with its project."""
    env_snap, snap_project = env_snapshots(reader), snapshot_projects(reader)
    out = []
    for row in _rows(reader, "tasks", ["task_id", "env_id", "kind", "metadata"]):
        snap = env_snap.get(row["env_id"])
        project = snap_project.get(snap or "", (snap or row["env_id"])[:12])
        out.append(suite_task(row, project))
    return out


def find_suite(reader: Any, ref: str) -> SuiteSpec:
    """The suite named ``ref``: ``NAME`` (its latest version), ``NAME@VERSION`` or a suite
    id prefix."""
    rows = _rows(reader, "suites")
    name, _, version = ref.partition("@")
    hits = [r for r in rows if r["name"] == name and (not version or r["version"] == version)]
    if not hits:
        hits = [r for r in rows if r["suite_id"].startswith(ref)] if len(ref) >= 6 else []
    if not hits:
        known = ", ".join(sorted({f"{r['name']}@{r['version']}" for r in rows})) or "none"
        raise FactoryError(f"no suite {ref!r} (known: {known}); define one with "
                           "`codemill eval suite NAME`")
    if len({r["suite_id"] for r in hits}) > 1 and version == "" and name == ref:
        hits = sorted(hits, key=lambda r: str(r["created_at"]))[-1:]
    suite = hits[-1]
    members = reader("suite_tasks", row_filter=f"suite_id == '{suite['suite_id']}'")
    dedup = {m["task_id"]: m for m in members}
    return SuiteSpec.from_rows(suite, dedup.values())


def suite_tasks(reader: Any, suite: SuiteSpec) -> list[TaskSpec]:
    """The suite's tasks as records, in member order (each must still be recorded)."""
    from codemill.store.rows import row_to_record

    wanted = [t.task_id for t in suite.tasks]
    rows = reader("tasks", row_filter=f"task_id in ({quoted(wanted)})")
    by_id = {r["task_id"]: row_to_record(TaskSpec, r) for r in rows}
    missing = [t for t in wanted if t not in by_id]
    if missing:
        raise FactoryError(f"suite {suite.name}@{suite.version}: {len(missing)} task(s) "
                           f"not in the ledger (first {missing[0][:12]})")
    return [by_id[t] for t in wanted]


def task_envs(reader: Any, env_ids: Iterable[str]) -> dict[str, EnvSpec]:
    """The environments of ``env_ids``, from the ledger (the one truth; the environment
    store on disk only holds what the rows name)."""
    from codemill.store.rows import row_to_record

    wanted = set(env_ids)
    rows = reader("environments", row_filter=f"env_id in ({quoted(wanted)})")
    envs = {r["env_id"]: row_to_record(EnvSpec, r) for r in rows}
    missing = wanted - set(envs)
    if missing:
        raise FactoryError(f"environment {sorted(missing)[0][:12]} of a suite task is not "
                           "recorded")
    return envs


def resolve_checkpoint(reader: Any, prefix: str) -> dict[str, Any]:
    """The ``checkpoints`` row whose id starts with ``prefix`` (exactly one)."""
    rows = [r for r in _rows(reader, "checkpoints") if r["checkpoint_id"].startswith(prefix)]
    ids = {r["checkpoint_id"] for r in rows}
    if len(ids) != 1:
        what = "no" if not ids else f"{len(ids)}"
        raise FactoryError(f"{what} checkpoint(s) match {prefix!r}")
    return rows[-1]
