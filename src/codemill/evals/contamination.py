"""The contamination guard: a checkpoint is not scored on what it was trained on.

A checkpoint row (``checkpoints`` table) lists the tasks, snapshots, environments and
rollouts that fed it; its ``parent_id`` chain lists what fed its ancestors (an SFT
checkpoint under a GRPO one). ``check`` follows the chain and intersects the union with a
suite's members at three grains:

- the same task (the exact broken state and hidden tests were trained on);
- the same snapshot (the same tree, any task on it);
- the same project (another version of it: near-identical code, the usual leak).

Any overlap makes the pairing contaminated. The factory refuses such an eval unless told
``allow_contaminated``; then every sample row is marked and the overlap is listed with
the results. A model spec that is not a checkpoint (a base model, an endpoint, a scripted
policy) has no recorded lineage here: the guard says so instead of calling it clean.

Pure: the factory passes the rows in (``evals`` may not read the store).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codemill.core.errors import CodemillError
from codemill.evals.suites import SuiteTask


class ContaminationError(CodemillError):
    """An eval refused because the checkpoint's training data overlaps the suite."""

    def __init__(self, message: str, report: Contamination) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Contamination:
    checkpoint_id: str | None
    chain: tuple[str, ...] = ()
    """The checkpoint and its ancestors, newest first."""
    tasks: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    lineage_known: bool = True
    """False for a model spec with no checkpoint row (nothing to check against)."""
    affected: tuple[str, ...] = field(default=())
    """Suite task ids touched by any overlap."""

    @property
    def contaminated(self) -> bool:
        return bool(self.tasks or self.snapshots or self.projects)

    def summary(self) -> str:
        if not self.lineage_known:
            return "no recorded training lineage for this model (not a checkpoint)"
        if not self.contaminated:
            return f"clean: no overlap with the training data of {len(self.chain)} checkpoint(s)"
        return (f"contaminated: {len(self.affected)} suite task(s) overlap the training data "
                f"(shared tasks {len(self.tasks)}, snapshots {len(self.snapshots)}, "
                f"projects {', '.join(self.projects) or 'none'})")

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "contaminated": self.contaminated, "summary": self.summary()}


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return list(json.loads(value or "[]"))
    return list(value)


def lineage_chain(checkpoint_id: str, checkpoints: Iterable[Mapping[str, Any]]
                  ) -> list[Mapping[str, Any]]:
    """The row of ``checkpoint_id`` then its ancestors' rows (cycles and missing parents
    end the chain; a missing parent is lineage we cannot see, so it raises)."""
    by_id = {r["checkpoint_id"]: r for r in checkpoints}
    chain: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    current: str | None = checkpoint_id
    while current and current not in seen:
        seen.add(current)
        row = by_id.get(current)
        if row is None:
            raise CodemillError(f"checkpoint {current[:12]} has no row in the ledger: "
                                "its training data cannot be checked")
        chain.append(row)
        current = row.get("parent_id") or None
    return chain


def check(checkpoint_id: str | None, checkpoints: Iterable[Mapping[str, Any]],
          suite_tasks: Sequence[SuiteTask], *, env_snapshot: Mapping[str, str],
          snapshot_project: Mapping[str, str]) -> Contamination:
    """Overlap between the checkpoint's training lineage and ``suite_tasks``.

    ``env_snapshot`` maps environment ids to snapshot ids and ``snapshot_project``
    snapshot ids to project names (both from the ledger); they turn the training rows'
    task/env/snapshot ids into projects.
    """
    if checkpoint_id is None:
        return Contamination(None, lineage_known=False)
    chain = lineage_chain(checkpoint_id, checkpoints)
    trained_tasks: set[str] = set()
    trained_snaps: set[str] = set()
    for row in chain:
        trained_tasks.update(_ids(row.get("task_ids")))
        trained_snaps.update(_ids(row.get("snapshot_ids")))
        trained_snaps.update(env_snapshot[e] for e in _ids(row.get("env_ids"))
                             if e in env_snapshot)
    trained_projects = {snapshot_project[s] for s in trained_snaps if s in snapshot_project}
    shared_tasks, shared_snaps, shared_projects, affected = set(), set(), set(), set()
    for t in suite_tasks:
        snap = env_snapshot.get(t.env_id)
        hit = False
        if t.task_id in trained_tasks:
            shared_tasks.add(t.task_id)
            hit = True
        if snap is not None and snap in trained_snaps:
            shared_snaps.add(snap)
            hit = True
        if t.project in trained_projects:
            shared_projects.add(t.project)
            hit = True
        if hit:
            affected.add(t.task_id)
    return Contamination(checkpoint_id, tuple(r["checkpoint_id"] for r in chain),
                         tuple(sorted(shared_tasks)), tuple(sorted(shared_snaps)),
                         tuple(sorted(shared_projects)), True, tuple(sorted(affected)))


def guard(report: Contamination, *, allow_contaminated: bool) -> None:
    """Raise ``ContaminationError`` for a contaminated pairing unless allowed."""
    if report.contaminated and not allow_contaminated:
        raise ContaminationError(
            f"refused: {report.summary()}; pass --allow-contaminated to run it marked",
            report)
