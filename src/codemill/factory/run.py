"""``codemill run``: the main job end to end, and its summary.

``resolve_source`` takes the source in once, as content; ``run_pipeline`` materializes
snapshots -> environments -> tasks -> rollouts -> rewards for it and one policy; every
stage is a cached asset keyed from that content, so a second run with the same inputs does
nothing, an edit re-runs what is downstream of it, and a crashed run resumes.
``summarize`` reads back what this snapshot and policy have in the ledger: tasks by kind,
the resolved rate with a 95% Wilson interval over graded (unmasked) rollouts, masked
rewards by reason, hack flags and time per stage.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codemill.core.config import Settings
from codemill.core.records import RepoSnapshot
from codemill.evals.stats import Rate, wilson
from codemill.factory.materialize import MaterializeResult
from codemill.rewards.config import HARNESS_VERSION

STAGES = ("snapshots", "environments", "tasks", "rollouts", "rewards")
ProgressFn = Callable[[str, int, int | None], None]


def resolve_source(cfg: Any, settings: Settings, *, progress: Callable[[str], None] | None
                   = None) -> RepoSnapshot:
    """The run's source resolved to content, once: a local tree hashed (its working-tree
    files as they are now), a git URL at its commit, a PyPI release by its sdist hash. The
    stored snapshot is content-addressed, so an unchanged source costs a hash, not a copy."""
    from codemill.repos.sources import snapshot_source

    return snapshot_source(cfg.source, settings.home, progress=progress)


def stage_configs(cfg: Any, snapshot: RepoSnapshot) -> dict[str, dict[str, Any]]:
    """Each asset gets only the fields it depends on, plus the snapshot it works on (by
    content id, never by the source string), so an edit to the source re-runs every
    stage, changing the model re-runs the rollouts and their rewards, and a grader change
    only the rewards."""
    full = cfg.model_dump(mode="json")
    sid = {"snapshot_id": snapshot.snapshot_id, "python": cfg.python}
    task_keys = ("synth_tasks", "feature_tasks", "kinds", "validation_runs")
    rollout_keys = ("model", "group_size", "max_turns", "max_tokens", "temperature", "seed",
                    *task_keys)
    return {
        "snapshots": {"snapshot": snapshot.model_dump(mode="json")},
        "environments": dict(sid),
        "tasks": {**sid, **{k: full[k] for k in task_keys}},
        "rollouts": {**sid, **{k: full[k] for k in rollout_keys}},
        "rewards": {**sid, "model": cfg.model},
    }


def run_pipeline(cfg: Any, settings: Settings, *, snapshot: RepoSnapshot | None = None,
                 progress: ProgressFn | None = None, command: str = "run",
                 stages: tuple[str, ...] = STAGES) -> MaterializeResult:
    """Materialize ``stages`` (default: every stage) and what they depend on for ``cfg``;
    ``snapshot`` is the source already resolved (``resolve_source``), resolved here when
    not given."""
    from codemill.factory.graph import REGISTRY, load_modules
    from codemill.factory.materialize import materialize

    load_modules()
    snap = snapshot or resolve_source(cfg, settings)
    return materialize(list(stages), stage_configs(cfg, snap), settings, registry=REGISTRY,
                       command=command, progress=progress)


def plan_pipeline(cfg: Any, settings: Settings, *, snapshot: RepoSnapshot | None = None
                  ) -> Any:
    """What ``run_pipeline`` would do for ``cfg``: each stage ``run`` or ``cached`` and why."""
    from codemill.factory.graph import REGISTRY, load_modules
    from codemill.factory.materialize import plan

    load_modules()
    snap = snapshot or resolve_source(cfg, settings)
    return plan(list(STAGES), stage_configs(cfg, snap), settings, registry=REGISTRY)


@dataclass
class RunSummary:
    source: str
    policy: str
    env_id: str | None
    env_status: str
    env_tests: int = 0
    """Tests in the environment's baseline, and how many of them pass (the fraction is
    shown next to the status)."""
    env_passing: int = 0
    tasks_by_kind: dict[str, int] = field(default_factory=dict)
    weak_tasks: int = 0
    rollouts: int = 0
    resolved: Rate = field(default_factory=lambda: wilson(0, 0))
    masked: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    ledger: str = ""

    def to_json(self) -> dict[str, Any]:
        r = self.resolved
        return {"source": self.source, "policy": self.policy, "env_id": self.env_id,
                "env_status": self.env_status, "env_tests": self.env_tests,
                "env_passing": self.env_passing, "tasks_by_kind": self.tasks_by_kind,
                "weak_tasks": self.weak_tasks, "rollouts": self.rollouts,
                "resolved": {"rate": r.value, "low": r.low, "high": r.high,
                             "successes": r.successes, "graded": r.n},
                "masked": self.masked, "flags": self.flags, "seconds": self.seconds,
                "ledger": self.ledger}


def summarize(cfg: Any, settings: Settings, result: MaterializeResult | None = None, *,
              snapshot: RepoSnapshot) -> RunSummary:
    """What the ledger holds for the run's ``snapshot`` and ``cfg.model`` (all runs,
    deduped by id). Reads only: the source is not snapshotted again."""
    from codemill.factory.lookup import env_rows, pick_env
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(settings) as ledger:
        rows = env_rows(ledger, f"snapshot_id == '{snapshot.snapshot_id}'")
        env = (pick_env(rows, python=cfg.python)
               or pick_env(rows, usable_only=False, python=cfg.python))
        if env is None and rows:  # a failed build has no venv, but has a reason
            from codemill.factory.lookup import env_from_row

            env = env_from_row(rows[0])
        summary = RunSummary(source=cfg.source, policy=cfg.model,
                             env_id=env.env_id if env else None,
                             env_status=f"{env.status.value}"
                             f"{': ' + env.reason if env.reason else ''}"
                             if env else "not built",
                             env_tests=env.n_tests if env else 0,
                             env_passing=env.n_passing if env else 0,
                             ledger=str(settings.catalog_uri()))
        if result is not None:
            summary.seconds = {name: o.seconds for name, o in result.outcomes.items()}
        if env is None:
            return summary
        tasks = {r["task_id"]: r for r in ledger.read(
            "tasks", row_filter=f"env_id == '{env.env_id}'",
            columns=["task_id", "kind", "metadata"]).to_pylist()}
        rewards = {r["rollout_id"]: r for r in ledger.read(
            "rewards", row_filter=f"env_id == '{env.env_id}'").to_pylist()
            if r["policy"] == cfg.model and r["task_id"] in tasks
            and r["harness_version"] == HARNESS_VERSION}
    summary.tasks_by_kind = dict(Counter(t["kind"] for t in tasks.values()))
    summary.weak_tasks = sum(bool(json.loads(t["metadata"] or "{}").get("weak"))
                             for t in tasks.values())
    summary.rollouts = len(rewards)
    graded = [r for r in rewards.values() if not r["masked"]]
    summary.resolved = wilson(sum(bool(r["resolved"]) for r in graded), len(graded))
    summary.masked = dict(Counter(r["error_type"] or "masked" for r in rewards.values()
                                  if r["masked"]))
    summary.flags = dict(Counter(f for r in rewards.values()
                                 for f in json.loads(r["flags"] or "[]")))
    return summary
