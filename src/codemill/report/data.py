"""What the report shows, read from the ledger into plain values.

Per environment, what runs recorded without any suite (``codemill run``, ``rollout``): the
environment's source, status and baseline pass fraction, its tasks by kind, every rollout
with its reward (current harness version) and flags, and a few trajectories. Per suite:
every eval recorded on it (pass@1 and pass@k with intervals, masked, costs, per-project
rates), paired comparisons of every two variants, judge agreement; the training curve
of every checkpoint (``checkpoints.metrics``, a JSON list per step); and a few
trajectories per variant (one resolved and one not, when there are) with their steps,
observations and reward.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from codemill.core.config import Settings
from codemill.evals.compare import Comparison, compare
from codemill.evals.judge import Agreement, agreement
from codemill.evals.suites import SuiteSpec
from codemill.factory.eval_api import EvalResult, load_eval
from codemill.factory.eval_inputs import find_suite, ledger_reader
from codemill.rewards.config import HARNESS_VERSION


@dataclass
class SuiteReport:
    suite: SuiteSpec
    evals: list[EvalResult]
    comparisons: list[Comparison]
    agreements: dict[str, list[tuple[str, Agreement]]]
    """``judge -> [(variant, agreement)]``, plus ``"all"`` pooled per judge."""
    trajectories: list[dict[str, Any]]


@dataclass
class RunsReport:
    """What the ledger holds for one environment, whether or not a suite covers it."""
    env_id: str
    source: str
    status: str
    n_tests: int
    n_passing: int
    tasks_by_kind: dict[str, int]
    rollouts: list[dict[str, Any]]
    """A ``rollouts`` row each (newest first) with ``"reward"``: its reward row or ``{}``."""
    trajectories: list[dict[str, Any]]


@dataclass
class ReportData:
    runs: list[RunsReport] = field(default_factory=list)
    suites: list[SuiteReport] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)
    """``{"checkpoint_id", "kind", "steps": [...], "reward": [...]}`` per checkpoint."""
    ledger: str = ""


def _curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in sorted({r["checkpoint_id"]: r for r in rows}.values(),
                    key=lambda r: str(r.get("created_at"))):
        metrics = json.loads(r.get("metrics") or "[]")
        if isinstance(metrics, dict):
            metrics = [metrics]
        points = [(m.get("step", i), m.get("reward_mean", m.get("mean_reward")))
                  for i, m in enumerate(metrics) if isinstance(m, dict)]
        points = [(s, v) for s, v in points if v is not None]
        if points:
            out.append({"checkpoint_id": r["checkpoint_id"], "kind": r.get("kind") or "",
                        "steps": [s for s, _ in points], "reward": [v for _, v in points]})
    return out


def _pick(samples: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """One resolved and one unresolved graded attempt (when there are), at most ``n``."""
    graded = [s for s in samples if not s["masked"]]
    choice = ([s for s in graded if s["resolved"]][:1]
              + [s for s in graded if not s["resolved"]][:1])
    return (choice or samples[:1])[:n]


def _trajectories(read: Any, evals: list[EvalResult], per_variant: int) -> list[dict[str, Any]]:
    picked: list[dict[str, Any]] = []
    for ev in evals:
        picked += [{**s, "variant": ev.variant} for s in _pick(ev.samples, per_variant)]
    return _views(read, picked)


def _views(read: Any, picked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trajectory viewer's input for each picked sample: its rollout, reward, steps."""
    if not picked:
        return []
    ids = ", ".join(f"'{s['rollout_id']}'" for s in picked)
    where = f"rollout_id in ({ids})"
    rollouts = {r["rollout_id"]: r for r in read("rollouts", row_filter=where)}
    rewards = {r["rollout_id"]: r for r in read("rewards", row_filter=where)
               if r["harness_version"] == HARNESS_VERSION}
    steps: dict[str, dict[int, dict[str, Any]]] = {}
    for s in read("steps", row_filter=where, columns=[
            "rollout_id", "step_index", "content", "tool_calls", "observations", "latency_s",
            "completion_tokens"]):
        steps.setdefault(s["rollout_id"], {})[s["step_index"]] = s
    out = []
    for s in picked:
        ro = rollouts.get(s["rollout_id"], {})
        out.append({"sample": s, "rollout": ro, "reward": rewards.get(s["rollout_id"], {}),
                    "steps": [v for _, v in sorted(steps.get(s["rollout_id"], {}).items())]})
    return out


def _runs(ledger: Any, read: Any, per_env: int) -> list[RunsReport]:
    from codemill.factory.lookup import env_rows

    sources = {r["snapshot_id"]: r["source"]
               for r in read("snapshots", columns=["snapshot_id", "source"])}
    kinds: dict[str, Counter[str]] = {}
    for t in read("tasks", columns=["task_id", "env_id", "kind"]):
        kinds.setdefault(t["env_id"], Counter())[t["kind"]] += 1
    rewards = {r["rollout_id"]: r for r in read("rewards")
               if r["harness_version"] == HARNESS_VERSION}
    rollouts: dict[str, list[dict[str, Any]]] = {}
    for r in read("rollouts", columns=["rollout_id", "task_id", "env_id", "policy",
                                       "sample_index", "stop_reason", "created_at"]):
        rollouts.setdefault(r["env_id"], []).append({**r, "reward": rewards.get(
            r["rollout_id"], {})})
    out = []
    for env in env_rows(ledger):
        mine = sorted({r["rollout_id"]: r for r in rollouts.get(env["env_id"], [])}.values(),
                      key=lambda r: str(r.get("created_at")), reverse=True)
        samples = [{"rollout_id": r["rollout_id"], "task_id": r["task_id"],
                    "variant": r["policy"], "sample_index": r["sample_index"],
                    "stop_reason": r["stop_reason"],
                    "project": sources.get(env["snapshot_id"], ""),
                    "masked": bool(r["reward"].get("masked", True)),
                    "resolved": bool(r["reward"].get("resolved")),
                    "error_type": r["reward"].get("error_type") or "not graded"}
                   for r in mine]
        out.append(RunsReport(
            env_id=env["env_id"], source=sources.get(env["snapshot_id"], ""),
            status=str(env.get("status") or ""), n_tests=int(env.get("n_tests") or 0),
            n_passing=int(env.get("n_passing") or 0),
            tasks_by_kind=dict(sorted(kinds.get(env["env_id"], Counter()).items())),
            rollouts=mine, trajectories=_views(read, _pick(samples, per_env))))
    return out


def collect(settings: Settings, suite_ref: str | list[str] | None = None,
            per_variant: int = 2) -> ReportData:
    """Everything the report draws (see the module docstring)."""
    from codemill.store.ledger import Ledger

    data = ReportData(ledger=settings.catalog_uri())
    with Ledger.open(settings) as ledger:
        read = ledger_reader(ledger)
        data.curves = _curves(read("checkpoints"))
        data.runs = _runs(ledger, read, per_variant)
        suite_rows = read("suites")
        if isinstance(suite_ref, str):
            suite_ref = [suite_ref]
        refs = suite_ref or sorted({r["suite_id"] for r in suite_rows})
        suites = [find_suite(read, ref) for ref in refs]
        metric_rows = read("evals", columns=["eval_id", "suite", "metric"])
        judgment_rows = read("judgments")
    for suite in suites:
        label = f"{suite.name}@{suite.version}"
        eval_ids = sorted({m["eval_id"] for m in metric_rows
                           if m["suite"] == label and m["metric"] == "pass@1"})
        evals = [load_eval(settings, e) for e in eval_ids]
        evals = sorted((e for e in evals if e.suite.suite_id == suite.suite_id),
                       key=lambda e: e.variant)
        comparisons = [compare(a.variant, a.samples, b.variant, b.samples)
                       for a, b in combinations(evals, 2)]
        agreements: dict[str, list[tuple[str, Agreement]]] = {}
        judges = sorted({j["judge"] for j in judgment_rows})
        for judge in judges:
            pooled = []
            for ev in evals:
                ids = {s["rollout_id"] for s in ev.samples}
                rows = list({j["judgment_id"]: j for j in judgment_rows
                             if j["judge"] == judge and j["rollout_id"] in ids}.values())
                if rows:
                    agreements.setdefault(judge, []).append((ev.variant,
                                                             agreement(judge, rows)))
                    pooled += rows
            if pooled:
                agreements[judge].append(("all variants", agreement(judge, pooled)))
        with Ledger.open(settings) as ledger:
            trajs = _trajectories(ledger_reader(ledger), evals, per_variant)
        data.suites.append(SuiteReport(suite, evals, comparisons, agreements, trajs))
    return data
