"""Training data through the factory: tasks from the ledger, rollouts recorded, traces read
back joined with their rewards, expert (or teacher) trajectories, policy samples, exports.

``codemill.factory.training`` trains on what these functions return; like it, this module
is the only place (with ``codemill.store``) that writes these rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id, new_run_id
from codemill.core.records import EnvSpec, SamplingConfig, TaskSpec, TokenTrace
from codemill.rewards.config import HARNESS_VERSION

# --- data ------------------------------------------------------------------------------


def ledger_tasks(settings: Settings, prefixes: Sequence[str] = ()) -> tuple[list[TaskSpec],
                                                                          dict[str, EnvSpec]]:
    """Validated tasks (deduped, sorted by id) whose recorded environment is usable and
    installed on disk (the ledger's rows; the environment store is only a cache)."""
    from pathlib import Path

    from codemill.factory.lookup import env_from_row, env_rows
    from codemill.store.reader import LedgerReader
    from codemill.store.rows import row_to_record

    with LedgerReader.open(settings) as reader:
        envs = {e.env_id: e for e in map(env_from_row, env_rows(reader))
                if e.status.value == "usable" and Path(e.venv_path).is_dir()}
        rows = reader.read("tasks").to_pylist()
    tasks: dict[str, TaskSpec] = {}
    for row in rows:
        if row["env_id"] in envs and (not prefixes or row["task_id"].startswith(tuple(prefixes))):
            tasks.setdefault(row["task_id"], row_to_record(TaskSpec, row))
    return sorted(tasks.values(), key=lambda t: t.task_id), envs


def persist_rollouts(settings: Settings, run_id: str, asset: str, results: Sequence[Any]) -> None:
    """Rows of finished rollouts: rollouts, steps, trajectories, rewards."""
    from codemill.store.ledger import Ledger
    from codemill.store.rows import rollout_rows

    if not results:
        return
    kw = {"run_id": run_id, "config_hash": settings.config_hash}
    tables = ("rollouts", "steps", "trajectories", "rewards")
    with Ledger.open(settings) as ledger, ExitStack() as stack:
        writers = {t: stack.enter_context(ledger.writer(t, asset=asset, **kw)) for t in tables}
        for result in results:
            for table, row in rollout_rows(result.trajectory, env_id=result.item.task.env_id,
                                           group_id=result.item.group_id,
                                           reward=result.reward):
                writers[table].add(row)


@dataclass(frozen=True)
class Graded:
    """A recorded rollout as training reads it back: trace joined with its reward."""

    rollout_id: str
    task_id: str
    group_id: str
    trace: TokenTrace | None
    reward: float | None
    stop_reason: str
    status: str = "scored"
    """``scored``; ``masked`` (a reward row with its mask set), ``ungraded`` (no reward
    row under today's harness) or ``failed`` (no trace recorded: ``sample_policy``'s
    planned attempts whose worker failed), where ``reward`` is None."""


def read_graded(settings: Settings, rollout_ids: Sequence[str] | None = None,
                policy_prefix: str | None = None) -> list[Graded]:
    """Token traces joined with their rewards (rewards rows, by rollout_id)."""
    from codemill.store.ledger import Ledger
    from codemill.store.rows import trace_from_row

    wanted = set(rollout_ids) if rollout_ids is not None else None
    with Ledger.open(settings) as ledger:
        traces = ledger.read("trajectories").to_pylist()
        # only rewards of today's grading rules: a stale 1 must not become training data
        rewards = {r["rollout_id"]: r for r in ledger.read(
            "rewards", columns=["rollout_id", "value", "masked", "harness_version"]).to_pylist()
            if r["harness_version"] == HARNESS_VERSION}
    out: dict[str, Graded] = {}
    for row in traces:
        rid = row["rollout_id"]
        if wanted is not None and rid not in wanted:
            continue
        if policy_prefix is not None and not (row["policy"] or "").startswith(policy_prefix):
            continue
        r = rewards.get(rid)
        value = None if r is None or r["masked"] else r["value"]
        status = "ungraded" if r is None else "masked" if r["masked"] else "scored"
        out[rid] = Graded(rid, row["task_id"], row["group_id"] or "", trace_from_row(row),
                          value, row["stop_reason"] or "", status)
    return list(out.values())


def regrade_stale(settings: Settings, rollout_ids: Sequence[str], tasks: Sequence[TaskSpec],
                  envs: dict[str, EnvSpec], run_id: str, asset: str,
                  say: Callable[[str], None] | None = None) -> int:
    """Grade again, from their recorded rows, the rollouts among ``rollout_ids`` that have
    no reward under the current harness version (graded under older rules, or never);
    returns how many were graded. Nothing is resampled. Graded on the settings' executor
    and recorded ``EXPERT_CHUNK`` at a time, so a killed run keeps what it graded; an item
    that fails in its worker is reported to ``say`` and stays ungraded (``read_graded``
    counts it; a later call grades it again)."""
    from codemill.factory.executors import make_executor
    from codemill.factory.grading import current_ids, regrade
    from codemill.store.ledger import Ledger
    from codemill.store.rows import record_to_row

    wanted = set(rollout_ids)
    if not wanted:
        return 0
    where = "rollout_id in (" + ", ".join(f"'{x}'" for x in sorted(wanted)) + ")"
    with Ledger.open(settings) as ledger:
        graded = ledger.read("rewards", columns=["rollout_id", "harness_version"],
                             row_filter=where).to_pylist()
        rows = ledger.read("rollouts", row_filter=where).to_pylist()
        stale = {r["rollout_id"] for r in rows} - current_ids(graded)
        steps = ledger.read("steps", row_filter=where).to_pylist() if stale else []
    if not stale:
        return 0

    def record(rewards: list[Any]) -> None:
        with Ledger.open(settings) as ledger, ledger.writer(
                "rewards", asset=asset, run_id=run_id, config_hash=settings.config_hash) as w:
            for reward in rewards:
                w.add(record_to_row(reward))

    def progress(done: int, total: int) -> None:
        if say is not None and (done % EXPERT_CHUNK == 0 or done == total):
            say(f"regraded {done}/{total} recorded answers under the current grading rules")

    executor = make_executor(settings)
    count, chunk = 0, []
    try:
        for reward in regrade(rows, steps, graded, tasks, envs, settings, executor=executor,
                              warn=say, progress=progress):
            chunk.append(reward)
            if len(chunk) == EXPERT_CHUNK:
                record(chunk)
                count, chunk = count + len(chunk), []
    finally:
        executor.close()
    if chunk:
        record(chunk)
    return count + len(chunk)


EXPERT_CHUNK = 16
"""Patch-mode expert answers graded, then recorded, at a time."""


def expert_data(settings: Settings, job: Any, tasks: Sequence[TaskSpec],
                envs: dict[str, EnvSpec], tokenizer_dir: Path, run_id: str,
                say: Callable[[str], None]) -> list[Graded]:
    """Expert (or teacher) rollouts of ``tasks``, recorded and graded; reused when an
    earlier run recorded them (same ids)."""
    from transformers import AutoTokenizer

    from codemill.agent.config import AgentConfig
    from codemill.agent.models import make_backend
    from codemill.agent.models.sampler import tokenizer_hash
    from codemill.agent.models.scripted import ScriptedBackend
    from codemill.agent.models.teacher import TeacherBackend
    from codemill.rollouts.plan import RolloutItem
    from codemill.rollouts.runner import RolloutContext, prepare_workspaces, run_one
    from codemill.train.expert import expert_script

    if getattr(job, "mode", "agent") == "patch":
        return _expert_patch_data(settings, job, tasks, envs, tokenizer_dir, run_id, say)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    policy = f"expert:{job.teacher}" if job.teacher else "expert"
    sampling = SamplingConfig(temperature=0.7 if job.teacher else 0.0, seed=job.train.seed)
    plan: list[tuple[RolloutItem, Any]] = []
    salt = (tokenizer_hash(tokenizer), job.observation_limit, job.max_turns)
    for task in tasks:
        for i in range(job.per_task):
            rid = content_id("expert-rollout", task.task_id, policy, salt, job.train.seed, i)
            plan.append((RolloutItem(rid, task, policy, i, sampling), None))
    ids = [i.rollout_id for i, _ in plan]
    if regrade_stale(settings, ids, tasks, envs, run_id, "expert_trajectories", say):
        say("expert data: regraded recorded runs under the current grading rules")
    have = {g.rollout_id: g for g in read_graded(settings, ids)}
    todo = [item for item, _ in plan if item.rollout_id not in have]
    if todo:
        say(f"expert data: {len(todo)} runs to make ({len(have)} recorded before)")
        layers = prepare_workspaces([i.task for i in todo], envs, settings.home, settings)
        agent = AgentConfig(max_turns=job.max_turns, observation_limit=job.observation_limit,
                            sampling=sampling)
        teacher_model = make_backend(job.teacher, home=settings.home) if job.teacher else None
        results = []
        for n, item in enumerate(todo):
            rng = random.Random(content_id(item.rollout_id))
            if teacher_model is not None:
                inner = teacher_model
            else:
                script = expert_script(item.task, rng)
                if script is None:
                    continue
                inner = ScriptedBackend(script, name=policy)
            ctx = RolloutContext(home=Path(settings.home).absolute(), settings=settings,
                                 model=TeacherBackend(inner, tokenizer, name=policy),
                                 envs=envs, layers=layers, agent=agent)
            results.append(run_one(ctx, item))
            r = results[-1].reward
            say(f"expert {n + 1}/{len(todo)} task {item.task.task_id[:10]}: "
                f"{'masked' if r is None or r.masked else r.value}")
        persist_rollouts(settings, run_id, "expert_trajectories", results)
        have = {g.rollout_id: g for g in read_graded(settings, [i.rollout_id for i, _ in plan])}
    return list(have.values())


def _expert_patch_data(settings: Settings, job: Any, tasks: Sequence[TaskSpec],
                       envs: dict[str, EnvSpec], tokenizer_dir: Path, run_id: str,
                       say: Callable[[str], None]) -> list[Graded]:
    """Patch-mode expert answers (``SftJob.mode``), recorded and graded as one-turn
    rollouts: the scripted expert answers each task once with its gold patch as line edits;
    a teacher answers ``per_task`` times. Tasks the expert cannot answer are counted."""
    from transformers import AutoTokenizer

    from codemill.agent.models import make_backend
    from codemill.agent.models.sampler import tokenizer_hash
    from codemill.agent.models.scripted import ScriptedBackend
    from codemill.agent.models.teacher import TeacherBackend
    from codemill.factory.executor_base import available_cpus
    from codemill.rollouts.patch_mode import PATCH_MODE_VERSION, expert_answer
    from codemill.rollouts.plan import RolloutItem
    from codemill.rollouts.runner import (
        RolloutContext,
        RolloutResult,
        Threads,
        prepare_patch_contexts,
        reward_for,
        run_one,
    )
    from codemill.tasks.patch_context import listing_key

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    policy = f"expert:{job.teacher}|patch" if job.teacher else "expert|patch"
    sampling = SamplingConfig(temperature=0.7 if job.teacher else 0.0, seed=job.train.seed,
                              max_tokens=512)
    runs = job.per_task if job.teacher else 1  # the scripted answer is always the same
    listing = job.listing_functions
    # the prompt's version too: an answer recorded under another prompt is another sequence.
    # The seed only where it draws the answer (a teacher's): a run under another seed
    # reuses the scripted answers and their grades instead of grading them again.
    seed = (job.train.seed,) if job.teacher else ()
    salt = (tokenizer_hash(tokenizer), *seed, "patch-lines", PATCH_MODE_VERSION,
            *listing_key(listing))
    plan = [RolloutItem(content_id("expert-rollout", t.task_id, policy, salt, i), t, policy, i,
                        sampling, mode="patch", listing_functions=listing)
            for t in tasks for i in range(runs)]
    ids = [i.rollout_id for i in plan]
    if regrade_stale(settings, ids, tasks, envs, run_id, "expert_trajectories", say):
        say("expert data: regraded recorded answers under the current grading rules")
    have = {g.rollout_id: g for g in read_graded(settings, ids)}
    todo = [item for item in plan if item.rollout_id not in have]
    if todo:
        say(f"expert data: {len(todo)} patch-mode answers to make ({len(have)} recorded)")
        contexts = prepare_patch_contexts([i.task for i in todo], envs, settings.home, settings,
                                          listing)
        teacher_model = make_backend(job.teacher, home=settings.home) if job.teacher else None
        answered, unanswerable = [], 0
        for item in todo:
            context = contexts[item.task.task_id]
            if teacher_model is not None:
                inner: Any = teacher_model
            else:
                answer = None if context.error else expert_answer(context, item.task.gold_patch)
                if answer is None:
                    unanswerable += 1
                    continue
                inner = ScriptedBackend([answer], name=policy)
            ctx = RolloutContext(home=Path(settings.home).absolute(), settings=settings,
                                 model=TeacherBackend(inner, tokenizer, name=policy),
                                 envs=envs, layers={}, patch=contexts, grade=False)
            answered.append(run_one(ctx, item))  # one tokenizer, one thread: answer first

        def graded(res: RolloutResult) -> RolloutResult:  # then grade on every core
            reward = reward_for(res.item.task, envs[res.item.task.env_id], res.trajectory,
                                home=Path(settings.home).absolute(), settings=settings)
            return RolloutResult(res.item, res.trajectory, reward, res.seconds, res.notes)

        workers = settings.executor.workers or available_cpus()
        # Recorded a chunk at a time: grading runs every project's tests (tens of minutes
        # for a few hundred answers), and a killed run goes on from the last chunk.
        for start in range(0, len(answered), EXPERT_CHUNK):
            chunk, results = answered[start:start + EXPERT_CHUNK], []
            for n, res in enumerate(Threads(workers).map(graded, chunk), start + 1):
                if isinstance(res, str):  # recorded ungraded (counted), not dropped
                    say(f"expert {n}/{len(answered)}: grading failed: {res}")
                    res = answered[n - 1]
                results.append(res)
                r = res.reward
                say(f"expert {n}/{len(answered)} task {res.item.task.task_id[:10]}: "
                    f"{'masked' if r is None or r.masked else r.value}")
            persist_rollouts(settings, run_id, "expert_trajectories", results)
        if unanswerable:
            say(f"expert data: {unanswerable} tasks' gold change lies outside their listing "
                "(no answer in line edits)")
        have = {g.rollout_id: g for g in read_graded(settings, ids)}
    return list(have.values())


def reversal_data(settings: Settings, tasks: Sequence[TaskSpec], envs: dict[str, EnvSpec],
                  tokenizer_dir: Path, want: int, seed: int, listing_functions: int,
                  say: Callable[[str], None]) -> list[tuple[str, TokenTrace]]:
    """About ``want`` mutation reversals (``codemill.tasks.reversal``) from the snapshots
    of ``tasks``' projects, as many from each, as ``(example id, token trace)``: the
    patch-mode prompt of the mutated source and, as the answer, the released line written
    as line edits (``expert_answer``, as the expert's), tokenized as the expert's answers
    are (``TeacherBackend``). The sources (``TestBed.source_files``, the modules synthesis
    mutates) are only read and parsed here, nothing of a project runs; a project without a
    coverage map gives none, and says so."""
    from codemill.agent.models.sampler import tokenizer_hash
    from codemill.agent.models.scripted import ScriptedBackend
    from codemill.agent.models.teacher import TeacherBackend
    from codemill.agent.tokens import token_trace
    from codemill.core.records import Step
    from codemill.rollouts.patch_mode import PATCH_MODE_VERSION, expert_answer, patch_messages
    from codemill.tasks.coverage_map import load_cached
    from codemill.tasks.patch_context import PatchContextConfig
    from codemill.tasks.reversal import reversal_examples
    from codemill.tasks.testbed import TestBed

    env_ids = sorted({t.env_id for t in tasks if t.env_id in envs})
    if not env_ids:
        raise FactoryError("reversals come from the job's tasks' projects: it has none")
    config = PatchContextConfig(max_functions=listing_functions)
    made: list[tuple[str, Any, str]] = []  # (id, example, answer)
    for n, env_id in enumerate(env_ids):
        cmap = load_cached(Path(settings.home), env_id)
        if cmap is None:
            say(f"reversals: environment {env_id} has no coverage map; none from it")
            continue
        snapshot = envs[env_id].snapshot_id
        # the modules synthesis mutates: the environment's view (snapshot and build layer)
        sources = TestBed.from_env(envs[env_id], Path(settings.home),
                                   settings.sandbox).source_files()
        share = want // len(env_ids) + (n < want % len(env_ids))
        for ex in reversal_examples(sources, cmap, want=share, seed=seed, config=config):
            answer = expert_answer(ex.context, ex.gold_patch)
            if answer is not None:
                made.append((content_id("reversal-example", snapshot, ex.example_id, seed,
                                        PATCH_MODE_VERSION), ex, answer))
        say(f"reversals: {len(made)} after {n + 1}/{len(env_ids)} projects")
    current = [""]  # the answer the scripted expert gives next
    teacher = TeacherBackend(ScriptedBackend(lambda _m, _t: current[0]), tokenizer_dir,
                             name="reversal|patch")
    suffix = tokenizer_hash(teacher.tokenizer)
    sampling = SamplingConfig(temperature=0.0, seed=seed, max_tokens=512)
    out: list[tuple[str, TokenTrace]] = []
    for rid, ex, answer in made:
        current[0] = answer
        reply = teacher.complete(patch_messages(ex.statement, ex.context), sampling=sampling)
        trace = token_trace((Step(index=0, reply=reply),), sampling)
        if trace is not None:
            out.append((content_id(rid, suffix), trace))
    return out


def sample_policy(settings: Settings, model: str, tasks: Sequence[TaskSpec],
                  envs: dict[str, EnvSpec], *, group: int = 1, temperature: float = 0.0,
                  max_turns: int = 6, max_new_tokens: int = 128,
                  observation_limit: int = 1500, seed: int = 0,
                  mode: Literal["agent", "patch"] = "agent",
                  answer_format: Literal["lines", "search_replace"] = "lines",
                  say: Callable[[str], None] | None = None) -> list[Graded]:
    """Roll ``model`` out on ``tasks`` in ``mode`` (recorded, graded; samples recorded
    before are read back, not rerun) and return the graded samples: what an eval or a
    rejection sampler needs. A local model's rollouts run at once around one batched
    sampler; other policies' are spread over the settings' executor."""
    from codemill.agent.config import AgentConfig
    from codemill.agent.models.checkpoints import shared_spec
    from codemill.factory.executors import make_executor
    from codemill.rollouts.plan import RolloutConfig, plan_rollouts
    from codemill.rollouts.runner import RolloutResult, stream_rollouts

    say = say or (lambda _m: None)
    sampling = SamplingConfig(temperature=temperature, max_tokens=max_new_tokens, seed=seed)
    agent = AgentConfig(max_turns=max_turns, max_tokens=max_turns * max_new_tokens,
                        observation_limit=observation_limit, sampling=sampling)
    policy = f"{model}|t{max_turns}x{max_new_tokens}|obs{observation_limit}"
    if mode != "agent":  # agent-mode names predate the modes: keep them
        policy += f"|{mode}-{answer_format}"
    have = {g.rollout_id for g in read_graded(settings, policy_prefix=policy)}
    regrade_stale(settings, sorted(have), tasks, envs, new_run_id(), "policy_samples", say)
    shared_spec(model, settings.home)  # a missing checkpoint fails here, once
    config = RolloutConfig(group_size=group, sampling=sampling, mode=mode,
                           answer_format=answer_format)
    with make_executor(settings) as executor:
        batch, stream = stream_rollouts(
            list(tasks), envs=envs, home=Path(settings.home), settings=settings, model=model,
            policy=policy, config=config, agent=agent, existing=have, executor=executor)
        run_id = new_run_id()
        failed: list[str] = []
        for done, res in enumerate(stream, 1):
            if isinstance(res, RolloutResult):
                persist_rollouts(settings, run_id, "policy_samples", [res])
                r = res.reward
                say(f"{model} {done}/{batch.planned}: task {res.item.task.task_id[:10]} "
                    f"{'masked' if r is None or r.masked else r.value} "
                    f"({res.trajectory.stop_reason.value}, {res.seconds:.0f}s)")
            else:
                failed.append(res[1])
                say(f"{model} {done}/{batch.planned}: rollout {res[0].rollout_id[:12]} "
                    f"failed in its worker: {res[1]}")
    if failed and len(failed) == batch.planned:  # e.g. a model spec no worker could load
        raise FactoryError(f"{model}: every rollout failed; the first: {failed[0]}")
    # Every planned attempt is in the answer: one with no recorded trace (its worker
    # failed, or it left no token row) as ``failed``, so a caller can count it.
    planned = plan_rollouts(list(tasks), policy, config)
    got = {g.rollout_id: g for g in read_graded(settings, [i.rollout_id for i in planned])}
    return [got.get(i.rollout_id) or Graded(i.rollout_id, i.task.task_id, i.group_id, None,
                                            None, "", "failed") for i in planned]


def export_trajectories(settings: Settings, out: Path, policy_prefix: str | None = None) -> int:
    """Every recorded token trace (optionally of one policy) to a Parquet export."""
    from codemill.store.ledger import Ledger
    from codemill.train.export import ExportRow, export_parquet

    graded = read_graded(settings, policy_prefix=policy_prefix)
    with Ledger.open(settings) as ledger:
        policies = {r["rollout_id"]: r["policy"] for r in ledger.read(
            "trajectories", columns=["rollout_id", "policy"]).to_pylist()}
    return export_parquet([ExportRow(g.rollout_id, g.task_id, g.group_id,
                                     policies.get(g.rollout_id) or "", g.reward,
                                     g.stop_reason, g.trace)
                           for g in graded if g.trace is not None], out)
