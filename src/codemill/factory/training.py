"""Training as factory work: data from the ledger (or an export), SFT and GRPO runs,
checkpoints recorded with their lineage.

    result = train_sft(settings, SftJob(model="smollm2", data="expert"), on_step=print)
    result = train_grpo(settings, GrpoJob(model=f"ckpt:{result.checkpoint_id}"))

- **Data** (``codemill.factory.train_data``). ``expert`` runs expert scripts
  (``codemill.train.expert``) or a teacher model (rejection sampling) through the real
  agent loop and sandbox, recorded token-exactly by ``TeacherBackend``, graded by the real
  grader; only reward 1 is kept. ``rollouts`` reads
  token traces of resolved rollouts from the ``trajectories`` and ``rewards`` tables
  (joined by rollout_id). A Parquet export (``codemill.train.export``) also works.
- **Identity and resume.** A checkpoint id hashes its kind, base model, parent, data ids
  and config. Its directory holds a state every ``save_every`` steps; a rerun of the same job
  resumes from the newest state (a killed run neither repeats nor loses a step), and a
  finished checkpoint (manifest present) is a cache hit.
- **GRPO rounds** are on-policy: each round rolls out G samples per chosen task with the
  current weights (``codemill.rollouts``, the same agent users run), records them, grades
  them, and makes one update. Rollout ids name the checkpoint and round, so a resumed
  round reads back the samples it already recorded instead of sampling them again.

Only this module (through ``codemill.store``) writes the rows; ``codemill.train`` computes.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id, new_run_id
from codemill.core.records import EnvSpec, SamplingConfig, TaskSpec, TokenTrace
from codemill.factory.train_data import (
    Graded,
    expert_data,
    export_trajectories,
    ledger_tasks,
    persist_rollouts,
    read_graded,
    sample_policy,
)
from codemill.rewards.config import HARNESS_VERSION
from codemill.train.config import LORA_ATTENTION_AND_MLP, TrainConfig

__all__ = ["GrpoJob", "SftJob", "TrainResult", "export_trajectories", "read_graded",
           "sample_policy", "train_after_run", "train_grpo", "train_sft"]

StepFn = Callable[[dict[str, Any]], None]
TRAINER_VERSION = "1"
"""Bump when the trainer's output for the same inputs would change (in checkpoint ids)."""


class SftJob(BaseModel):
    """What ``codemill train sft`` was asked to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "smollm2"
    """Base model spec: ``smollm2``, ``transformers:DIR`` or ``ckpt:ID``."""
    data: Literal["expert", "rollouts", "parquet"] = "expert"
    """Where the trajectories come from (module docstring)."""
    data_path: str | None = None
    """The Parquet export, when ``data`` is ``parquet``."""
    teacher: str | None = None
    """With ``expert``: a model spec to rejection-sample from instead of the scripted
    experts (resolved runs only are kept)."""
    tasks: tuple[str, ...] = ()
    """Task id prefixes to use; empty = every validated task in the ledger."""
    per_task: int = Field(2, ge=1)
    """Expert (or teacher) runs per task; each script varies its exploration."""
    max_turns: int = Field(12, ge=1)
    observation_limit: int = Field(1500, ge=200)
    """Characters of a tool observation kept in a trajectory (short = faster training)."""
    train: TrainConfig = TrainConfig(lr=1e-4, batch_size=4, steps=20)


class GrpoJob(BaseModel):
    """What ``codemill train grpo`` was asked to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "smollm2"
    """The policy to start from (usually ``ckpt:ID`` of an SFT checkpoint)."""
    tasks: tuple[str, ...] = ()
    """Task id prefixes; empty = every validated task."""
    observation_limit: int = Field(1500, ge=200)
    train: TrainConfig = TrainConfig(lr=1e-5, batch_size=2, steps=4, group_size=4,
                                     max_new_tokens=128, max_turns=6)


@dataclass
class TrainResult:
    checkpoint_id: str
    path: Path
    kind: str
    cached: bool
    metrics: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


# --- checkpoints -----------------------------------------------------------------------


def _base_dirs(spec: str, home: Path) -> tuple[Path, Path | None, str, str | None]:
    """(base dir, adapter dir, root base spec, parent checkpoint id) of a model spec."""
    from codemill.agent.models.checkpoints import find_checkpoint, model_dir, read_manifest

    base, adapter = model_dir(spec, home)
    if spec.startswith("ckpt:"):
        path = find_checkpoint(spec.split(":", 1)[1], home)
        manifest = read_manifest(path)
        root = str(manifest["base_model"]) if manifest.get("lora") else f"ckpt:{path.name}"
        return base, adapter, root, path.name
    return base, adapter, spec, None


def _job_model(job: Any, home: Path) -> tuple[Path, Path | None, str, str | None,
                                              TrainConfig]:
    """``_base_dirs`` of the job's model and its train config; a model that is already an
    adapter keeps training as one (LoRA on)."""
    base_dir, adapter, root, parent = _base_dirs(job.model, home)
    cfg = job.train.model_copy(update={"lora": True}) if adapter is not None else job.train
    return base_dir, adapter, root, parent, cfg


def _record(settings: Settings, run_id: str, row: dict[str, Any]) -> None:
    from codemill.store.ledger import Ledger

    with Ledger.open(settings) as ledger, ledger.writer(
            "checkpoints", run_id=run_id, asset="checkpoints",
            config_hash=settings.config_hash) as w:
        w.add(row)


def _ids(values: Sequence[str]) -> str:
    return json.dumps(sorted(set(values)))


def _checkpoint_row(ckpt_id: str, kind: str, base: str, parent: str | None, path: Path,
                    cfg: TrainConfig, metrics: list[dict[str, Any]], task_ids: Sequence[str],
                    env_ids: Sequence[str], snapshot_ids: Sequence[str],
                    rollout_ids: Sequence[str]) -> dict[str, Any]:
    rewards = [m["reward_mean"] for m in metrics if m.get("reward_mean") is not None]
    return {
        "checkpoint_id": ckpt_id, "kind": kind, "algorithm": kind, "base_model": base,
        "parent_id": parent, "policy": f"ckpt:{ckpt_id}", "path": str(path), "lora": cfg.lora,
        "step": metrics[-1]["step"] if metrics else 0, "task_ids": _ids(task_ids),
        "env_ids": _ids(env_ids), "snapshot_ids": _ids(snapshot_ids),
        "rollout_ids": _ids(rollout_ids), "n_rollouts": len(set(rollout_ids)),
        "mean_reward": rewards[-1] if rewards else None,
        "config_hash": content_id(cfg), "config": cfg.model_dump_json(),
        "config_json": cfg.model_dump_json(), "metrics": json.dumps(metrics),
    }


def _manifest(ckpt_id: str, kind: str, base: str, parent: str | None, cfg: TrainConfig,
              step: int) -> dict[str, Any]:
    return {"checkpoint_id": ckpt_id, "kind": kind, "base_model": base, "parent_id": parent,
            "lora": cfg.lora, "step": step, "trainer_version": TRAINER_VERSION}


def _snapshots_of(env_ids: Sequence[str], envs: dict[str, EnvSpec]) -> list[str]:
    return [envs[e].snapshot_id for e in env_ids if e in envs]


# --- SFT -------------------------------------------------------------------------------


def sft_schedule(n: int, cfg: TrainConfig) -> list[list[int]]:
    """Indices of each step's sequences: epochs of seeded shuffles, laid end to end, so
    step ``s`` sees the same batch whether or not the run was resumed."""
    rng = random.Random(cfg.seed)
    order: list[int] = []
    while len(order) < cfg.steps * cfg.batch_size:
        epoch = list(range(n))
        rng.shuffle(epoch)
        order += epoch
    return [order[s * cfg.batch_size:(s + 1) * cfg.batch_size] for s in range(cfg.steps)]


def _sft_data(settings: Settings, job: SftJob, base_dir: Path, run_id: str,
              say: Callable[[str], None]) -> tuple[list[Graded], list[TaskSpec],
                                                   dict[str, EnvSpec]]:
    if job.data == "parquet":
        from codemill.train.export import read_export

        if not job.data_path:
            raise FactoryError("--data parquet needs a file (--data-path)")
        rows = read_export(Path(job.data_path))
        graded = [Graded(r["rollout_id"], r["task_id"], r["group_id"] or "", TokenTrace(
            prompt_ids=tuple(r["prompt_ids"]), completion_ids=tuple(r["completion_ids"]),
            loss_mask=tuple(r["loss_mask"]), logprobs=tuple(r["logprobs"]),
            tokenizer_hash=r["tokenizer_hash"] or ""), r["reward"], r["stop_reason"] or "")
            for r in rows]
        return graded, [], {}
    tasks, envs = ledger_tasks(settings, job.tasks)
    if job.data == "rollouts":
        known = {t.task_id for t in tasks}
        return [g for g in read_graded(settings) if g.task_id in known], tasks, envs
    if not tasks:
        raise FactoryError("no validated tasks with a usable environment in the ledger "
                           "(run `codemill run SOURCE` or `codemill tasks synth` first)")
    return expert_data(settings, job, tasks, envs, base_dir, run_id, say), tasks, envs


def train_sft(settings: Settings, job: SftJob, *, on_step: StepFn | None = None,
              say: Callable[[str], None] | None = None) -> TrainResult:
    """SFT on resolved trajectories (module docstring); returns the checkpoint."""
    from codemill.agent.models.sampler import tokenizer_hash
    from codemill.train.data import from_trace, keep
    from codemill.train.policy import load_policy, resume, save_checkpoint, save_state
    from codemill.train.steps import sft_step

    say = say or (lambda _m: None)
    home = Path(settings.home)
    run_id = new_run_id()
    base_dir, adapter, root, parent, cfg = _job_model(job, home)
    graded, tasks, envs = _sft_data(settings, job, base_dir, run_id, say)
    good = [g for g in graded if g.trace is not None and g.reward is not None and g.reward >= 1]
    seqs, left_out = keep([from_trace(g.trace, rollout_id=g.rollout_id) for g in good
                           if g.trace is not None], cfg.max_len)
    if not seqs:
        raise FactoryError(f"no resolved trajectories to train on ({len(graded)} read, "
                           f"{len(good)} resolved, {left_out} longer than max_len)")
    hashes = {g.trace.tokenizer_hash for g in good if g.trace is not None} - {""}
    ckpt_id = content_id("checkpoint", "sft", TRAINER_VERSION, job.model, root, cfg,
                         sorted(s.rollout_id for s in seqs))
    run_dir = home / "checkpoints" / ckpt_id
    data = {"trajectories": len(graded), "resolved": len(good), "sequences": len(seqs),
            "left_out": left_out, "tokens": sum(len(s.ids) for s in seqs)}
    task_ids = sorted({g.task_id for g in good})
    if (run_dir / "manifest.json").is_file():
        return TrainResult(ckpt_id, run_dir, "sft", True, _stored_metrics(run_dir), data)
    policy = load_policy(base_dir, cfg, adapter_dir=adapter)
    if hashes and hashes != {tokenizer_hash(policy.tokenizer)}:
        raise FactoryError("the trajectories were tokenized by another tokenizer than "
                           f"{job.model}'s")
    if resume(policy, run_dir):
        say(f"resumed {ckpt_id[:12]} after step {policy.step}")
    schedule = sft_schedule(len(seqs), cfg)
    while policy.step < cfg.steps:
        metrics = sft_step(policy, [seqs[i] for i in schedule[policy.step]])
        policy.metrics.append(metrics)
        if policy.step % cfg.save_every == 0 or policy.step == cfg.steps:
            save_state(policy, run_dir)
        if on_step:
            on_step(metrics)
    save_checkpoint(policy, run_dir, _manifest(ckpt_id, "sft", root, parent, cfg, policy.step))
    env_ids = sorted({t.env_id for t in tasks if t.task_id in set(task_ids)})
    _record(settings, run_id, _checkpoint_row(
        ckpt_id, "sft", root, parent, run_dir, cfg, policy.metrics, task_ids, env_ids,
        _snapshots_of(env_ids, envs), [s.rollout_id for s in seqs]))
    return TrainResult(ckpt_id, run_dir, "sft", False, policy.metrics, data)


def _stored_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """A finished checkpoint's per-step metrics (``metrics.json`` beside its manifest)."""
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else []


# --- GRPO ------------------------------------------------------------------------------


def _timing(results: Sequence[Any]) -> dict[str, float]:
    """Where rollout time went: the model, the tools' commands, the loop (harness)."""
    model = tools = harness = wall = 0.0
    for r in results:
        wall += r.trajectory.wall_seconds
        for step in r.trajectory.steps:
            model += step.reply.latency_s
            tools += step.tool_seconds
            harness += step.harness_seconds
    return {"rollout_wall_s": wall, "model_s": model, "tools_s": tools,
            "harness_s": harness, "harness_share": harness / wall if wall else 0.0}


def train_grpo(settings: Settings, job: GrpoJob, *, on_step: StepFn | None = None,
               say: Callable[[str], None] | None = None) -> TrainResult:
    """On-policy GRPO rounds (module docstring); returns the checkpoint."""
    from codemill.agent.config import AgentConfig
    from codemill.agent.models.local import TransformersBackend
    from codemill.rollouts.plan import RolloutConfig
    from codemill.rollouts.runner import RolloutResult, stream_rollouts
    from codemill.train.grpo import Sample, choose_tasks, round_data
    from codemill.train.policy import load_policy, resume, save_checkpoint, save_state
    from codemill.train.steps import grpo_step

    say = say or (lambda _m: None)
    home = Path(settings.home)
    run_id = new_run_id()
    base_dir, adapter, root, parent, cfg = _job_model(job, home)
    tasks, envs = ledger_tasks(settings, job.tasks)
    if not tasks:
        raise FactoryError("no validated tasks with a usable environment in the ledger")
    by_id = {t.task_id: t for t in tasks}
    ckpt_id = content_id("checkpoint", "grpo", TRAINER_VERSION, job.model, root, cfg,
                         sorted(by_id), job.observation_limit)
    run_dir = home / "checkpoints" / ckpt_id
    prefix = f"grpo:{ckpt_id[:16]}@"
    if (run_dir / "manifest.json").is_file():
        return TrainResult(ckpt_id, run_dir, "grpo", True, _stored_metrics(run_dir))
    policy = load_policy(base_dir, cfg, adapter_dir=adapter)
    if resume(policy, run_dir):
        say(f"resumed {ckpt_id[:12]} after round {policy.step}")
    while policy.step < cfg.steps:
        r = policy.step
        started = time.monotonic()
        history: dict[str, tuple[int, int]] = {}
        for m in policy.metrics:
            for task, (p, n) in m.get("task_results", {}).items():
                old = history.get(task, (0, 0))
                history[task] = (old[0] + p, old[1] + n)
        chosen = choose_tasks(sorted(by_id), history, cfg.batch_size, cfg,
                              random.Random(f"{cfg.seed}-{r}"))
        name = f"{prefix}{r}"
        sampling = SamplingConfig(temperature=cfg.temperature, top_p=1.0, top_k=0,
                                  max_tokens=cfg.max_new_tokens, seed=cfg.seed * 100_003 + r)
        agent = AgentConfig(max_turns=cfg.max_turns,
                            max_tokens=cfg.max_turns * cfg.max_new_tokens,
                            observation_limit=job.observation_limit, sampling=sampling)
        backend = TransformersBackend.from_objects(policy.model, policy.tokenizer, name=name,
                                                   device=policy.device)
        recorded = [g.rollout_id for g in read_graded(settings, policy_prefix=name)]
        batch, stream = stream_rollouts(
            [by_id[t] for t in chosen], envs=envs, home=home, settings=settings,
            model=backend, policy=name,
            config=RolloutConfig(group_size=cfg.group_size, sampling=sampling),
            agent=agent, existing=recorded)
        new = []
        for done, res in enumerate(stream, 1):
            if isinstance(res, RolloutResult):
                new.append(res)
            say(f"round {r + 1}: rollout {done}/{batch.planned}")
        persist_rollouts(settings, run_id, "grpo_rollouts", new)
        rollout_s = time.monotonic() - started
        graded = read_graded(settings, policy_prefix=name)
        data = round_data([Sample(g.rollout_id, g.task_id, g.group_id, g.trace, g.reward,
                                  g.stop_reason) for g in graded], cfg)
        if data.seqs:
            metrics = grpo_step(policy, data.seqs)
        else:  # every group dead or left out: the round teaches nothing; no update
            policy.step += 1
            metrics = {"step": policy.step, "loss": None, "sequences": 0, "tokens": 0,
                       "seconds": 0.0, "tokens_per_s": 0.0}
        results: dict[str, list[int]] = {}
        for g in graded:
            if g.reward is not None:
                p, n = results.get(g.task_id, [0, 0])
                results[g.task_id] = [p + int(g.reward >= 1), n + 1]
        metrics.update(
            reward_mean=data.reward_mean, resolved_rate=data.resolved_rate,
            groups=data.groups, dead_groups=data.dead_groups, left_out=data.left_out,
            rollouts=len(graded), rollout_seconds=rollout_s, task_results=results,
            round_seconds=time.monotonic() - started, **_timing(new))
        policy.metrics.append(metrics)
        if policy.step % cfg.save_every == 0 or policy.step == cfg.steps:
            save_state(policy, run_dir)
        if on_step:
            on_step(metrics)
    save_checkpoint(policy, run_dir, _manifest(ckpt_id, "grpo", root, parent, cfg, policy.step))
    used = read_graded(settings, policy_prefix=prefix)
    task_ids = sorted({g.task_id for g in used})
    env_ids = sorted({by_id[t].env_id for t in task_ids if t in by_id})
    _record(settings, run_id, _checkpoint_row(
        ckpt_id, "grpo", root, parent, run_dir, cfg, policy.metrics, task_ids, env_ids,
        _snapshots_of(env_ids, envs), [g.rollout_id for g in used]))
    return TrainResult(ckpt_id, run_dir, "grpo", False, policy.metrics)


@dataclass
class RunTraining:
    """What ``codemill run --train`` (and ``codemill demo``) trained and measured."""

    checkpoint: TrainResult
    base: Any
    """``codemill.evals.stats.Rate`` of the base policy on the run's tasks."""
    trained: Any
    """The same rate for the checkpoint, with the same agent settings."""
    tasks: int
    same_tasks: bool = True
    """The checkpoint was trained on these tasks' gold patches: the comparison shows that
    it learned to act in the format, not that it generalizes (see ``bench_train``)."""


def train_after_run(settings: Settings, run: Any, snapshot_id: str, *, steps: int = 12,
                    per_task: int = 2, lr: float = 1e-3, lora: bool = True,
                    on_step: StepFn | None = None,
                    say: Callable[[str], None] | None = None) -> RunTraining:
    """SFT on expert trajectories of ``run``'s tasks (``run`` is the pipeline's
    ``RunConfig``, ``snapshot_id`` the source it resolved to), then the checkpoint rolled
    out on the same tasks with the run's agent settings. Every part is cached by content
    id: a rerun trains and samples nothing new."""
    from codemill.evals.stats import wilson
    from codemill.factory.executor_base import available_cpus
    from codemill.factory.lookup import env_for_snapshot
    from codemill.store.reader import LedgerReader

    say = say or (lambda _m: None)
    with LedgerReader.open(settings) as reader:
        env = env_for_snapshot(reader, snapshot_id)
    if env is None:
        raise FactoryError(f"{run.source}: no usable environment to train in")
    tasks, envs = ledger_tasks(settings)
    tasks = [t for t in tasks if t.env_id == env.env_id]
    if not tasks:
        raise FactoryError(f"{run.source}: no validated tasks to train on")
    job = SftJob(model=run.model, data="expert", tasks=tuple(t.task_id for t in tasks),
                 per_task=per_task, max_turns=max(6, run.max_turns),
                 train=TrainConfig(steps=steps, batch_size=2, lr=lr, lora=lora, max_len=3072,
                                   seed=run.seed, threads=available_cpus(),
                                   precision="bf16", lora_layers=8,
                                   lora_targets=LORA_ATTENTION_AND_MLP))
    ckpt = train_sft(settings, job, on_step=on_step, say=say)
    model = f"ckpt:{ckpt.checkpoint_id}"
    say(f"rolling out {model[:17]} on {len(tasks)} task(s)")
    kw = {"group": run.group_size, "temperature": run.temperature, "max_turns": run.max_turns,
          "max_new_tokens": run.max_tokens, "seed": run.seed, "observation_limit": 10_000}
    trained = [g.reward for g in sample_policy(settings, model, tasks, envs, say=say, **kw)]
    # The base policy's rollouts are the run's own (same tasks, same agent settings).
    ids = {t.task_id for t in tasks}
    with LedgerReader.open(settings) as reader:
        rows = {r["rollout_id"]: r for r in reader.read("rewards").to_pylist()
                if r["policy"] == run.model and r["task_id"] in ids
                and r["harness_version"] == HARNESS_VERSION}
    base = [None if r["masked"] else r["value"] for r in rows.values()]

    def rate(values: list[float | None]) -> Any:
        scored = [v for v in values if v is not None]
        return wilson(sum(1 for v in scored if v >= 1), len(scored))

    return RunTraining(ckpt, rate(base), rate(trained), len(tasks))
