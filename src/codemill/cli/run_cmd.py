"""``codemill run``: the main job on one source, or a fleet of them (``--sources``)."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from codemill.cli.app import State, console, err_console, handle_errors, print_json
from codemill.cli.checks import check_counts, check_model
from codemill.cli.envstatus import status_text

DIFF_FLAGS = frozenset({"patch_failed", "empty_patch", "binary_skipped"})
"""Reward flags that say the diff (or part of it) did not apply, not that it tried a hack
(``codemill.rewards.flags``); the summary shows them apart from the hack signals."""


def _run(source: str, model: str, group: int, synth: int, features: int, max_turns: int,
         max_tokens: int, python: str | None, as_json: bool, command: str,
         plan_only: bool = False, train: bool = False, train_steps: int = 12) -> None:
    from codemill.factory.pipeline import RunConfig
    from codemill.factory.run import plan_pipeline, resolve_source, run_pipeline, summarize

    settings = State.settings()
    check_counts(group=(group, 1), tasks=(synth, 0), features=(features, 0),
                 max_turns=(max_turns, 1), max_tokens=(max_tokens, 1),
                 train_steps=(train_steps, 1))
    check_model(model, settings.home)
    cfg = RunConfig(source=source, model=model, group_size=group, synth_tasks=synth,
                    feature_tasks=features, max_turns=max_turns, max_tokens=max_tokens,
                    python=python)
    with err_console.status(f"[bold]{command}[/]: resolving {source}") as status:
        snap = resolve_source(cfg, settings,
                              progress=lambda m: status.update(f"[bold]{command}[/]: {m}"))
    if plan_only:
        steps = plan_pipeline(cfg, settings, snapshot=snap).steps
        if as_json:
            print_json([s.to_json() for s in steps])
            return
        for step in steps:
            console.print(f"{step.asset:13} {step.action:7} {step.reason}", highlight=False)
        return
    started = time.monotonic()
    with err_console.status(f"[bold]{command}[/]: {source}") as status:
        def progress(asset: str, done: int, total: int | None) -> None:
            of = f"/{total}" if total else ""
            count = f" {done}{of}" if done or total else ""  # 0 of unknown: it starts
            status.update(f"[bold]{command}[/]: {asset}{count}")
        result = run_pipeline(cfg, settings, snapshot=snap, progress=progress,
                              command=command)
    summary = summarize(cfg, settings, result, snapshot=snap)
    trained = None
    if train and result.ok:
        from codemill.factory.training import train_after_run

        with err_console.status(f"[bold]{command}[/]: training") as status:
            trained = train_after_run(
                settings, cfg, snap.snapshot_id, steps=train_steps,
                say=lambda m: status.update(f"[bold]{command}[/]: {m}"),
                on_step=lambda m: status.update(
                    f"[bold]{command}[/]: SFT step {m['step']}/{train_steps} "
                    f"loss {m['loss']:.3f}"))
    if as_json:
        extra = {} if trained is None else {"training": _training_json(trained)}
        print_json({**summary.to_json(), "run_id": result.run_id,
                    "stages": result.to_json()["assets"], **extra})
    else:
        _print(summary, result, time.monotonic() - started)
        if trained is not None:
            _print_training(trained, time.monotonic() - started, source)
    if not result.ok:
        failed = ", ".join(f"{n}: {o.error}" for n, o in result.outcomes.items()
                           if o.status == "failed")
        err_console.print(f"[bold red]error:[/] stage failed: {failed}", highlight=False)
        raise typer.Exit(1)


def _print(summary, result, seconds: float) -> None:  # type: ignore[no-untyped-def]
    stages = Table(title="stages", title_justify="left")
    for col in ("stage", "status", "rows", "seconds", "why"):
        stages.add_column(col)
    for name, o in result.outcomes.items():
        stages.add_row(name, o.status, str(o.rows), f"{o.seconds:.1f}", o.reason or "")
    console.print(stages)
    table = Table(title=f"codemill run: {summary.source}", title_justify="left",
                  show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    status, _, why = summary.env_status.partition(": ")
    env = (f"{summary.env_id[:12]} ({status_text(status, summary.env_passing, summary.env_tests)}"
           f"{': ' + why if why else ''})" if summary.env_id else "none")
    table.add_row("environment", env)
    tasks = ", ".join(f"{k} {v}" for k, v in sorted(summary.tasks_by_kind.items())) or "none"
    table.add_row("tasks by source", f"{tasks}; weak {summary.weak_tasks}")
    table.add_row("policy", summary.policy)
    table.add_row("rollouts", str(summary.rollouts))
    table.add_row("resolved (95% CI)", str(summary.resolved))
    masked = ", ".join(f"{k} {v}" for k, v in summary.masked.items()) or "0"
    table.add_row("masked rewards", masked)
    diff = ", ".join(f"{k} {v}" for k, v in summary.flags.items() if k in DIFF_FLAGS)
    table.add_row("diffs not applied", diff or "none")
    hacks = ", ".join(f"{k} {v}" for k, v in summary.flags.items() if k not in DIFF_FLAGS)
    table.add_row("hack signals", hacks or "none")
    table.add_row("time", f"{seconds:.1f}s in all")
    table.add_row("ledger", summary.ledger)
    console.print(table)
    console.print("query it: [bold]codemill ledger query[/] \"select task_id, resolved, "
                  "flags from rewards\"", highlight=False)


def _training_json(t) -> dict:  # type: ignore[no-untyped-def]
    def rate(r):  # type: ignore[no-untyped-def]
        return {"rate": r.value, "low": r.low, "high": r.high, "successes": r.successes,
                "graded": r.n}

    return {"checkpoint_id": t.checkpoint.checkpoint_id, "cached": t.checkpoint.cached,
            "path": str(t.checkpoint.path), "data": t.checkpoint.data,
            "loss": [m["loss"] for m in t.checkpoint.metrics], "tasks": t.tasks,
            "base": rate(t.base), "trained": rate(t.trained), "same_tasks": t.same_tasks}


def _print_training(t, seconds: float, source: str) -> None:  # type: ignore[no-untyped-def]
    ck = t.checkpoint
    table = Table(title="training (SFT on expert trajectories of these tasks)",
                  title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    losses = [m["loss"] for m in ck.metrics]
    table.add_row("checkpoint", f"ckpt:{ck.checkpoint_id[:12]}"
                  + (" (cached)" if ck.cached else ""))
    table.add_row("data", ", ".join(f"{k} {v}" for k, v in ck.data.items()) or "-")
    if losses:
        table.add_row("loss", f"{losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses)} steps")
    table.add_row("resolved, base (95% CI)", str(t.base))
    table.add_row("resolved, trained (95% CI)", str(t.trained))
    table.add_row("note", "trained on these tasks' gold patches: shows the action format "
                  "is learned, not generalization (bench/bench_train.py holds projects out)")
    table.add_row("time", f"{seconds:.1f}s in all")
    console.print(table)
    console.print(f"reproduce: [bold]codemill run {source} --train[/]; use it: "
                  f"[bold]--model ckpt:{ck.checkpoint_id[:12]}[/]", highlight=False)


def run_cmd(
    source: str | None = typer.Argument(None, help="Local dir, git URL[@rev] or "
                                        "pypi:NAME[==VER]."),
    sources: str | None = typer.Option(None, "--sources", help="A fleet run: a file with "
                                       "one source a line (# comments), each built and "
                                       "tasked on the configured executor."),
    rollouts: bool = typer.Option(False, "--rollouts/--no-rollouts", help="With --sources: "
                                  "also roll the policy out and grade (off by default)."),
    model: str = typer.Option("smollm2", "--model", "-m", help="Policy backend spec."),
    group: int = typer.Option(2, "--group", "-g", help="Rollouts per task (GRPO group)."),
    synth: int = typer.Option(4, "--tasks", help="Synthesized bug tasks to validate."),
    features: int = typer.Option(1, "--features", help="Feature tasks to validate."),
    max_turns: int = typer.Option(8, "--max-turns", help="Model calls per rollout."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Tokens per model call."),
    python: str | None = typer.Option(None, "--python", help="Interpreter version."),
    plan_only: bool = typer.Option(False, "--plan",
                                   help="Only say which stages would run and why."),
    train: bool = typer.Option(False, "--train", help="Then SFT the policy on expert "
                               "trajectories of the tasks and roll the checkpoint out."),
    train_steps: int = typer.Option(12, "--train-steps", help="SFT steps with --train."),
    as_json: bool = typer.Option(False, "--json", help="Machine output."),
) -> None:
    """The main job: source -> environment -> tasks -> validation -> rollouts -> rewards,
    then a summary (and with --train, a checkpoint). With --sources FILE, environments and
    tasks for every source listed, then a cost table per repository. Every stage is cached:
    rerunning does only what is missing."""
    with handle_errors():
        if (source is None) == (sources is None):
            raise typer.BadParameter("give one SOURCE or --sources FILE")
        if sources is not None:
            _fleet(sources, model, group, synth, features, max_turns, max_tokens, python,
                   rollouts, as_json, plan_only, train)
            return
        assert source is not None
        _run(source, model, group, synth, features, max_turns, max_tokens, python, as_json,
             "run", plan_only, train, train_steps)


def _fleet(sources: str, model: str, group: int, synth: int, features: int, max_turns: int,
           max_tokens: int, python: str | None, rollouts: bool, as_json: bool,
           plan_only: bool, train: bool) -> None:
    from codemill.cli.fleet_cmd import run_fleet_cmd
    from codemill.factory.pipeline import RunConfig

    if plan_only or train:
        raise typer.BadParameter("--plan and --train take one SOURCE, not --sources")
    check_counts(group=(group, 1), tasks=(synth, 0), features=(features, 0),
                 max_turns=(max_turns, 1), max_tokens=(max_tokens, 1))
    if rollouts:
        check_model(model, State.settings().home)
    cfg = RunConfig(source="-", model=model, group_size=group, synth_tasks=synth,
                    feature_tasks=features, max_turns=max_turns, max_tokens=max_tokens,
                    python=python)
    run_fleet_cmd(sources, cfg, rollouts=rollouts, as_json=as_json)


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
