"""``codemill train sft|grpo|export``: parse, call ``codemill.factory.training``, print.

Each step prints one line as it finishes, and a table at the end (loss, reward mean,
resolved rate, dead groups, tokens/s, seconds). The factory records the checkpoint; the
command writes nothing itself. A rerun of the same command resumes a killed run or, when it
finished, reports the cached checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer
from rich.table import Table

from codemill.cli.app import State, console, err_console, handle_errors, print_json
from codemill.core.errors import ConfigError

app = typer.Typer(help="Train policies: SFT on resolved trajectories, GRPO from execution "
                  "rewards; checkpoints are recorded with their lineage.",
                  no_args_is_help=True)

COLUMNS = ("step", "loss", "reward", "resolved", "dead", "tok/s", "s")


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _cells(m: dict[str, Any]) -> list[str]:
    dead = f"{m['dead_groups']}/{m['groups']}" if "groups" in m else "-"
    seconds = m.get("round_seconds", m.get("seconds"))
    return [str(m["step"]), _fmt(m.get("loss"), ".4f"), _fmt(m.get("reward_mean")),
            _fmt(m.get("resolved_rate")), dead, _fmt(m.get("tokens_per_s"), ".0f"),
            _fmt(seconds, ".1f")]


def _on_step(m: dict[str, Any]) -> None:
    console.print("  ".join(f"{c}={v}" for c, v in zip(COLUMNS, _cells(m), strict=True)),
                  highlight=False)


def _report(result: Any, as_json: bool, suites: list[str] | None = None) -> None:
    if as_json:
        evals = _evaluate(result.checkpoint_id, suites or [], True)
        print_json({"checkpoint_id": result.checkpoint_id, "path": str(result.path),
                    "kind": result.kind, "cached": result.cached, "data": result.data,
                    "metrics": result.metrics, "evals": evals})
        return
    table = Table(title=f"{result.kind} checkpoint {result.checkpoint_id[:12]}"
                  + (" (cached)" if result.cached else ""), title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for m in result.metrics:
        table.add_row(*_cells(m))
    console.print(table)
    if result.data:
        console.print("data: " + ", ".join(f"{k} {v}" for k, v in result.data.items()),
                      highlight=False)
    console.print(f"use it: [bold]--model ckpt:{result.checkpoint_id[:12]}[/]  "
                  f"({result.path})", highlight=False)
    _evaluate(result.checkpoint_id, suites or [], False)


def _evaluate(checkpoint_id: str, suites: list[str], as_json: bool) -> list[dict[str, Any]]:
    """Evaluate the new checkpoint on each suite (a cache hit when done before). A suite
    the contamination guard refuses (it shares tasks or projects with the training data)
    is reported with the reason, not run; training already succeeded either way."""
    from codemill.core.errors import CodemillError
    from codemill.factory.eval_api import evaluate

    out: list[dict[str, Any]] = []
    for suite in suites:
        if not as_json:
            err_console.print(f"evaluating ckpt:{checkpoint_id[:12]} on {suite}",
                              highlight=False)
        try:
            res = evaluate(State.settings(), suite, f"ckpt:{checkpoint_id}")
        except CodemillError as exc:
            out.append({"suite": suite, "not_evaluated": str(exc)})
            if not as_json:
                err_console.print(f"[yellow]not evaluated on {suite}:[/] {exc}",
                                  highlight=False)
            continue
        p = res.score.pass1
        out.append({"suite": suite, "eval_id": res.eval_id, "status": res.status,
                    "pass1": {"value": p.value, "low": p.low, "high": p.high,
                              "successes": p.successes, "n": p.n}})
        if not as_json:
            console.print(f"eval {suite} ({res.status}): pass@1 {p}", highlight=False)
    return out


def _check_suites(suites: list[str]) -> None:
    """Unknown suites fail before any training (one line, exit 1)."""
    from codemill.factory.eval_api import get_suite

    for suite in suites:
        get_suite(State.settings(), suite)


MODE_HELP = ("agent: multi-turn rollouts with tools; patch: one answer per rollout (an edit "
             "of the code the failing tests run).")


LISTING_HELP = ("Patch mode: functions the listing shows at most, the most suspicious "
                "first (default 4).")


def _mode(job_type: Any, mode: str, listing_functions: int | None = None) -> dict[str, Any]:
    """The job's ``mode`` arguments: none for agent mode (every job's default); patch mode
    only where the job takes a mode (its rollouts are ``RolloutConfig(mode="patch")``),
    with ``--listing-functions`` when given (patch mode only)."""
    if mode == "agent":
        if listing_functions is not None:
            raise ConfigError("--listing-functions: only with --mode patch")
        return {}
    if "mode" not in job_type.model_fields:
        raise ConfigError(f"--mode {mode}: {job_type.__name__} does not take a mode yet")
    listing = {} if listing_functions is None else {"listing_functions": listing_functions}
    return {"mode": mode, **listing}


def _lora_targets(mlp: bool) -> tuple[str, ...]:
    from codemill.train.config import LORA_ATTENTION, LORA_ATTENTION_AND_MLP

    return LORA_ATTENTION_AND_MLP if mlp else LORA_ATTENTION


def _train_config(**kw: Any) -> Any:
    """A ``TrainConfig`` from the options given; a bad value is one line naming it."""
    from pydantic import ValidationError

    from codemill.train.config import TrainConfig

    try:
        return TrainConfig(**{k: v for k, v in kw.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{field}={first.get('input')!r}: {first['msg']}") from None


@app.command("sft")
def sft_cmd(
    model: str = typer.Option("smollm2", "--model", "-m", help="Base: smollm2, "
                              "transformers:DIR or ckpt:ID."),
    data: str = typer.Option("expert", "--data", help="expert (gold patches acted out), "
                             "rollouts (resolved recorded rollouts) or parquet."),
    data_path: str | None = typer.Option(None, "--data-path", help="Parquet export file."),
    teacher: str | None = typer.Option(None, "--teacher", help="With --data expert: "
                                       "rejection-sample this model instead of scripts."),
    tasks: list[str] = typer.Option([], "--task", help="Task id prefix (repeatable)."),
    per_task: int = typer.Option(2, "--per-task", help="Expert runs per task."),
    steps: int = typer.Option(20, "--steps", help="Optimizer steps."),
    batch: int = typer.Option(4, "--batch", help="Sequences per step."),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter (peft)."),
    lora_mlp: bool = typer.Option(False, "--lora-mlp", help="With --lora: adapt the MLP "
                                  "projections too, not only attention."),
    lora_layers: int | None = typer.Option(None, "--lora-layers",
                                           help="Adapt only the last N layers."),
    max_len: int = typer.Option(2048, "--max-len", help="Longer sequences are left out."),
    save_every: int = typer.Option(1, "--save-every", help="Steps between resumable states."),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 (bfloat16 "
                                  "autocast of the forward pass; fp32 weights)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    eval_suites: list[str] = typer.Option([], "--eval", help="Then evaluate the checkpoint "
                                          "on this suite (NAME@VERSION; repeatable)."),
    mode: Literal["agent", "patch"] = typer.Option("agent", "--mode", help=MODE_HELP),
    listing_functions: int | None = typer.Option(None, "--listing-functions", min=1,
                                                 help=LISTING_HELP),
    reversals: int = typer.Option(0, "--reversals", min=0, help="Patch mode: also train on "
                                  "about this many mutation reversals from the tasks' "
                                  "projects (their released lines as answers)."),
    prepare: Path | None = typer.Option(
        None, "--prepare", help="Make the data and name the checkpoint, then write what a "
        "machine without the ledger needs to train it into this folder (python -m "
        "codemill.train.remote); copy the result into HOME/checkpoints/ and run the same "
        "command without --prepare to record it."),
    as_json: bool = typer.Option(False, "--json", help="Machine output."),
) -> None:
    """Supervised fine-tuning: masked next-token loss on the model's own tokens of
    resolved trajectories."""
    with handle_errors():
        from codemill.factory.training import SftJob, train_sft

        if data not in ("expert", "rollouts", "parquet"):
            raise ConfigError("--data must be expert, rollouts or parquet")
        if data == "parquet" and (not data_path or not Path(data_path).is_file()):
            raise ConfigError(f"--data-path {data_path!r}: no such Parquet file")
        cfg = _train_config(steps=steps, batch_size=batch, lr=lr, lora=lora, max_len=max_len,
                            lora_layers=lora_layers, lora_targets=_lora_targets(lora_mlp),
                            seed=seed, threads=threads, device=device, save_every=save_every,
                            precision=precision)
        _check_suites(eval_suites)
        if reversals and mode != "patch":
            raise ConfigError("--reversals: only with --mode patch")
        job = SftJob(model=model, data=data, data_path=data_path, teacher=teacher,  # type: ignore[arg-type]
                     tasks=tuple(tasks), per_task=per_task, train=cfg, reversals=reversals,
                     **_mode(SftJob, mode, listing_functions))
        say = (lambda m: err_console.print(m, highlight=False)) if not as_json else None
        if prepare is not None:
            _prepare(job, prepare, say, as_json)
            return
        result = train_sft(State.settings(), job, on_step=None if as_json else _on_step,
                           say=say)
        _report(result, as_json, eval_suites)


def _prepare(job: Any, out: Path, say: Any, as_json: bool) -> None:
    from codemill.factory.training import prepare_sft

    settings = State.settings()
    plan = prepare_sft(settings, job, out.absolute(), say)
    target = Path(settings.home).absolute() / "checkpoints"
    if as_json:
        print_json({"checkpoint_id": plan.ckpt_id, "prepared": str(out.absolute()),
                    "base_dir": str(plan.base_dir), "checkpoints_dir": str(target),
                    **plan.data})
        return
    console.print(f"prepared checkpoint {plan.ckpt_id[:12]}: {plan.data['sequences']} "
                  f"sequences, {plan.data['tokens']} tokens in {out}\n"
                  f"  there: python -m codemill.train.remote {out} --model {plan.base_dir}\n"
                  f"  then:  copy {out}/{plan.ckpt_id} into {target}/ and run this command "
                  "again without --prepare", highlight=False)


@app.command("grpo")
def grpo_cmd(
    model: str = typer.Option("smollm2", "--model", "-m", help="Policy to start from "
                              "(usually ckpt:ID of an SFT checkpoint)."),
    tasks: list[str] = typer.Option([], "--task", help="Task id prefix (repeatable)."),
    rounds: int = typer.Option(4, "--rounds", help="On-policy rounds (one update each)."),
    tasks_per_round: int = typer.Option(2, "--tasks-per-round", help="Groups with a "
                                        "signal per round (dynamic sampling refills)."),
    group: int = typer.Option(8, "--group", "-g", help="G: rollouts per task and round."),
    max_draws: int = typer.Option(3, "--max-draws", help="Draw at most this many times "
                                  "--tasks-per-round groups a round (1: no refill)."),
    updates: int = typer.Option(1, "--updates", help="Optimizer steps per round."),
    correction: str = typer.Option("tis", "--correction", help="Sampler/trainer mismatch: "
                                   "tis, mask_token, mask_sequence or none."),
    lr: float = typer.Option(1e-5, "--lr"),
    temperature: float = typer.Option(1.0, "--temperature"),
    max_new_tokens: int = typer.Option(128, "--max-tokens", help="Tokens per model call."),
    max_turns: int = typer.Option(6, "--max-turns"),
    baseline: str = typer.Option("mean", "--baseline", help="mean or loo."),
    format_reward: float | None = typer.Option(None, "--format-reward", help="Value of an "
                                               "unusable answer in its group's advantages "
                                               "(e.g. -0.5; the recorded reward stays 0)."),
    task_order: str = typer.Option("in_range_first", "--task-order", help="Tasks drawn "
                                   "first: in_range_first or untried_first."),
    lora: bool = typer.Option(False, "--lora"),
    max_len: int = typer.Option(4096, "--max-len"),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = typer.Option(None, "--threads"),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 (see train sft)."),
    device: str = typer.Option("auto", "--device"),
    eval_suites: list[str] = typer.Option([], "--eval", help="Then evaluate the checkpoint "
                                          "on this suite (NAME@VERSION; repeatable)."),
    mode: Literal["agent", "patch"] = typer.Option("agent", "--mode", help=MODE_HELP),
    listing_functions: int | None = typer.Option(None, "--listing-functions", min=1,
                                                 help=LISTING_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """GRPO from execution rewards: rollouts with the current weights, graded, clipped
    updates each round; groups with no signal are replaced from the pool (dynamic
    sampling), and every dropped group and unscored attempt is counted."""
    with handle_errors():
        from codemill.factory.training import GrpoJob, train_grpo

        if baseline not in ("mean", "loo"):
            raise ConfigError("--baseline must be mean or loo")
        cfg = _train_config(steps=rounds, batch_size=tasks_per_round, group_size=group, lr=lr,
                            max_draws=max_draws, updates=updates, correction=correction,
                            temperature=temperature, max_new_tokens=max_new_tokens,
                            max_turns=max_turns, baseline=baseline, lora=lora,
                            max_len=max_len, seed=seed, threads=threads, device=device,
                            precision=precision, format_reward=format_reward,
                            task_order=task_order)
        _check_suites(eval_suites)
        job = GrpoJob(model=model, tasks=tuple(tasks), train=cfg,
                      **_mode(GrpoJob, mode, listing_functions))
        say = (lambda m: err_console.print(m, highlight=False)) if not as_json else None
        result = train_grpo(State.settings(), job, on_step=None if as_json else _on_step,
                            say=say)
        _report(result, as_json, eval_suites)


@app.command("export")
def export_cmd(
    out: Path = typer.Argument(..., help="Parquet file to write."),
    policy: str | None = typer.Option(None, "--policy", help="Only this policy (prefix)."),
) -> None:
    """Token-exact trajectories with rewards to Parquet (columns map to TRL rollout_func,
    veRL agent-loop and SkyRL generator output; see codemill.train.export)."""
    with handle_errors():
        from codemill.factory.training import export_trajectories

        n = export_trajectories(State.settings(), out, policy)
        console.print(f"wrote {n} trajectories to {out}", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="train")
