"""The main job's assets: source -> snapshots -> environments -> tasks -> rollouts -> rewards.

Every asset takes the same ``RunConfig`` slice it depends on, selects its upstream rows by
content id, skips ids already recorded (so a crashed run resumes without duplicates) and
returns records; ``codemill.factory.materialize`` persists them. ``codemill run`` and
``make demo`` materialize the whole chain; ``codemill factory plan`` shows what is cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from codemill.core.errors import FactoryError
from codemill.core.records import EnvSpec, RepoSnapshot
from codemill.factory.asset import AssetContext, Side
from codemill.factory.graph import asset


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


@asset("snapshots", code_version="1")
def snapshots(ctx: AssetContext) -> Iterator[RepoSnapshot]:
    """Take the source in as a content-addressed snapshot."""
    from codemill.repos.sources import snapshot_source

    cfg = _cfg(ctx)
    snap = snapshot_source(cfg["source"], ctx.settings.home, progress=_say(ctx))
    if snap.snapshot_id not in ctx.existing_ids("snapshots", "snapshot_id"):
        yield snap


def snapshot_for(ctx: AssetContext, source: str) -> RepoSnapshot:
    """The latest snapshot row of ``source`` (the upstream asset just made or cached it)."""
    from codemill.repos.sources import snapshot_source

    # Re-resolving is cheap (content-addressed, stored once) and returns the full record.
    return snapshot_source(source, ctx.settings.home)


@asset("environments", code_version="1", deps=("snapshots",))
def environments(ctx: AssetContext) -> Iterator[Any]:
    """Build (or reuse) the environment of the snapshot, with its baseline test results."""
    from codemill.envs.builder import build_env
    from codemill.store.rows import test_result_rows

    cfg = _cfg(ctx)
    snap = snapshot_for(ctx, cfg["source"])
    known = find_env_for_snapshot(ctx.settings.home, snap.snapshot_id)
    if known is not None and known.env_id in ctx.existing_ids("environments", "env_id"):
        return  # built and recorded before (e.g. by `codemill env build`)
    result = build_env(snap, ctx.settings.home, ctx.settings, progress=_say(ctx),
                       python=cfg.get("python"))
    env = result.env
    if env.env_id in ctx.existing_ids("environments", "env_id"):
        return
    yield env
    for i, report in enumerate(result.reports):
        for row in test_result_rows(report, env_id=env.env_id, run_index=i, phase="baseline"):
            yield Side("test_results", row)


def find_env_for_snapshot(home: Path, snapshot_id: str, *,
                          usable_only: bool = True) -> EnvSpec | None:
    """The environment recorded on disk for ``snapshot_id``, if any: a usable one, or with
    ``usable_only=False`` any whose install finished (its tests may fail: a repository a
    user wants fixed often has failing tests)."""
    from codemill.envs.envstore import load_records

    envs = [e for e in load_records(home)
            if e.snapshot_id == snapshot_id and Path(e.venv_path).is_dir() and e.lock_hash]
    usable = [e for e in envs if e.status.value == "usable"]
    pool = usable if usable_only or usable else envs
    return pool[-1] if pool else None


def require_env(home: Path, snapshot_id: str) -> EnvSpec:
    env = find_env_for_snapshot(home, snapshot_id)
    if env is None:
        raise FactoryError(f"no usable environment for snapshot {snapshot_id[:12]}")
    return env


def _validation_row(v: Any) -> dict[str, Any]:
    from codemill.store.rows import to_json

    row = v.model_dump()
    row["flaky_tests"] = to_json(v.flaky_tests)
    row["details"] = to_json(v.details)
    return row


def _decided(ctx: AssetContext, env_id: str) -> set[str]:
    """Candidate ids already decided for ``env_id`` (accepted or rejected): skipped on a
    rerun, so a crashed run resumes without redoing or duplicating them."""
    import json

    seen: set[str] = set()
    for table in ("task_validations", "tasks"):
        col = "details" if table == "task_validations" else "metadata"
        rows = ctx.read(table, columns=["task_id", "env_id", col])
        for r in rows:
            if r["env_id"] != env_id:
                continue
            extra = json.loads(r[col]) if r.get(col) else {}
            seen.add(extra.get("candidate_id") or r["task_id"])
    return seen


@asset("tasks", code_version="1", deps=("environments",))
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

    cfg = RunConfig(**_cfg(ctx))
    env = require_env(ctx.settings.home, snapshot_for(ctx, cfg.source).snapshot_id)
    bed = TestBed.from_env(env, ctx.settings.home, ctx.settings.sandbox)
    skip = _decided(ctx, env.env_id)
    have = [r for r in ctx.read("tasks", columns=["task_id", "env_id", "kind"])
            if r["env_id"] == env.env_id]
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
            yield Side("task_validations", _validation_row(verdict))
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


@asset("rollouts", code_version="1", deps=("tasks",))
def rollouts(ctx: AssetContext) -> Iterator[Any]:
    """G rollouts per task with the configured policy, each graded right away; steps and
    rewards go to their tables. Samples already recorded are not run again."""
    from codemill.agent.config import AgentConfig
    from codemill.core.records import SamplingConfig
    from codemill.rollouts.plan import RolloutConfig
    from codemill.rollouts.runner import RolloutResult, stream_rollouts
    from codemill.store.rows import record_to_row, step_rows, trajectory_row

    cfg = RunConfig(**_cfg(ctx))
    env = require_env(ctx.settings.home, snapshot_for(ctx, cfg.source).snapshot_id)
    task_list = _tasks_of(ctx, env.env_id)
    sampling = SamplingConfig(temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                              seed=cfg.seed)
    batch, results = stream_rollouts(
        task_list, envs=[env], home=ctx.settings.home, settings=ctx.settings,
        model=cfg.model, config=RolloutConfig(group_size=cfg.group_size, sampling=sampling),
        agent=AgentConfig(max_turns=cfg.max_turns, max_tokens=cfg.max_turns * cfg.max_tokens,
                          sampling=sampling),
        existing=ctx.existing_ids("rollouts", "rollout_id"))
    done = 0
    for result in results:
        done += 1
        ctx.progress(done, batch.planned)
        if not isinstance(result, RolloutResult):
            item, error = result
            ctx.logger.warning("rollout %s failed in its worker: %s", item.rollout_id[:12],
                               error)
            continue
        row = record_to_row(result.trajectory)
        row.update(env_id=env.env_id, group_id=result.item.group_id)
        yield row
        for row in step_rows(result.trajectory):
            yield Side("steps", row)
        tokens = trajectory_row(result.trajectory, result.item.group_id)
        if tokens is not None:
            yield Side("trajectories", tokens)
        if result.reward is not None:
            yield Side("rewards", record_to_row(result.reward))
