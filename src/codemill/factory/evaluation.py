"""Evals as factory assets: suites, evals keyed by (variant, suite, config), judgments.

- ``suites``: a named, versioned task set chosen from recorded tasks (``define_suite``).
  Rows: ``suites`` and its members in ``suite_tasks``. A name and version are defined once;
  redefining them with other members or budgets is refused.
- ``evals``: one variant on one suite (``evaluate``). The cache key is the content of
  (suite id, variant spec with a checkpoint resolved to its full id, guard choice), so
  nothing is evaluated twice; a rollout already recorded with the same id (same task,
  policy, sampling and attempt index) is reused, not rerun. Rows: one ``evals`` row per
  metric, per-attempt ``eval_samples``, and each new attempt's rows
  (``codemill.store.rows.rollout_rows``: ``rollouts``, ``steps``, ``trajectories`` when
  token-exact, ``rewards``).
  Every planned attempt has an ``eval_samples`` row: one whose worker failed (no
  trajectory) or whose grading failed (no reward) is a masked row with its reason
  (``infra:worker``, ``infra:ungraded``), so an eval is never scored on fewer attempts than
  planned without the count in ``masked`` and ``masked_rate``.
  A checkpoint is guarded by its lineage (``codemill.evals.contamination``).
- ``judgments``: a judge's rubric scores of an eval's rollouts (``judge_eval``); rewards
  are read for agreement, never written.

Known limit: a rollout id covers task, policy, sampling and attempt index but not the
agent's turn budget, so a rollout recorded earlier under other budgets is reused as is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id
from codemill.evals import contamination as guard_mod
from codemill.evals.measures import score
from codemill.evals.suites import SuiteRunConfig, SuiteSelection, make_suite, select_tasks
from codemill.evals.variants import ORACLE, checkpoint_of, oracle_backend
from codemill.factory import eval_inputs as inputs
from codemill.factory.asset import AssetContext, Side
from codemill.factory.graph import asset
from codemill.rewards.config import HARNESS_VERSION

EVAL_VERSION = f"2.{HARNESS_VERSION}"
"""Part of every eval's cache key: new grading rules evaluate again (regrading recorded
attempts, not resampling them)."""


@asset("suites", code_version="1", reads=("tasks",), requested=True)
def suites(ctx: AssetContext) -> Iterator[Any]:
    """Choose the members of a suite from the recorded tasks and record it."""
    cfg = dict(ctx.config)
    selection = SuiteSelection(**cfg["selection"])
    run = SuiteRunConfig(**cfg["run"])
    members = select_tasks(inputs.candidate_tasks(ctx.read), selection)
    if not members:
        raise FactoryError(f"suite {cfg['name']}: no recorded task matches the selection")
    spec = make_suite(cfg["name"], cfg["version"], members, selection, run,
                      cfg.get("description", ""))
    same = [r for r in ctx.read("suites", columns=["suite_id", "name", "version"])
            if r["name"] == spec.name and r["version"] == spec.version]
    if any(r["suite_id"] != spec.suite_id for r in same):
        raise FactoryError(f"suite {spec.name}@{spec.version} is already defined with other "
                           "members or budgets; give the new one another --version")
    if same:
        return
    yield spec.row()
    for row in spec.member_rows():
        yield Side("suite_tasks", row)


def _lost_rollout(item: Any) -> dict[str, Any]:
    """The rollout fields of a sample row for an attempt whose worker failed (no row)."""
    return {"rollout_id": item.rollout_id, "sample_index": item.sample_index,
            "stop_reason": None, "wall_seconds": None}


def _sample_row(eval_id: str, suite: Any, variant: str, member: Any, rollout: dict[str, Any],
                reward: dict[str, Any] | None, steps: list[dict[str, Any]],
                contaminated: bool, lost: bool = False) -> dict[str, Any]:
    """One attempt's row. ``lost``: its worker failed, there is no trajectory: masked as
    ``infra:worker``; a trajectory without a reward is masked as ``infra:ungraded``."""
    graded = reward is not None and not reward.get("masked")
    model_s = sum(s.get("latency_s") or 0.0 for s in steps)
    tool_s = sum(s.get("tool_seconds") or 0.0 for s in steps)
    return {
        "eval_id": eval_id, "suite_id": suite.suite_id, "variant": variant,
        "task_id": member.task_id, "sample_index": rollout["sample_index"],
        "rollout_id": rollout["rollout_id"],
        "resolved": bool(reward["resolved"]) if graded else None,
        "masked": not graded, "error_type": (reward or {}).get("error_type")
        or (None if graded else "infra:worker" if lost else "infra:ungraded"),
        "flags": (reward or {}).get("flags") or "[]", "stop_reason": rollout["stop_reason"],
        "tokens": (rollout.get("prompt_tokens") or 0) + (rollout.get("completion_tokens") or 0),
        "model_seconds": round(model_s, 3),
        "sandbox_seconds": round(tool_s + ((reward or {}).get("grading_seconds") or 0.0), 3),
        "wall_seconds": rollout.get("wall_seconds"), "project": member.project,
        "kind": member.kind, "difficulty": member.difficulty, "contaminated": contaminated,
    }


def _check_lineage(ctx: AssetContext, suite: Any, checkpoint_id: str | None,
                   allow: bool) -> guard_mod.Contamination:
    if checkpoint_id is None:
        return guard_mod.Contamination(None, lineage_known=False)
    report = guard_mod.check(checkpoint_id, ctx.read("checkpoints"), list(suite.tasks),
                             env_snapshot=inputs.env_snapshots(ctx.read),
                             snapshot_project=inputs.snapshot_projects(ctx.read))
    guard_mod.guard(report, allow_contaminated=allow)
    return report


def _backend(ctx: AssetContext, variant: str, checkpoint_id: str | None) -> Any:
    """The model of ``variant``: local weights (``smollm2``, ``transformers:DIR``,
    ``ckpt:ID``) as a spec whose weights are found (and prepared) now, so that each rollout
    worker loads them once; any other backend built here. A checkpoint the model backends
    cannot find by its ``ckpt:`` spec is loaded from the weights directory its row
    records."""
    from codemill.agent.models import make_backend
    from codemill.agent.models.checkpoints import shared_spec
    from codemill.core.errors import ModelError

    home = ctx.settings.home
    try:
        return shared_spec(variant, home) or make_backend(variant, home=home)
    except ModelError:
        if checkpoint_id is None:
            raise
    row = inputs.resolve_checkpoint(ctx.read, checkpoint_id)
    spec = f"transformers:{row['path']}"
    return shared_spec(spec, home) or make_backend(spec, home=home)


@asset("evals", code_version=EVAL_VERSION, reads=("suites", "checkpoints", "rewards"),
       requested=True)
def evals(ctx: AssetContext) -> Iterator[Any]:
    """Run one variant on one suite (reusing recorded attempts) and measure it."""
    from codemill.agent.config import AgentConfig
    from codemill.core.records import SamplingConfig
    from codemill.factory.grading import current_rewards, regrade
    from codemill.rollouts.plan import RolloutConfig, plan_rollouts
    from codemill.rollouts.runner import RolloutResult, stream_rollouts
    from codemill.store.rows import record_to_row, rollout_rows

    cfg = dict(ctx.config)
    variant, eval_id = cfg["variant"], cfg["eval_id"]
    suite = inputs.find_suite(ctx.read, cfg["suite_id"])
    run = suite.run
    report = _check_lineage(ctx, suite, cfg.get("checkpoint_id"),
                            cfg.get("allow_contaminated", False))
    tasks = inputs.suite_tasks(ctx.read, suite)
    envs = inputs.task_envs(ctx.read, {t.env_id for t in tasks})
    sampling = SamplingConfig(temperature=run.temperature, max_tokens=run.max_tokens,
                              seed=run.seed)
    rcfg = RolloutConfig(group_size=run.k, sampling=sampling, mode=run.mode,
                         answer_format=run.answer_format,
                         listing_functions=run.listing_functions)
    planned = plan_rollouts(tasks, variant, rcfg)
    ids = [p.rollout_id for p in planned]
    where = f"rollout_id in ({inputs.quoted(ids)})"
    # Only rewards graded under today's rules count; a recorded attempt without one is
    # graded again from its rows (never resampled): ``codemill.factory.grading.regrade``,
    # the rule the ``rewards`` asset and training data follow too.
    recorded = ctx.read("rewards", row_filter=where)
    rewards: dict[str, Any] = current_rewards(recorded)
    rollouts = {r["rollout_id"]: r for r in ctx.read("rollouts", row_filter=where)}
    steps: dict[str, list[dict[str, Any]]] = {}
    for s in ctx.read("steps", row_filter=where):
        steps.setdefault(s["rollout_id"], []).append(s)
    for reward in regrade(rollouts.values(), [s for ss in steps.values() for s in ss],
                          recorded, tasks, envs, ctx.settings, executor=ctx.executor,
                          warn=ctx.logger.warning):  # a failure leaves the attempt masked
        rewards[reward.rollout_id] = record_to_row(reward)
        yield Side("rewards", rewards[reward.rollout_id])
    # A variant that cannot even load is a failed eval (recorded), not N masked attempts.
    model = (oracle_backend(tasks) if variant == ORACLE
             else _backend(ctx, variant, cfg.get("checkpoint_id")))
    agent = AgentConfig(max_turns=run.max_turns, max_tokens=run.max_turns * run.max_tokens,
                        wall_time_s=run.wall_time_s, sampling=sampling,
                        observation_limit=run.observation_limit)
    batch, results = stream_rollouts(tasks, envs=envs, home=ctx.settings.home,
                                     settings=ctx.settings, model=model, policy=variant,
                                     config=rcfg, agent=agent, existing=set(rollouts),
                                     executor=ctx.executor if isinstance(model, str) else None,
                                     on_context=lambda d, n: ctx.progress(d, n, "contexts"))
    lost: set[str] = set()
    for done, result in enumerate(results, 1):
        ctx.progress(done, batch.planned)
        if not isinstance(result, RolloutResult):
            ctx.logger.warning("attempt %s failed in its worker: %s", result[0].rollout_id[:12],
                               result[1])
            lost.add(result[0].rollout_id)
            continue
        rid = result.trajectory.rollout_id
        for table, row in rollout_rows(result.trajectory, env_id=result.item.task.env_id,
                                       group_id=result.item.group_id, reward=result.reward):
            yield Side(table, row)
            if table == "rollouts":
                rollouts[rid] = row
            elif table == "steps":
                steps.setdefault(rid, []).append(row)
            elif table == "rewards":
                rewards[rid] = row
    members = {t.task_id: t for t in suite.tasks}
    samples = [_sample_row(eval_id, suite, variant, members[p.task.task_id],
                           rollouts.get(p.rollout_id) or _lost_rollout(p),
                           rewards.get(p.rollout_id), steps.get(p.rollout_id, []),
                           p.task.task_id in report.affected,
                           lost=p.rollout_id in lost or p.rollout_id not in rollouts)
               for p in planned]
    unscored = sum(1 for s in samples if s["masked"])
    if unscored:
        ctx.logger.warning("%d of %d attempts are masked (%d lost with their worker)",
                           unscored, len(samples), len(lost))
    for s in samples:
        yield Side("eval_samples", s)
    yield from _metric_rows(eval_id, suite, variant, cfg.get("checkpoint_id"), samples, report)


def _metric_rows(eval_id: str, suite: Any, variant: str, checkpoint_id: str | None,
                 samples: list[dict[str, Any]], report: Any) -> Iterator[dict[str, Any]]:
    sc = score(samples, suite.run.k)
    details = json.dumps({"score": sc.to_json(), "contamination": report.to_json()},
                         default=str)
    base = {"eval_id": eval_id, "suite": f"{suite.name}@{suite.version}", "policy": variant,
            "checkpoint_id": checkpoint_id, "n_tasks": len(suite.tasks),
            "n_samples": len(samples)}
    yield {**base, "metric": "pass@1", "value": sc.pass1.value, "ci_low": sc.pass1.low,
           "ci_high": sc.pass1.high, "k": 1, "details": details}
    for p in sc.pass_k[1:]:
        yield {**base, "metric": f"pass@{p.k}", "value": p.value, "ci_low": p.low,
               "ci_high": p.high, "k": p.k, "details": None}
    yield {**base, "metric": "masked_rate", "value": sc.masked_rate, "ci_low": None,
           "ci_high": None, "k": None, "details": None}


def eval_config(settings: Settings, suite_ref: str, variant: str,
                allow_contaminated: bool = False) -> dict[str, Any]:
    """The ``evals`` asset's config for a variant on a suite (what its cache key hashes)."""
    from codemill.rollouts.plan import prompt_version
    from codemill.store.ledger import Ledger

    with Ledger.open(settings) as ledger:
        read = inputs.ledger_reader(ledger)
        suite = inputs.find_suite(read, suite_ref)
        ckpt = checkpoint_of(variant)
        if ckpt is not None:
            ckpt = inputs.resolve_checkpoint(read, ckpt)["checkpoint_id"]
            variant = f"ckpt:{ckpt}"
    # a patch suite's prompt is part of what is measured (agent-mode ids predate it: kept)
    prompt = () if suite.run.mode == "agent" else (prompt_version(suite.run.mode),)
    eval_id = content_id("eval", suite.suite_id, variant, bool(allow_contaminated), *prompt)
    return {"suite_id": suite.suite_id, "variant": variant, "checkpoint_id": ckpt,
            "allow_contaminated": bool(allow_contaminated), "eval_id": eval_id}
