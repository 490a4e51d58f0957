"""The ``checkpoints`` asset: one training job (SFT or GRPO) as a recorded, cached
materialization downstream of the tasks and rewards it learns from.

``train_sft`` and ``train_grpo`` (``codemill.factory.training``) call ``train_checkpoint``,
which resolves what the job will read and materializes this asset with the config::

    {"kind": "sft" | "grpo", "job": <SftJob | GrpoJob as JSON>, "inputs": {...}}

``inputs`` names the content the job reads from the ledger, so the cache key changes when
it does: the resolved model (a ``ckpt:`` prefix becomes the full parent id), the version
of the prompt its rollouts and expert answers are made with (a new prompt is new data,
though the job and its tasks are the same), the content id
of the validated task ids the job selects and, for ``--data rollouts``, of the graded
rollouts it trains on (ids with their rewards); for ``--data parquet``, the file's sha256.
A repeat of the same job on the same inputs is a cache hit: nothing loads, and the
checkpoint recorded by the earlier materialization is returned (``cached=True``).

The run is a ``runs`` row (``train sft`` / ``train grpo``) with a ``materializations``
row, and the checkpoint's row goes to ``checkpoints`` tagged with the run, like every
asset's. The loop's per-step callback and messages cannot travel in a config, so
``train_checkpoint`` hands them to the asset function through a context variable (the
asset runs in the caller's thread); an exception the job raised is raised again to the
caller as it was, after the failed materialization is recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id
from codemill.factory.asset import AssetContext
from codemill.factory.graph import asset
from codemill.factory.training import (
    TRAINER_VERSION,
    GrpoJob,
    SftJob,
    StepFn,
    TrainResult,
    job_key,
    run_grpo,
    run_sft,
)

CHECKPOINTS = "checkpoints"
Kind = Literal["sft", "grpo"]


@dataclass
class _Hooks:
    """What the caller hands the asset function beside its config, and gets back."""

    on_step: StepFn | None = None
    say: Callable[[str], None] | None = None
    result: TrainResult | None = None
    error: BaseException | None = None


_HOOKS: ContextVar[_Hooks | None] = ContextVar("codemill_train_hooks", default=None)


@asset(CHECKPOINTS, code_version=TRAINER_VERSION, reads=("tasks", "rewards"), requested=True)
def checkpoints(ctx: AssetContext) -> Iterator[dict[str, Any]]:
    """Train one checkpoint (SFT or GRPO) from the job in the config."""
    cfg = dict(ctx.config)
    hooks = _HOOKS.get() or _Hooks()
    try:
        if cfg["kind"] == "sft":
            result, row = run_sft(ctx.settings, SftJob.model_validate(cfg["job"]), ctx.run_id,
                                  hooks.on_step, hooks.say)
        else:
            result, row = run_grpo(ctx.settings, GrpoJob.model_validate(cfg["job"]),
                                   ctx.run_id, hooks.on_step, hooks.say)
    except Exception as exc:  # recorded as the failed materialization, raised again after
        hooks.error = exc
        raise
    hooks.result = result
    yield {**row, "data": json.dumps(result.data)}


def train_checkpoint(settings: Settings, kind: Kind, job: SftJob | GrpoJob, *,
                     on_step: StepFn | None = None,
                     say: Callable[[str], None] | None = None) -> TrainResult:
    """Materialize the ``checkpoints`` asset for ``job`` (module docstring)."""
    from codemill.factory.graph import load_modules
    from codemill.factory.materialize import materialize

    load_modules()
    config = {"kind": kind, "job": job_key(job),
              "inputs": job_inputs(settings, job)}
    hooks = _Hooks(on_step, say)
    token = _HOOKS.set(hooks)
    try:
        result = materialize([CHECKPOINTS], {CHECKPOINTS: config}, settings,
                             command=f"train {kind}")
    finally:
        _HOOKS.reset(token)
    outcome = result.outcomes[CHECKPOINTS]
    if outcome.status == "failed":
        if hooks.error is not None:
            raise hooks.error
        raise FactoryError(f"train {kind}: {outcome.error}")
    if hooks.result is not None:
        return hooks.result
    return recorded_checkpoint(settings, result.plan.step(CHECKPOINTS).cache_key)


def job_inputs(settings: Settings, job: SftJob | GrpoJob) -> dict[str, Any]:
    """What ``job`` reads, as content ids (module docstring): part of its cache key."""
    from codemill.factory.train_data import ledger_tasks, read_graded
    from codemill.factory.training import _job_model
    from codemill.rollouts.plan import prompt_version

    _, _, root, parent, _ = _job_model(job, Path(settings.home))
    inputs: dict[str, Any] = {"root": root, "parent": parent}
    if isinstance(job, SftJob) and job.data == "parquet":
        if not job.data_path or not Path(job.data_path).is_file():
            raise FactoryError(f"--data parquet needs an existing file (--data-path "
                               f"{job.data_path or 'missing'})")
        inputs["parquet_sha256"] = hashlib.sha256(Path(job.data_path).read_bytes()).hexdigest()
        return inputs
    inputs["prompt"] = prompt_version(job.mode)
    tasks, _ = ledger_tasks(settings, job.tasks)
    task_ids = sorted(t.task_id for t in tasks)
    inputs.update(tasks=content_id("tasks", task_ids), n_tasks=len(task_ids))
    if isinstance(job, SftJob) and job.data == "rollouts":
        known = set(task_ids)
        graded = sorted((g.rollout_id, g.reward) for g in read_graded(settings)
                        if g.task_id in known)
        inputs.update(rollouts=content_id("rollouts", graded), n_rollouts=len(graded))
    return inputs


def recorded_checkpoint(settings: Settings, cache_key: str) -> TrainResult:
    """The checkpoint the successful materialization with ``cache_key`` recorded."""
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(settings) as reader:
        runs = {r["run_id"] for r in reader.read(
            "materializations", row_filter=f"cache_key == '{cache_key}'").to_pylist()
            if r["status"] == "success"}
        rows = [r for r in reader.read(CHECKPOINTS).to_pylist() if r["run_id"] in runs]
    if not rows:
        raise FactoryError(f"checkpoint of cache key {cache_key[:12]} is not recorded")
    row = max(rows, key=lambda r: str(r.get("created_at") or ""))
    return TrainResult(row["checkpoint_id"], Path(row["path"]), row["kind"], True,
                       json.loads(row["metrics"] or "[]"), json.loads(row.get("data") or "{}"))
