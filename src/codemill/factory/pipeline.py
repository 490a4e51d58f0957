"""The main job's assets: snapshots -> environments -> tasks -> rollouts -> rewards.

The source is resolved to content once, before the plan (``codemill.factory.run``): the
snapshot record rides in the ``snapshots`` config and every later stage's config names
the ``snapshot_id``, so cache keys chain from the source's content and an edit re-runs
exactly what is downstream of it. Each stage reads its inputs from its upstream rows
(``ctx.upstream``; the environment store's files are a cache of those rows, never asked),
skips ids already recorded (so a crashed run resumes without duplicates) and returns
records; ``codemill.factory.materialize`` persists them. An asset's code version is the
version constant of the code it runs (``SNAPSHOT_VERSION``, ``BUILDER_VERSION``,
``VALIDATION_VERSION``, ``AGENT_VERSION``, ``HARNESS_VERSION``): a grader change regrades
the recorded rollouts without sampling them again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from codemill.agent.config import AGENT_VERSION
from codemill.core.errors import FactoryError
from codemill.core.records import EnvSpec, RepoSnapshot
from codemill.envs.builder.records import BUILDER_VERSION
from codemill.factory.asset import AssetContext, Side
from codemill.factory.graph import asset
from codemill.factory.lookup import pick_env
from codemill.factory.record import validation_row
from codemill.repos.snapshots import SNAPSHOT_VERSION
from codemill.rewards.config import HARNESS_VERSION
from codemill.tasks.validate import VALIDATION_VERSION

BUILD_LOG_CHARS = 20_000
"""The tail of the build log kept in the environment's row (``env build --log``)."""


class RunConfig(BaseModel):
    """What ``codemill run`` was asked to do; each asset hashes only the fields it uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    """A local dir, ``git-url[@rev]`` or ``pypi:NAME[==VERSION]``."""
    python: str | None = None
    """Interpreter version to build with; None lets the builder choose."""
    synth_tasks: int = 4
    """Synthesized bug tasks to validate (0: none)."""
    feature_tasks: int = 1
    """Feature (implement-this-function) tasks to validate (0: none)."""
    kinds: tuple[str, ...] | None = None
    """Mutation operator kinds (None: all)."""
    validation_runs: int = 3
    """Repetitions per state when validating a task (flakiness)."""
    model: str = "smollm2"
    """The policy's backend spec (``openai:MODEL@URL``, ``transformers:PATH``,
    ``scripted:NAME``, ``smollm2``)."""
    group_size: int = 2
    """G: rollouts per task (one GRPO group)."""
    max_turns: int = 8
    """Model calls per rollout at most."""
    max_tokens: int = 256
    """Completion tokens per model call at most."""
    temperature: float = 0.7
    seed: int = 0


def _cfg(ctx: AssetContext) -> dict[str, Any]:
    cfg = ctx.config
    return cfg.model_dump() if isinstance(cfg, BaseModel) else dict(cfg or {})


def _say(ctx: AssetContext) -> Any:
    return lambda message: ctx.logger.info("%s: %s", ctx.asset.name, message)


def _run_config(raw: dict[str, Any]) -> RunConfig:
    """The stage's slice of ``RunConfig`` (its other fields at their defaults); the stage
    works on a snapshot, so the snapshot id stands in for the source."""
    fields = {k: v for k, v in raw.items() if k in RunConfig.model_fields}
    return RunConfig(**{**fields, "source": _sid(raw)})


def _sid(cfg: dict[str, Any]) -> str:
    sid = str(cfg.get("snapshot_id") or "")
    if not sid.isalnum():
        raise FactoryError("the stage's config names no snapshot_id (resolve the source first)")
    return sid


@asset("snapshots", code_version=f"1.{SNAPSHOT_VERSION}")
def snapshots(ctx: AssetContext) -> Iterator[RepoSnapshot]:
    """Record the snapshot the run resolved its source to (taken once, before the plan)."""
    snap = RepoSnapshot.model_validate(_cfg(ctx)["snapshot"])
    if snap.snapshot_id not in ctx.existing_ids("snapshots", "snapshot_id"):
        yield snap


def snapshot_row(ctx: AssetContext, snapshot_id: str) -> RepoSnapshot:
    """The snapshot ``snapshot_id`` from the upstream ``snapshots`` rows."""
    from codemill.store.rows import row_to_record

    rows = ctx.upstream("snapshots", row_filter=f"snapshot_id == '{snapshot_id}'").to_pylist()
    if not rows:
        raise FactoryError(f"snapshot {snapshot_id[:12]} is not in the ledger")
    return row_to_record(RepoSnapshot, rows[0])


def env_of(ctx: AssetContext, cfg: dict[str, Any], *, usable_only: bool = True
           ) -> EnvSpec | None:
    """The environment of the run's snapshot, from the upstream ``environments`` rows."""
    rows = ctx.upstream("environments", row_filter=f"snapshot_id == '{_sid(cfg)}'")
    return pick_env(rows.to_pylist(), usable_only=usable_only, python=cfg.get("python"),
                    builder_version=BUILDER_VERSION)


def require_env(ctx: AssetContext, cfg: dict[str, Any]) -> EnvSpec:
    env = env_of(ctx, cfg)
    if env is None:
        raise FactoryError(f"no usable environment for snapshot {_sid(cfg)[:12]}")
    return env


@asset("environments", code_version=f"1.{BUILDER_VERSION}", deps=("snapshots",))
def environments(ctx: AssetContext) -> Iterator[Any]:
    """Build (or reuse) the environment of the snapshot, with its baseline test results."""
    from codemill.envs.builder.build import build_env
    from codemill.factory.lookup import env_rows
    from codemill.store.rows import record_to_row, test_result_rows

    cfg = _cfg(ctx)
    snap = snapshot_row(ctx, _sid(cfg))
    # Built and recorded before (by another run, or `codemill env build`): reuse it.
    known = pick_env(env_rows(ctx.reader, f"snapshot_id == '{snap.snapshot_id}'"),
                     usable_only=True, python=cfg.get("python"),
                     builder_version=BUILDER_VERSION)
    if known is not None:
        return
    result = build_env(snap, ctx.settings.home, ctx.settings, progress=_say(ctx),
                       python=cfg.get("python"))
    env = result.env
    if env.env_id in ctx.existing_ids("environments", "env_id"):
        return
    yield {**record_to_row(env), "disk_bytes": result.disk_bytes,
           "shared_venv": result.shared_venv, "attempt": result.attempt,
           "python_reason": result.python_reason,
           "build_log": result.log[-BUILD_LOG_CHARS:]}
    for i, report in enumerate(result.reports):
        for row in test_result_rows(report, env_id=env.env_id, run_index=i, phase="baseline"):
            yield Side("test_results", row)
    for i, report in enumerate(result.repeats, start=len(result.reports)):
        for row in test_result_rows(report, env_id=env.env_id, run_index=i,
                                    phase="baseline-repeat"):
            yield Side("test_results", row)


@asset("tasks", code_version=f"1.{VALIDATION_VERSION}", deps=("environments",))
def tasks(ctx: AssetContext) -> Iterator[Any]:
    """Synthesize and validate bug and feature tasks in the environment, then package each
    accepted task's workspace; validations (accepted and rejected) go to
    ``task_validations``."""
    from codemill.tasks.feature_tasks import FeatureConfig, feature_tasks
    from codemill.tasks.package import package_task
    from codemill.tasks.records import FunnelCounter
    from codemill.tasks.synth import SynthConfig, synthesize
    from codemill.tasks.testbed import TestBed
    from codemill.tasks.validate import ValidationConfig

    raw = _cfg(ctx)
    env = require_env(ctx, raw)
    cfg = _run_config(raw)
    from codemill.factory.lookup import baseline_reports, decided_candidates

    bed = TestBed.from_env(env, ctx.settings.home, ctx.settings.sandbox,
                           baseline_reports=baseline_reports(ctx.reader, env.env_id),
                           baseline_repeats=baseline_reports(ctx.reader, env.env_id,
                                                             "baseline-repeat"))
    skip, _ = decided_candidates(ctx.reader, env.env_id)
    have = ctx.read("tasks", columns=["task_id", "env_id", "kind"],
                    row_filter=f"env_id == '{env.env_id}'")
    present = {r["task_id"] for r in have}
    # The counts asked for are totals for the environment: a resumed or repeated run
    # tops up to them instead of adding that many more.
    want_synth = cfg.synth_tasks - sum(r["kind"] == "synth" for r in have)
    want_feature = cfg.feature_tasks - sum(r["kind"] == "feature" for r in have)
    vcfg = ValidationConfig(runs=cfg.validation_runs)
    sources = []
    if want_synth > 0:
        sources.append(("synth", synthesize, SynthConfig(
            max_tasks=want_synth, kinds=cfg.kinds, validation=vcfg, compose=1)))
    if want_feature > 0:
        sources.append(("feature", feature_tasks, FeatureConfig(
            max_tasks=want_feature, validation=vcfg)))
    for kind, make, kcfg in sources:
        funnel = FunnelCounter(env.env_id, kind)
        for task, verdict in make(bed, kcfg, funnel=funnel, skip=skip):
            yield Side("task_validations", validation_row(verdict))
            if task is not None and task.task_id not in present:
                package_task(bed, task)
                present.add(task.task_id)
                yield task
        ctx.logger.info("tasks: %s funnel %s", kind, funnel.freeze().model_dump())


def _tasks_of(ctx: AssetContext, env_id: str) -> list[Any]:
    from codemill.core.records import TaskSpec
    from codemill.store.rows import row_to_record

    rows = ctx.upstream("tasks", row_filter=f"env_id == '{env_id}'")
    out: dict[str, TaskSpec] = {}
    for row in rows.to_pylist():
        out.setdefault(row["task_id"], row_to_record(TaskSpec, row))
    return sorted(out.values(), key=lambda t: t.task_id)


@asset("rollouts", code_version=f"1.{AGENT_VERSION}", deps=("tasks", "environments"))
def rollouts(ctx: AssetContext) -> Iterator[Any]:
    """G rollouts per task with the configured policy; steps go to their table. Samples
    already recorded are not run again. Grading is the ``rewards`` asset's. A local
    model's rollouts run at once around one batched sampler (``codemill.rollouts.runner``);
    other policies' rollouts are spread over the run's executor."""
    from codemill.agent.config import AgentConfig
    from codemill.core.records import SamplingConfig
    from codemill.rollouts.plan import RolloutConfig
    from codemill.rollouts.runner import RolloutResult, stream_rollouts
    from codemill.store.rows import rollout_rows

    raw = _cfg(ctx)
    cfg = _run_config(raw)
    env = require_env(ctx, raw)
    task_list = _tasks_of(ctx, env.env_id)
    sampling = SamplingConfig(temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                              seed=cfg.seed)
    batch, results = stream_rollouts(
        task_list, envs=[env], home=ctx.settings.home, settings=ctx.settings,
        model=cfg.model, config=RolloutConfig(group_size=cfg.group_size, sampling=sampling,
                                              grade=False),
        agent=AgentConfig(max_turns=cfg.max_turns, max_tokens=cfg.max_turns * cfg.max_tokens,
                          sampling=sampling),
        existing=ctx.existing_ids("rollouts", "rollout_id"), executor=ctx.executor)
    done = 0
    for result in results:
        done += 1
        ctx.progress(done, batch.planned)
        if not isinstance(result, RolloutResult):
            item, error = result
            ctx.logger.warning("rollout %s failed in its worker: %s", item.rollout_id[:12],
                               error)
            continue
        for table, row in rollout_rows(result.trajectory, env_id=env.env_id,
                                       group_id=result.item.group_id):
            yield row if table == "rollouts" else Side(table, row)


@asset("rewards", code_version=f"1.{HARNESS_VERSION}",
       deps=("rollouts", "tasks", "environments"))
def rewards(ctx: AssetContext) -> Iterator[Any]:
    """Grade the policy's recorded rollouts of the environment's tasks: their diffs (and
    trajectories, for hack flags) are read back from the ``rollouts`` and ``steps`` rows.
    A rollout already graded by this harness version is not graded again."""
    from codemill.factory.grading import current_ids, regrade

    raw = _cfg(ctx)
    env = require_env(ctx, raw)
    by_task = {t.task_id: t for t in _tasks_of(ctx, env.env_id)}
    rows = [r for r in ctx.upstream("rollouts", row_filter=f"env_id == '{env.env_id}'")
            .to_pylist() if r["policy"] == raw["model"] and r["task_id"] in by_task]
    graded = ctx.read("rewards", columns=["rollout_id", "harness_version"],
                      row_filter=f"env_id == '{env.env_id}'")
    ids = sorted({r["rollout_id"] for r in rows} - current_ids(graded))  # steps to read
    steps: list[dict[str, Any]] = []
    for i in range(0, len(ids), 200):  # ids are hex content ids: safe to quote
        where = "rollout_id in (" + ", ".join(f"'{x}'" for x in ids[i:i + 200]) + ")"
        steps.extend(ctx.read("steps", row_filter=where))
    yield from regrade(rows, steps, graded, by_task, {env.env_id: env}, ctx.settings,
                       executor=ctx.executor, warn=ctx.logger.warning, progress=ctx.progress)
