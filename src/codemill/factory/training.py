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
- **The loops** live in ``codemill.train`` (``sft.train_steps``, ``grpo.train_rounds``);
  this module gives them data, a sampler and a place to save. ``train_sft`` and
  ``train_grpo`` materialize the ``checkpoints`` asset (``codemill.factory.checkpoints``),
  which calls ``run_sft`` / ``run_grpo`` and records the checkpoint row.
  Each step's metrics also go to TensorBoard event files in ``<home>/tb/<checkpoint id>``
  (``codemill.train.tracking``).
- **GRPO rounds** are on-policy: the sampler handed to the loop takes G samples per task
  with the current weights through ``codemill.rollouts`` (the same agent users run, or the
  one-turn patch mode: ``GrpoJob.mode``), recorded and graded. A round draws
  groups until enough carry a signal (dynamic sampling) and counts what it drew, dropped,
  and every attempt that was masked, ungraded or failed. Rollout ids name the checkpoint,
  round and draw, so a resumed round reads back the samples it already recorded instead of
  sampling them again. Pass rates the ledger holds for the starting policy order the
  first round's tasks.

Only the factory writes rows (the asset's checkpoint row; the rollouts of expert data and
GRPO rounds through ``train_data.persist_rollouts``); ``codemill.train`` computes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id
from codemill.core.records import EnvSpec, SamplingConfig, TaskSpec, TokenTrace
from codemill.factory.train_data import (
    Graded,
    expert_data,
    export_trajectories,
    ledger_tasks,
    persist_rollouts,
    read_graded,
    reversal_data,
    sample_policy,
)
from codemill.rewards.config import HARNESS_VERSION
from codemill.tasks.patch_context import LISTING_FUNCTIONS, listing_key
from codemill.train.config import LORA_ATTENTION_AND_MLP, TrainConfig
from codemill.train.grpo import ROUNDS_VERSION
from codemill.train.tracking import logdir, tensorboard_scalars

__all__ = ["GrpoJob", "SftJob", "TrainResult", "export_trajectories", "read_graded",
           "sample_policy", "train_after_run", "train_grpo", "train_sft"]

StepFn = Callable[[dict[str, Any]], None]
TRAINER_VERSION = "3"
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
    mode: Literal["agent", "patch"] = "agent"
    """``agent``: expert runs of the multi-turn agent; ``patch``: one answer per task, the
    gold patch written as line edits of the listing the patch-mode prompt shows
    (``codemill.rollouts.patch_mode.expert_answer``), recorded and graded like any
    patch-mode rollout. A task whose gold change the listing does not show gives none."""
    listing_functions: int = Field(LISTING_FUNCTIONS, ge=1)
    """Patch mode: functions the listing shows at most (``RolloutConfig``)."""
    reversals: int = Field(0, ge=0)
    """Patch mode: mutation reversals trained on besides the resolved answers, about as
    many from each project of the job's tasks (``codemill.tasks.reversal``: the released
    line as the answer to a prompt showing it mutated; nothing is executed or graded)."""
    train: TrainConfig = TrainConfig(lr=1e-4, batch_size=4, steps=20)

    @model_validator(mode="after")
    def _reversals_in_patch_mode(self) -> SftJob:
        if self.reversals and self.mode != "patch":
            raise ValueError("reversals are patch-mode examples: use them with mode patch")
        return self


class GrpoJob(BaseModel):
    """What ``codemill train grpo`` was asked to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "smollm2"
    """The policy to start from (usually ``ckpt:ID`` of an SFT checkpoint)."""
    tasks: tuple[str, ...] = ()
    """Task id prefixes; empty = every validated task."""
    observation_limit: int = Field(1500, ge=200)
    mode: Literal["agent", "patch"] = "agent"
    """``agent``: multi-turn rollouts with tools; ``patch``: one answer per rollout, an edit
    of the code the failing tests reach (``codemill.rollouts.patch_mode``)."""
    answer_format: Literal["lines", "search_replace"] = "lines"
    """Patch mode: the edit form the prompt asks for."""
    listing_functions: int = Field(LISTING_FUNCTIONS, ge=1)
    """Patch mode: functions the listing shows at most (``RolloutConfig``)."""
    train: TrainConfig = TrainConfig(lr=1e-5, batch_size=2, steps=4, group_size=8,
                                     max_new_tokens=128, max_turns=6)


def job_key(job: SftJob | GrpoJob) -> dict[str, Any]:
    """``job`` as caches key it: ``listing_functions`` only where it is not the default."""
    exclude = set() if listing_key(job.listing_functions) else {"listing_functions"}
    if not getattr(job, "reversals", 0):
        exclude.add("reversals")  # keys made before reversals existed stay valid
    return job.model_dump(mode="json", exclude=exclude)


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
            tokenizer_hash=r["tokenizer_hash"] or ""), r["reward"], r["stop_reason"] or "",
            "scored" if r["reward"] is not None else "masked")
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
    """SFT on resolved trajectories (module docstring); returns the checkpoint. The job is
    a materialization of the ``checkpoints`` asset (``codemill.factory.checkpoints``): a
    ``runs`` row (``train sft``) like every other job's, cached by its resolved inputs."""
    from codemill.factory.checkpoints import train_checkpoint

    return train_checkpoint(settings, "sft", job, on_step=on_step, say=say)


@dataclass(frozen=True)
class SftPlan:
    """An SFT job resolved before its first step: the sequences it trains on (resolved
    trajectories that fit ``max_len``), the checkpoint's id and directory, and what its
    row and manifest say. ``run_sft`` trains it here; ``prepare_sft`` writes it out for a
    machine without the ledger (``codemill.train.remote``)."""

    ckpt_id: str
    run_dir: Path
    cfg: TrainConfig
    base_dir: Path
    adapter: Path | None
    root: str
    parent: str | None
    seqs: list[Any]
    good: list[Graded]
    tasks: list[TaskSpec]
    envs: dict[str, EnvSpec]
    data: dict[str, Any]

    def manifest(self, step: int) -> dict[str, Any]:
        return _manifest(self.ckpt_id, "sft", self.root, self.parent, self.cfg, step)

    def row(self, metrics: list[dict[str, Any]]) -> dict[str, Any]:
        task_ids = sorted({g.task_id for g in self.good})
        env_ids = sorted({t.env_id for t in self.tasks if t.task_id in set(task_ids)})
        return _checkpoint_row(self.ckpt_id, "sft", self.root, self.parent, self.run_dir,
                               self.cfg, metrics, task_ids, env_ids,
                               _snapshots_of(env_ids, self.envs),
                               [s.rollout_id for s in self.seqs])


def plan_sft(settings: Settings, job: SftJob, run_id: str,
             say: Callable[[str], None] | None = None) -> SftPlan:
    """Resolve ``job``: make (or read back) its data, keep what it trains on, name the
    checkpoint. Raises ``FactoryError`` when nothing resolved is left to train on."""
    from codemill.train.data import from_trace, keep

    say = say or (lambda _m: None)
    home = Path(settings.home)
    base_dir, adapter, root, parent, cfg = _job_model(job, home)
    graded, tasks, envs = _sft_data(settings, job, base_dir, run_id, say)
    good = [g for g in graded if g.trace is not None and g.reward is not None and g.reward >= 1]
    reversals = reversal_data(settings, tasks, envs, base_dir, job.reversals, job.train.seed,
                              job.listing_functions, say) if job.reversals else []
    seqs, left_out = keep([from_trace(g.trace, rollout_id=g.rollout_id) for g in good
                           if g.trace is not None]
                          + [from_trace(trace, rollout_id=rid) for rid, trace in reversals],
                          cfg.max_len)
    if not seqs:
        raise FactoryError(f"no resolved trajectories to train on ({len(graded)} read, "
                           f"{len(good)} resolved, {left_out} longer than max_len)")
    # the checkpoint is named by the set of its sequences, so they are trained in an order
    # that set alone decides: the ledger returns rows in the order they were written, and
    # two homes holding the same data would otherwise train two models under one id
    seqs = sorted(seqs, key=lambda s: s.rollout_id)
    ckpt_id = content_id("checkpoint", "sft", TRAINER_VERSION, job.model, root, cfg,
                         [s.rollout_id for s in seqs])
    # every trajectory read is counted: resolved, scored below 1, masked or ungraded
    data = {"trajectories": len(graded), "resolved": len(good), "sequences": len(seqs),
            "left_out": left_out, "tokens": sum(len(s.ids) for s in seqs),
            "reversals": len(reversals),
            "masked": sum(1 for g in graded if g.status == "masked"),
            "ungraded": sum(1 for g in graded if g.status == "ungraded")}
    return SftPlan(ckpt_id, home / "checkpoints" / ckpt_id, cfg, base_dir, adapter, root,
                   parent, seqs, good, tasks, envs, data)


def run_sft(settings: Settings, job: SftJob, run_id: str, on_step: StepFn | None,
            say: Callable[[str], None] | None) -> tuple[TrainResult, dict[str, Any]]:
    """Train (or find finished on disk) the SFT checkpoint of ``job``; returns it and its
    ``checkpoints`` row. Called by the ``checkpoints`` asset, which records the row. A
    checkpoint trained elsewhere from ``prepare_sft``'s output and copied into
    ``<home>/checkpoints/`` is found finished, like one this machine trained."""
    from codemill.agent.models.sampler import tokenizer_hash
    from codemill.train.policy import load_policy, resume, save_checkpoint, state_saver
    from codemill.train.sft import train_steps

    say = say or (lambda _m: None)
    plan = plan_sft(settings, job, run_id, say)
    hashes = {g.trace.tokenizer_hash for g in plan.good if g.trace is not None} - {""}

    def result(metrics: list[dict[str, Any]], cached: bool) -> tuple[TrainResult,
                                                                     dict[str, Any]]:
        return (TrainResult(plan.ckpt_id, plan.run_dir, "sft", cached, metrics, plan.data),
                plan.row(metrics))

    if (plan.run_dir / "manifest.json").is_file():  # finished before its row was recorded
        return result(_stored_metrics(plan.run_dir), True)
    policy = load_policy(plan.base_dir, plan.cfg, adapter_dir=plan.adapter)
    if hashes and hashes != {tokenizer_hash(policy.tokenizer)}:
        raise FactoryError("the trajectories were tokenized by another tokenizer than "
                           f"{job.model}'s")
    if resume(policy, plan.run_dir):
        say(f"resumed {plan.ckpt_id[:12]} after step {policy.step}")
    with tensorboard_scalars(logdir(Path(settings.home), plan.ckpt_id), "sft") as log:
        train_steps(policy, plan.seqs, save=state_saver(plan.cfg, plan.run_dir),
                    on_step=_both(on_step, log))
    save_checkpoint(policy, plan.run_dir, plan.manifest(policy.step))
    return result(policy.metrics, False)


def prepare_sft(settings: Settings, job: SftJob, out: Path,
                say: Callable[[str], None] | None = None) -> SftPlan:
    """Resolve ``job`` as a recorded run (``train sft --prepare``: its data made and
    graded here) and write what a trainer elsewhere needs into ``out``
    (``codemill.train.remote``): train there, copy its checkpoint directory into
    ``<home>/checkpoints/``, and the same job run here records it without training."""
    from codemill.factory.record import recorded_run
    from codemill.train.remote import write_prepared

    if _job_model(job, Path(settings.home))[1] is not None:
        raise FactoryError("--prepare trains from a full model (smollm2, transformers:DIR "
                           "or a full checkpoint), not from a LoRA checkpoint")
    with recorded_run(settings, "train sft --prepare", {"job": job_key(job)}) as rec:
        plan = plan_sft(settings, job, rec.run_id, say)
        write_prepared(out, plan.ckpt_id, plan.cfg, plan.manifest(0), plan.seqs)
        rec.summary.update(checkpoint_id=plan.ckpt_id, out=str(out), **plan.data)
    return plan


def _both(on_step: StepFn | None, log: StepFn) -> StepFn:
    """The caller's step callback, after the TensorBoard log of the step."""
    def both(metrics: dict[str, Any]) -> None:
        log(metrics)
        if on_step is not None:
            on_step(metrics)
    return both


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


def recorded_pass_rates(settings: Settings, specs: Sequence[str],
                        task_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(passes, scored tries) per task of the policies named ``specs`` (a spec itself or
    ``spec|settings``, as ``sample_policy`` names them), from the ledger's rewards under
    today's harness: what GRPO knows of a task before its first round."""
    from codemill.store.reader import LedgerReader

    wanted = set(task_ids)
    out: dict[str, tuple[int, int]] = {}
    with LedgerReader.open(settings) as reader:
        rows = reader.read("rewards").to_pylist()
    for r in rows:
        policy = r["policy"] or ""
        if (r["task_id"] not in wanted or r["masked"] or r["harness_version"] != HARNESS_VERSION
                or not any(policy == s or policy.startswith(f"{s}|") for s in specs)):
            continue
        p, n = out.get(r["task_id"], (0, 0))
        out[r["task_id"]] = (p + int((r["value"] or 0.0) >= 1), n + 1)
    return out


def _round_sampler(settings: Settings, job: GrpoJob, policy: Any, prefix: str,
                   by_id: dict[str, TaskSpec], envs: dict[str, EnvSpec], run_id: str,
                   say: Callable[[str], None]) -> Any:
    """The sampler ``codemill.train.grpo.train_rounds`` calls: G rollouts per task with the
    policy's current weights, through ``codemill.rollouts`` (the agent users run), recorded
    and graded; samples a killed run recorded under the same draw name are read back, not
    rerun. Every planned attempt is a sample or counted as failed."""
    from codemill.agent.config import AgentConfig
    from codemill.agent.models.local import TransformersBackend
    from codemill.rollouts.plan import RolloutConfig
    from codemill.rollouts.runner import RolloutResult, stream_rollouts
    from codemill.train.grpo import Drawn, Sample

    cfg = policy.config

    def sample(task_ids: Sequence[str], draw: str) -> Drawn:
        # ';' ends the name, so draw 1.1's prefix does not also match 1.10's rollouts
        name = f"{prefix}{draw};"
        sampling = SamplingConfig(temperature=cfg.temperature, top_p=1.0, top_k=0,
                                  max_tokens=cfg.max_new_tokens,
                                  seed=int(content_id("grpo-draw", cfg.seed, draw)[:8], 16))
        agent = AgentConfig(max_turns=cfg.max_turns,
                            max_tokens=cfg.max_turns * cfg.max_new_tokens,
                            observation_limit=job.observation_limit, sampling=sampling)
        backend = TransformersBackend.from_objects(policy.model, policy.tokenizer, name=name,
                                                   device=policy.device)
        recorded = [g.rollout_id for g in read_graded(settings, policy_prefix=name)]
        policy.model.eval()
        batch, stream = stream_rollouts(
            [by_id[t] for t in task_ids], envs=envs, home=Path(settings.home),
            settings=settings, model=backend, policy=name,
            config=RolloutConfig(group_size=cfg.group_size, sampling=sampling,
                                 mode=job.mode, answer_format=job.answer_format,
                                 listing_functions=job.listing_functions),
            agent=agent, existing=recorded,
            on_context=lambda d, n: say(f"draw {draw}: patch context {d}/{n}"))
        new = []
        try:
            for done, res in enumerate(stream, 1):
                if isinstance(res, RolloutResult):
                    new.append(res)
                else:
                    say(f"draw {draw}: rollout {res[0].rollout_id[:12]} failed in its "
                        f"worker: {res[1]}")
                say(f"draw {draw}: rollout {done}/{batch.planned}")
        finally:  # stop the sampler's thread; the weights it served are the policy's own
            backend.close()
        persist_rollouts(settings, run_id, "grpo_rollouts", new)
        samples = [Sample(g.rollout_id, g.task_id, g.group_id, g.trace, g.reward,
                          g.stop_reason, g.status)
                   for g in read_graded(settings, policy_prefix=name)]
        # A planned attempt with no recorded trace (its worker failed, or it left no
        # token row) is counted here; nothing leaves a round without a count.
        failed = len(task_ids) * cfg.group_size - len(samples)
        return Drawn(samples, failed, _timing(new))

    return sample


def train_grpo(settings: Settings, job: GrpoJob, *, on_step: StepFn | None = None,
               say: Callable[[str], None] | None = None) -> TrainResult:
    """On-policy GRPO rounds (module docstring; the loop is
    ``codemill.train.grpo.train_rounds``); returns the checkpoint. Like ``train_sft``, a
    materialization of the ``checkpoints`` asset (a ``train grpo`` run)."""
    from codemill.factory.checkpoints import train_checkpoint

    return train_checkpoint(settings, "grpo", job, on_step=on_step, say=say)


def run_grpo(settings: Settings, job: GrpoJob, run_id: str, on_step: StepFn | None,
             say: Callable[[str], None] | None) -> tuple[TrainResult, dict[str, Any]]:
    """Train (or find finished on disk) the GRPO checkpoint of ``job``; returns it and its
    ``checkpoints`` row (recorded by the ``checkpoints`` asset)."""
    from codemill.train.grpo import train_rounds
    from codemill.train.policy import load_policy, resume, save_checkpoint, state_saver

    say = say or (lambda _m: None)
    home = Path(settings.home)
    base_dir, adapter, root, parent, cfg = _job_model(job, home)
    tasks, envs = ledger_tasks(settings, job.tasks)
    if not tasks:
        raise FactoryError("no validated tasks with a usable environment in the ledger")
    by_id = {t.task_id: t for t in tasks}
    ckpt_id = content_id("checkpoint", "grpo", TRAINER_VERSION, ROUNDS_VERSION, job.model,
                         root, cfg, sorted(by_id), job.observation_limit, job.mode,
                         job.answer_format, *listing_key(job.listing_functions))
    run_dir = home / "checkpoints" / ckpt_id
    prefix = f"grpo:{ckpt_id[:16]}@"

    def result(metrics: list[dict[str, Any]], cached: bool) -> tuple[TrainResult,
                                                                     dict[str, Any]]:
        used = read_graded(settings, policy_prefix=prefix)
        task_ids = sorted({g.task_id for g in used})
        env_ids = sorted({by_id[t].env_id for t in task_ids if t in by_id})
        row = _checkpoint_row(ckpt_id, "grpo", root, parent, run_dir, cfg, metrics, task_ids,
                              env_ids, _snapshots_of(env_ids, envs),
                              [g.rollout_id for g in used])
        return TrainResult(ckpt_id, run_dir, "grpo", cached, metrics), row

    if (run_dir / "manifest.json").is_file():  # finished before its row was recorded
        return result(_stored_metrics(run_dir), True)
    policy = load_policy(base_dir, cfg, adapter_dir=adapter)
    if resume(policy, run_dir):
        say(f"resumed {ckpt_id[:12]} after round {policy.step}")
    specs = [job.model] + ([f"ckpt:{parent}"] if parent else [])
    prior = recorded_pass_rates(settings, specs, sorted(by_id))

    with tensorboard_scalars(logdir(home, ckpt_id), "grpo") as log:
        train_rounds(policy, sorted(by_id),
                     _round_sampler(settings, job, policy, prefix, by_id, envs, run_id, say),
                     prior=prior, save=state_saver(cfg, run_dir), on_round=_both(on_step, log))
    save_checkpoint(policy, run_dir, _manifest(ckpt_id, "grpo", root, parent, cfg, policy.step))
    return result(policy.metrics, False)


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
