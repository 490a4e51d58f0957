"""The demo: a model made better on a project it never trained on, in patch mode, on 2 cores.

    result = run_demo(settings, DemoConfig(projects=Path("examples/projects")), say=print)
    result.base, result.trained        # pass@1 with Wilson intervals on the held-out tasks

What it does, each step a cached asset or a recorded job (a rerun costs seconds):

1. **Data.** Each project folder is taken in and built, and bug tasks are synthesized and
   validated in it (``run_pipeline`` up to ``tasks``). One project (``held_out``) is kept
   apart: nothing of it is trained on.
2. **Base.** The suite ``demo-held-out`` (every task of the held-out project, patch mode,
   one greedy attempt) is evaluated with the base model.
3. **SFT.** A LoRA adapter is trained on the expert answers of the other projects' tasks
   (the gold patch written as line edits of the listing the prompt shows; only answers the
   grader rewards 1 are trained on: ``train_sft`` in patch mode) and on mutation reversals
   of those projects' code (``codemill.tasks.reversal``).
4. **Trained.** The checkpoint is evaluated on the same suite, with the same seeds; the
   paired difference is tested with the exact McNemar test.

Scope: the projects shipped for the demo (``examples/projects``) are small libraries written
for it, so that a 135M model can learn something in minutes; the same steps on real PyPI
projects are ``bench/bench_learn.py``. Nothing here is specific to those projects: any
folder of project folders works, and the held-out one is named, not guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codemill.core.config import Settings
from codemill.core.errors import ConfigError
from codemill.evals.stats import Rate

SUITE = "demo-held-out"


class DemoConfig(BaseModel):
    """What ``codemill demo`` runs; every field has the demo's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    projects: Path
    """A folder of project folders (each a Python project with its tests)."""
    held_out: str = "moneykit"
    """The project never trained on: its tasks are the evaluation."""
    model: str = "smollm2"
    """The base model."""
    tasks_per_project: int = Field(16, ge=1)
    """Bug tasks synthesized and validated per project."""
    sft_steps: int = Field(30, ge=1)
    """LoRA SFT steps of ``sft_batch`` expert answers each."""
    sft_batch: int = Field(8, ge=1)
    sft_reversals: int = Field(200, ge=0)
    """Mutation reversals of the training projects' code trained on besides the expert
    answers (``SftJob.reversals``): the same steps see more kinds of fixes instead of the
    same answers again."""
    sft_lr: float = 1e-3
    max_tokens: int = Field(64, ge=1)
    """Tokens of the one answer per attempt (an expert answer here is a line or two; the
    base model's rambling is cut short, which changes no grade: greedy decoding gives the
    same first tokens under any budget)."""


@dataclass
class DemoResult:
    projects: dict[str, dict[str, Any]]
    """Project name -> {env_id, status, why, tasks, seconds}."""
    train_tasks: int
    held_out_tasks: int
    checkpoint_id: str
    sft: dict[str, Any]
    """The SFT job's data counts and first/last loss."""
    base: Rate
    trained: Rate
    only_base: int
    only_trained: int
    p_value: float
    """Exact McNemar p of the paired difference (trained vs base, same tasks, same seeds;
    ``codemill.evals.compare``, as ``eval compare`` reports it)."""
    suite: str
    seconds: dict[str, float]


def project_dirs(root: Path) -> list[Path]:
    """The project folders of ``root`` the demo takes in (those with a ``pyproject.toml``
    or a ``setup.py``), sorted; ``ConfigError`` when ``root`` is no folder or holds fewer
    than two."""
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder of projects")
    dirs = sorted(p for p in root.iterdir()
                  if p.is_dir() and ((p / "pyproject.toml").is_file()
                                     or (p / "setup.py").is_file()))
    if len(dirs) < 2:
        raise ConfigError(f"{root}: needs at least two project folders (one held out), "
                          f"found {len(dirs)}")
    return dirs


def _data(settings: Settings, cfg: DemoConfig, say: Callable[[str], None]
          ) -> dict[str, dict[str, Any]]:
    """Environment and validated tasks of every project folder, as a fleet run (the
    projects are built side by side on the executor); a folder that does not build is
    reported with its reason."""
    from codemill.factory.fleet import run_fleet
    from codemill.factory.pipeline import RunConfig
    from codemill.factory.train_data import ledger_tasks

    folders = project_dirs(cfg.projects)
    run = RunConfig(source="-", synth_tasks=cfg.tasks_per_project, feature_tasks=0,
                    validation_runs=2)

    def progress(p: Any) -> None:
        stages = ", ".join(f"{name} {n.get('done', 0)}/{p.total}"
                           for name, n in p.stages.items())
        say(f"data for {p.total} projects: {stages}")

    fleet = run_fleet([str(f) for f in folders], run, settings, on_progress=progress)
    tasks, _ = ledger_tasks(settings)
    out: dict[str, dict[str, Any]] = {}
    for folder, cost in zip(folders, fleet.costs, strict=True):
        out[folder.name] = {
            "env_id": cost.env_id, "status": cost.env_status or cost.status,
            "why": cost.failure, "seconds": round(cost.wall_seconds, 1),
            "tasks": [t.task_id for t in tasks if cost.env_id and t.env_id == cost.env_id]}
    return out


def run_demo(settings: Settings, cfg: DemoConfig, *, say: Callable[[str], None] = print
             ) -> DemoResult:
    """Data, base eval, SFT, trained eval (module docstring); raises ``ConfigError`` when
    the held-out project is missing or a project needed has no tasks."""
    import time

    from codemill.evals.compare import compare
    from codemill.evals.suites import SuiteRunConfig, SuiteSelection
    from codemill.factory import eval_api
    from codemill.factory.training import SftJob, train_sft
    from codemill.train.config import LORA_ATTENTION_AND_MLP, TrainConfig

    found = [p.name for p in project_dirs(cfg.projects)]
    if cfg.held_out not in found:
        raise ConfigError(f"held-out project {cfg.held_out!r} is not in {cfg.projects} "
                          f"(found: {', '.join(found)})")
    seconds: dict[str, float] = {}
    clock = time.monotonic()
    projects = _data(settings, cfg, say)
    seconds["data"] = round(time.monotonic() - clock, 1)
    held = projects[cfg.held_out]["tasks"]
    train = [t for name, row in projects.items() if name != cfg.held_out for t in row["tasks"]]
    if not held or not train:
        raise ConfigError("no validated tasks "
                          + ("in the held-out project" if not held else "to train on")
                          + ": " + "; ".join(f"{n}: {r['status']}"
                                             + (f" ({r['why']})" if r.get("why") else "")
                                             for n, r in projects.items()))

    run = SuiteRunConfig(mode="patch", k=1, max_turns=1, max_tokens=cfg.max_tokens,
                         temperature=0.0, seed=0, wall_time_s=300)
    # selected by the held-out environment's id, not by name: a folder's name need not be
    # the name its project metadata gives the snapshot (and another folder of projects
    # gets a suite version of its own)
    held_env = str(projects[cfg.held_out]["env_id"])
    version = f"patch-{cfg.max_tokens}-{held_env[:12]}"
    eval_api.define_suite(settings, SUITE, version, SuiteSelection(env_ids=(held_env,)),
                          run, description=f"every task of {cfg.held_out} (never trained "
                          "on by the demo), patch mode, one greedy attempt")
    ref = f"{SUITE}@{version}"

    def evaluate(model: str, label: str) -> Any:
        clock = time.monotonic()
        res = eval_api.evaluate(settings, ref, model, progress=lambda _a, done, total: say(
            f"{label} on held-out {cfg.held_out}: {done}/{total or '?'}"))
        seconds[label] = round(time.monotonic() - clock, 1)
        return res

    base = evaluate(cfg.model, "base")
    say(f"SFT on {len(train)} tasks of {len(projects) - 1} projects")
    clock = time.monotonic()
    job = SftJob(model=cfg.model, data="expert", mode="patch", tasks=tuple(train),
                 reversals=cfg.sft_reversals,
                 train=TrainConfig(steps=cfg.sft_steps, batch_size=cfg.sft_batch,
                                   lr=cfg.sft_lr, lora=True, lora_layers=8,
                                   lora_targets=LORA_ATTENTION_AND_MLP, precision="bf16",
                                   save_every=10, max_len=2048))
    sft = train_sft(settings, job, on_step=lambda m: say(
        f"SFT step {m['step']}/{cfg.sft_steps} loss {m['loss']:.3f}"))
    seconds["sft"] = round(time.monotonic() - clock, 1)
    trained = evaluate(f"ckpt:{sft.checkpoint_id}", "trained")

    paired = compare(base.variant, base.samples, trained.variant, trained.samples)
    losses = [m["loss"] for m in sft.metrics if m.get("loss") is not None]
    return DemoResult(
        projects={n: {k: v for k, v in r.items() if k != "tasks"} | {"tasks": len(r["tasks"])}
                  for n, r in projects.items()},
        train_tasks=len(train), held_out_tasks=len(held), checkpoint_id=sft.checkpoint_id,
        sft={**sft.data, "loss_first": losses[0] if losses else None,
             "loss_last": losses[-1] if losses else None, "cached": sft.cached},
        base=base.score.pass1, trained=trained.score.pass1, only_base=paired.only_a,
        only_trained=paired.only_b, p_value=paired.p_value,
        suite=ref, seconds=seconds)
