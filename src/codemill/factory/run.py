"""``codemill run``: the main job end to end, and its summary.

``run_pipeline`` materializes snapshots -> environments -> tasks -> rollouts (with
rewards) for one source and policy; every stage is a cached asset, so a second run with the
same inputs does nothing and a crashed run resumes. ``summarize`` reads back what this
source and policy have in the ledger: tasks by kind, the resolved rate with a 95% Wilson
interval over graded (unmasked) rollouts, masked rewards by reason, hack flags and time per
stage.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codemill.core.config import Settings
from codemill.evals.stats import Rate, wilson
from codemill.factory.materialize import MaterializeResult

STAGES = ("snapshots", "environments", "tasks", "rollouts")
ProgressFn = Callable[[str, int, int | None], None]


def stage_configs(cfg: Any) -> dict[str, dict[str, Any]]:
    """Each asset gets only the fields it depends on, so changing the model reruns the
    rollouts but not the builds or the tasks."""
    full = cfg.model_dump(mode="json")
    task_keys = ("source", "python", "synth_tasks", "feature_tasks", "kinds", "validation_runs")
    return {
        "snapshots": {"source": cfg.source},
        "environments": {"source": cfg.source, "python": cfg.python},
        "tasks": {k: full[k] for k in task_keys},
        "rollouts": full,
    }


def run_pipeline(cfg: Any, settings: Settings, *, progress: ProgressFn | None = None,
                 command: str = "run") -> MaterializeResult:
    from codemill.factory.graph import REGISTRY, load_modules
    from codemill.factory.materialize import materialize

    load_modules()
    return materialize(list(STAGES), stage_configs(cfg), settings, registry=REGISTRY,
                       command=command, progress=progress)


def plan_pipeline(cfg: Any, settings: Settings) -> Any:
    """What ``run_pipeline`` would do for ``cfg``: each stage ``run`` or ``cached`` and why."""
    from codemill.factory.graph import REGISTRY, load_modules
    from codemill.factory.materialize import plan

    load_modules()
    return plan(list(STAGES), stage_configs(cfg), settings, registry=REGISTRY)


@dataclass
class RunSummary:
    source: str
    policy: str
    env_id: str | None
    env_status: str
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
                "env_status": self.env_status, "tasks_by_kind": self.tasks_by_kind,
                "weak_tasks": self.weak_tasks, "rollouts": self.rollouts,
                "resolved": {"rate": r.value, "low": r.low, "high": r.high,
                             "successes": r.successes, "graded": r.n},
                "masked": self.masked, "flags": self.flags, "seconds": self.seconds,
                "ledger": self.ledger}


def summarize(cfg: Any, settings: Settings, result: MaterializeResult | None = None
              ) -> RunSummary:
    """What the ledger holds for ``cfg.source`` and ``cfg.model`` (all runs, deduped by id)."""
    from codemill.envs.envstore import load_records
    from codemill.repos.sources import snapshot_source
    from codemill.store.ledger import Ledger

    snap = snapshot_source(cfg.source, settings.home)
    envs = [e for e in load_records(settings.home) if e.snapshot_id == snap.snapshot_id]
    env = next((e for e in reversed(envs) if e.status.value == "usable"),
               envs[-1] if envs else None)
    summary = RunSummary(source=cfg.source, policy=cfg.model,
                         env_id=env.env_id if env else None,
                         env_status=f"{env.status.value}{': ' + env.reason if env.reason else ''}"
                         if env else "not built",
                         ledger=str(settings.catalog_uri()))
    if result is not None:
        summary.seconds = {name: o.seconds for name, o in result.outcomes.items()}
    if env is None:
        return summary
    with Ledger.open(settings) as ledger:
        tasks = {r["task_id"]: r for r in ledger.read(
            "tasks", row_filter=f"env_id == '{env.env_id}'",
            columns=["task_id", "kind", "metadata"]).to_pylist()}
        rewards = {r["rollout_id"]: r for r in ledger.read(
            "rewards", row_filter=f"env_id == '{env.env_id}'").to_pylist()
            if r["policy"] == cfg.model and r["task_id"] in tasks}
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
