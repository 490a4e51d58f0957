"""Running rollout groups: each sample in its own fork of the task's workspace, then graded.

    results = run_rollouts(tasks, envs=envs, home=home, settings=settings,
                           model="scripted:fix.json", config=RolloutConfig(group_size=4),
                           existing=ids_already_recorded, executor=executor)

1. ``prepare_workspaces``: each task's workspace layer is packaged once, in this process
   (``codemill.tasks.package``: broken state, hidden tests removed, a one-commit git repo);
2. ``plan_rollouts``: the samples whose ids are not in ``existing`` (a rerun after a crash
   does only what is missing);
3. ``executor.map(run_one, ...)``: each sample opens ``env_spec.with_top(task_layer)`` (a
   copy-on-write fork), runs the agent, closes the fork, and grades the final diff in a
   fresh sandbox (``codemill.rewards``). ``executor`` is anything with ``map(fn, items)``
   yielding results in order (``codemill.factory``'s local pool or Ray executor, injected
   by the caller since ``rollouts`` may not import ``factory``); the default runs
   in-process, in order.

In patch mode (``RolloutConfig.mode="patch"``) step 1 builds each task's patch context
instead (``prepare_patch_contexts``: one sandboxed, covered run of its FAIL_TO_PASS tests
in the broken state) and each sample is one model call read as an edit
(``codemill.rollouts.patch_mode``), graded by the same grader; no workspace fork is opened.
Within one in-process stream, samples of a task with the same reply are graded once and
share the verdict, each in its own reward row (``codemill.rollouts.verdicts``).

Failures are data: a fork that cannot open, or an agent stopped by its model or sandbox
failing, gives a trajectory with its error and a *masked* reward (``value=None``), never a
zero. Writing rows is the caller's job (``codemill.cli`` / ``codemill.factory``).

Workers build the model from its spec string (``codemill.agent.models.make_backend``), once
per process; an in-process run may pass a backend object instead.

A local model (``smollm2``, ``transformers:``, ``ckpt:``, or a backend object that samples
through a batched engine) is one sampler per machine: its rollouts run as up to
``in_flight`` threads of this process around one copy of the weights, and the engine
decodes the turns that wait at the same time in one batch while other rollouts' tools and
tests run in their sandboxes. ``executor`` is not used for them (a process pool would load
the model once per worker and decode one sequence at a time in each).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from codemill.agent.config import AgentConfig
from codemill.agent.loop import Agent
from codemill.agent.models.engine import MAX_BATCH
from codemill.core.boundary import boundary
from codemill.core.config import Settings
from codemill.core.errors import GradingError
from codemill.core.protocols import ModelBackend
from codemill.core.records import EnvSpec, Reward, StopReason, TaskSpec, Trajectory
from codemill.envs import installs
from codemill.rewards.config import GraderConfig
from codemill.rewards.grader import grade, infra_reward
from codemill.rollouts.patch_mode import run_patch
from codemill.rollouts.plan import RolloutConfig, RolloutItem, plan_rollouts, sample_sampling
from codemill.rollouts.verdicts import SharedVerdicts
from codemill.sandbox.api import open_sandbox
from codemill.tasks.patch_context import LISTING_FUNCTIONS

INFRA_STOPS = {StopReason.MODEL_ERROR: "infra:model", StopReason.SANDBOX_ERROR: "infra:sandbox"}
"""Stops caused by the model endpoint or the sandbox: the diff is partial through no fault
of the policy, so the reward is masked rather than graded."""


class MapExecutor(Protocol):
    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]: ...


class InProcess:
    """The default executor: in this process, in order."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return (fn(item) for item in items)


class Threads:
    """``workers`` threads of this process; results in input order, a failure returned as
    its message (like a process executor's error value)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        from concurrent.futures import ThreadPoolExecutor

        def call(item: Any) -> Any:
            try:
                return fn(item)
            except Exception as exc:  # one rollout's failure is its row, not the batch's
                return f"{type(exc).__name__}: {exc}"

        with ThreadPoolExecutor(self.workers, thread_name_prefix="rollout") as pool:
            yield from pool.map(call, items)


IN_FLIGHT = MAX_BATCH * 3 // 2
"""Rollouts of a local model run at once (threads around one batched sampler): half again
the engine's ``max_batch`` rows, so a row freed when a conversation's turn ends (its tools
or tests then run in a sandbox) is taken at once by a conversation waiting in the engine's
queue, and the last tasks of an eval or a round do not start only when a whole wave ends.
No more than that: each rollout in flight holds a sandbox and its conversation's cache
(``codemill.agent.models.engine``)."""


@dataclass(frozen=True)
class RolloutContext:
    """What every worker needs besides its item; picklable when ``model`` is a string."""

    home: Path
    settings: Settings
    model: str | Any
    """A backend spec (``scripted:...``, ``openai:...``) or, in-process only, a backend."""
    envs: Mapping[str, EnvSpec]
    layers: Mapping[str, Path]
    """``task_id -> workspace layer``, from ``prepare_workspaces``."""
    agent: AgentConfig = AgentConfig()
    grader: GraderConfig = GraderConfig()
    grade: bool = True
    backend: str | None = None
    """Sandbox backend; default ``settings.sandbox.backend``."""
    patch: Mapping[str, Any] = field(default_factory=dict)
    """Patch mode: ``task_id -> PatchContext``, from ``prepare_patch_contexts``."""
    verdicts: SharedVerdicts | None = None
    """Patch mode, in-process: identical replies of a task graded once
    (``codemill.rollouts.verdicts``)."""


@dataclass(frozen=True)
class RolloutResult:
    """One sample: its trajectory (every message, tool call, observation, token count,
    timing, the final diff) and its reward (None when grading was not asked for)."""

    item: RolloutItem
    trajectory: Trajectory
    reward: Reward | None
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())


_MODELS: dict[str, ModelBackend] = {}
_MODELS_LOCK = threading.Lock()
CACHED_KINDS = ("transformers", "smollm2", "ckpt")
"""Backends whose construction loads weights: built once per process and shared by its
rollout threads. Others are cheap and may hold per-run state (a scripted replay), so each
rollout gets its own."""


def _model(ctx: RolloutContext) -> ModelBackend:
    if not isinstance(ctx.model, str):
        return ctx.model  # type: ignore[no-any-return]
    from codemill.agent.models import make_backend

    if not ctx.model.startswith(CACHED_KINDS):
        return make_backend(ctx.model, home=ctx.home)
    with _MODELS_LOCK:  # rollout threads ask at once: load the weights once
        if ctx.model not in _MODELS:
            _MODELS[ctx.model] = make_backend(ctx.model, home=ctx.home)
        return _MODELS[ctx.model]


def _end_conversation(model: ModelBackend) -> None:
    """The rollout's turns are over: a backend that keeps this thread's conversation state
    (a local model's keys and values) lets it go before the rollout is graded, so the
    rollouts in flight do not each hold a cache through seconds to minutes of tests."""
    end = getattr(model, "end_conversation", None)
    if callable(end):
        end()


def is_local(model: str | Any) -> bool:
    """Whether ``model`` samples on this machine through a batched engine."""
    if isinstance(model, str):
        return model.strip().startswith(CACHED_KINDS)
    return bool(getattr(model, "batched", False))


def prepare_workspaces(tasks: Sequence[TaskSpec], envs: Mapping[str, EnvSpec], home: Path,
                       settings: Settings) -> dict[str, Path]:
    """Package each task's workspace layer once (``codemill.tasks.package``)."""
    from codemill.tasks.package import package_task

    return {task.task_id: package_task(bed(), task)
            for task, bed in _task_beds(tasks, envs, home, settings)}


def _task_beds(tasks: Sequence[TaskSpec], envs: Mapping[str, EnvSpec], home: Path,
               settings: Settings) -> Iterator[tuple[TaskSpec, Callable[[], Any]]]:
    """Each distinct task with a function opening its environment's ``TestBed``; raises
    ``GradingError`` for a task whose environment is not known."""
    from codemill.tasks.testbed import TestBed

    seen: set[str] = set()
    for task in tasks:
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        env = envs.get(task.env_id)
        if env is None:
            raise GradingError(f"task {task.task_id[:12]}: environment {task.env_id[:12]} "
                               "is not known")
        yield task, partial(TestBed.from_env, env, home, settings.sandbox,
                            backend=settings.sandbox.backend)


def prepare_patch_contexts(tasks: Sequence[TaskSpec], envs: Mapping[str, EnvSpec], home: Path,
                           settings: Settings, listing_functions: int = LISTING_FUNCTIONS,
                           progress: Callable[[int, int], None] | None = None
                           ) -> dict[str, Any]:
    """Each task's patch-mode context (``codemill.tasks.patch_context``), built once: a
    covered run of its FAIL_TO_PASS tests in a sandbox fork of the broken state, one task
    per core at a time (``settings.executor.workers``; cached contexts cost nothing). A
    task whose run fails gets a context with ``error`` set (its samples are masked).
    ``listing_functions``: functions shown at most; ``progress(done, total)`` as each
    task's context is ready (a new suite's contexts take minutes)."""
    from codemill.tasks.patch_context import PatchContext, PatchContextConfig, task_patch_context

    listing = PatchContextConfig(max_functions=listing_functions)

    beds = list(_task_beds(tasks, envs, home, settings))
    done, lock = [0], threading.Lock()

    def one(pair: tuple[TaskSpec, Callable[[], Any]]) -> Any:
        task, bed = pair
        with boundary("sandbox", "build the patch context") as built:
            context = task_patch_context(bed(), task, listing)
        if progress is not None:
            with lock:
                done[0] += 1
                progress(done[0], len(beds))
        return PatchContext(task_id=task.task_id, error=built.message) if built.failed \
            else context

    workers = settings.executor.workers or len(os.sched_getaffinity(0))
    contexts = Threads(min(workers, len(beds))).map(one, beds)
    return {task.task_id: c if not isinstance(c, str) else PatchContext(
        task_id=task.task_id, error=c) for (task, _), c in zip(beds, contexts, strict=True)}


def run_patch_one(ctx: RolloutContext, item: RolloutItem) -> RolloutResult:
    """One patch-mode sample: one model call on the task's context, then the reward. A
    missing context or model is a masked attempt (``sandbox_error``/``model_error``)."""
    started = time.monotonic()
    task, env = item.task, ctx.envs[item.task.env_id]
    context = ctx.patch.get(task.task_id)
    base = dict(rollout_id=item.rollout_id, task_id=task.task_id, policy=item.policy,
                sample_index=item.sample_index, task_prompt=task.problem_statement)
    if context is None or context.error:
        why = "no patch context" if context is None else context.error
        traj = Trajectory(**base, stop_reason=StopReason.SANDBOX_ERROR,
                          error=f"patch context: {why}")
    else:
        with boundary("model", "build the model backend") as built:
            model = _model(ctx)
        if built.failed:
            traj = Trajectory(**base, stop_reason=StopReason.MODEL_ERROR, error=built.message)
        else:
            traj = run_patch(model, task.problem_statement, context,
                             rollout_id=item.rollout_id, task_id=task.task_id,
                             policy=item.policy, sample_index=item.sample_index,
                             sampling=sample_sampling(item.sampling, item.sample_index),
                             fmt=item.answer_format)  # type: ignore[arg-type]
            _end_conversation(model)
    notes: list[str] = []
    reward = None
    if ctx.grade and ctx.verdicts is not None and traj.steps:
        reward = ctx.verdicts.reward(traj, lambda: _reward(ctx, item, env, traj, notes))
    elif ctx.grade:
        reward = _reward(ctx, item, env, traj, notes)
    return RolloutResult(item, traj, reward, round(time.monotonic() - started, 3), tuple(notes))


def run_one(ctx: RolloutContext, item: RolloutItem) -> RolloutResult:
    """One sample, start to reward (see the module docstring)."""
    if item.mode == "patch":
        return run_patch_one(ctx, item)
    started = time.monotonic()
    task, env = item.task, ctx.envs[item.task.env_id]
    agent_cfg = ctx.agent.model_copy(update={"sampling": item.sampling})
    notes: list[str] = []
    with boundary("sandbox", "open the rollout workspace") as opened:
        spec = installs.sandbox_spec(env, ctx.home, ctx.settings.sandbox)
        sb = open_sandbox(spec.with_top(ctx.layers[task.task_id]), ctx.home,
                          backend=ctx.backend)
    if opened.failed:
        traj = Trajectory(rollout_id=item.rollout_id, task_id=task.task_id, policy=item.policy,
                          sample_index=item.sample_index, task_prompt=task.problem_statement,
                          stop_reason=StopReason.SANDBOX_ERROR, error=opened.message)
    else:
        try:
            with boundary("model", "build the model backend") as built:
                model = _model(ctx)
            if built.failed:
                traj = Trajectory(rollout_id=item.rollout_id, task_id=task.task_id,
                                  policy=item.policy, sample_index=item.sample_index,
                                  task_prompt=task.problem_statement,
                                  stop_reason=StopReason.MODEL_ERROR, error=built.message)
            else:
                traj = Agent(model, agent_cfg).run(
                    sb, task.problem_statement, rollout_id=item.rollout_id,
                    task_id=task.task_id, policy=item.policy, sample_index=item.sample_index)
                _end_conversation(model)
        finally:
            with boundary("sandbox", "close the rollout workspace") as closed:
                sb.close()
            if closed.failed:  # the trajectory stands; a leaked fork is noted, not fatal
                notes.append(closed.message or "")
    reward = None
    if ctx.grade:
        reward = _reward(ctx, item, env, traj, notes)
    return RolloutResult(item, traj, reward, round(time.monotonic() - started, 3), tuple(notes))


def _reward(ctx: RolloutContext, item: RolloutItem, env: EnvSpec, traj: Trajectory,
            notes: list[str]) -> Reward:
    return reward_for(item.task, env, traj, home=ctx.home, settings=ctx.settings,
                      grader=ctx.grader, backend=ctx.backend, notes=notes)


def reward_for(task: TaskSpec, env: EnvSpec, traj: Trajectory, *, home: Path,
               settings: Settings, grader: GraderConfig | None = None,
               backend: str | None = None, notes: list[str] | None = None) -> Reward:
    """The reward of a finished rollout: masked for an infrastructure stop (the diff is
    partial through no fault of the policy) or a grader that failed, graded otherwise.
    Used right after a rollout and by the factory's ``rewards`` asset, which grades
    rollouts read back from the ledger."""
    notes = notes if notes is not None else []
    infra = INFRA_STOPS.get(traj.stop_reason)
    if infra is not None:
        notes.append(f"{infra}: {traj.error or traj.stop_reason}")
        return infra_reward(task, env, rollout_id=traj.rollout_id, policy=traj.policy,
                            error_type=infra, diff=traj.diff)
    with boundary("grader", "grade the rollout") as graded:
        reward = grade(task, traj.diff, env=env, home=home, settings=settings,
                       rollout_id=traj.rollout_id, policy=traj.policy, trajectory=traj,
                       config=grader or GraderConfig(), backend=backend)
    if graded.failed:
        notes.append(graded.message or "")
        return infra_reward(task, env, rollout_id=traj.rollout_id, policy=traj.policy,
                            error_type=graded.error_type or "infra:grader", diff=traj.diff)
    return reward


@dataclass
class RolloutBatch:
    """What ``run_rollouts`` did: the finished samples, the ones whose worker failed
    (no row: the next run plans them again), and how many were already recorded."""

    results: list[RolloutResult]
    failed: list[tuple[RolloutItem, str]]
    planned: int
    skipped: int


def stream_rollouts(
    tasks: Sequence[TaskSpec], *, envs: Mapping[str, EnvSpec] | Sequence[EnvSpec],
    home: Path, settings: Settings, model: str | Any, policy: str | None = None,
    config: RolloutConfig | None = None, agent: AgentConfig | None = None,
    grader: GraderConfig | None = None, existing: Collection[str] = (),
    executor: MapExecutor | None = None, backend: str | None = None,
    in_flight: int = IN_FLIGHT, on_context: Callable[[int, int], None] | None = None,
) -> tuple[RolloutBatch, Iterator[RolloutResult | tuple[RolloutItem, str]]]:
    """Plan now; run lazily. Returns the (still empty) batch with its counts, and an
    iterator yielding each sample's result, or ``(item, error)`` when its worker failed,
    as the executor hands them out, so a caller can persist as it goes. The iterator also
    fills the batch. ``policy`` names the policy in ids and rows (default: the model spec).
    A local model's rollouts run as ``in_flight`` threads here (module docstring).
    ``on_context(done, total)``: patch mode's contexts as they are built, before any sample.
    """
    config = config or RolloutConfig()
    env_map = dict(envs) if isinstance(envs, Mapping) else {e.env_id: e for e in envs}
    name = policy or (model if isinstance(model, str) else getattr(model, "name", "model"))
    items = plan_rollouts(tasks, name, config, existing)
    total = len({t.task_id for t in tasks}) * config.group_size
    batch = RolloutBatch([], [], len(items), total - len(items))

    def run() -> Iterator[RolloutResult | tuple[RolloutItem, str]]:
        if not items:
            return
        todo = [i.task for i in items]
        patch = config.mode == "patch"
        layers = {} if patch else prepare_workspaces(todo, env_map, Path(home), settings)
        contexts = prepare_patch_contexts(todo, env_map, Path(home), settings,
                                          config.listing_functions,
                                          progress=on_context) if patch else {}
        runner = Threads(in_flight) if is_local(model) else (executor or InProcess())
        # shared only within this process: a process pool's workers grade each their own
        shared = patch and isinstance(runner, (Threads, InProcess))
        ctx = RolloutContext(home=Path(home).absolute(), settings=settings, model=model,
                             envs=env_map, layers=layers, agent=agent or AgentConfig(),
                             grader=grader or GraderConfig(), grade=config.grade,
                             backend=backend, patch=contexts,
                             verdicts=SharedVerdicts() if shared else None)
        results = runner.map(partial(run_one, ctx), items)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, RolloutResult):
                batch.results.append(result)
                yield result
            else:  # an executor's error value (e.g. the worker process died)
                batch.failed.append((item, str(result)))
                yield item, str(result)

    return batch, run()


def run_rollouts(*args: Any, **kwargs: Any) -> RolloutBatch:
    """``stream_rollouts`` run to the end (same arguments); returns the filled batch."""
    batch, results = stream_rollouts(*args, **kwargs)
    for _ in results:
        pass
    return batch
