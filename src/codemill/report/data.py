"""What the report shows, read from the ledger into plain values.

Per suite: every eval recorded on it (pass@1 and pass@k with intervals, masked, costs,
per-project rates), paired comparisons of every two variants, judge agreement; the
training curve of every checkpoint (``checkpoints.metrics``, a JSON list per step); and a
few trajectories per variant (one resolved and one not, when there are) with their steps,
observations and reward.
"""

from __future__ import annotations

import json
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
class ReportData:
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


def _trajectories(read: Any, evals: list[EvalResult], per_variant: int) -> list[dict[str, Any]]:
    picked: list[dict[str, Any]] = []
    for ev in evals:
        graded = [s for s in ev.samples if not s["masked"]]
        choice = ([s for s in graded if s["resolved"]][:1]
                  + [s for s in graded if not s["resolved"]][:1])
        picked += [{**s, "variant": ev.variant} for s in choice[:per_variant]]
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


def collect(settings: Settings, suite_ref: str | list[str] | None = None,
            per_variant: int = 2) -> ReportData:
    """Everything the report draws (see the module docstring)."""
    from codemill.store.ledger import Ledger

    data = ReportData(ledger=settings.catalog_uri())
    with Ledger.open(settings) as ledger:
        read = ledger_reader(ledger)
        data.curves = _curves(read("checkpoints"))
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
