"""``codemill demo``: the factory makes a model better on a project it never trained on.

Builds the example projects, synthesizes and validates bug tasks in each, evaluates the
embedded model on every task of the held-out project (patch mode, one greedy attempt),
trains a LoRA adapter on expert answers of the other projects' tasks, evaluates it on the
same tasks, and ends with the line ``held-out: base X/N [lo, hi], trained Y/N [lo, hi]
(patch mode)`` (``codemill.factory.demo``)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from codemill.cli.app import State, console, err_console, handle_errors, print_json

EXAMPLES = Path("examples") / "projects"
"""Where the demo's projects are, from the working directory or the source checkout."""


def _default_projects() -> Path:
    here = Path.cwd() / EXAMPLES
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / EXAMPLES


def _rate(r) -> str:  # type: ignore[no-untyped-def]
    return f"{r.successes}/{r.n} [{r.low:.0%}, {r.high:.0%}]"


def demo_cmd(
    projects: Path = typer.Option(None, "--projects", help="A folder of project folders "
                                  "(default: the example projects, examples/projects)."),
    held_out: str = typer.Option("moneykit", "--held-out", help="The project never "
                                 "trained on; its tasks are the evaluation."),
    model: str = typer.Option("smollm2", "--model", "-m", help="Base model spec."),
    steps: int = typer.Option(30, "--steps", help="LoRA SFT steps."),
    tasks: int = typer.Option(16, "--tasks", help="Bug tasks to validate per project."),
    as_json: bool = typer.Option(False, "--json", help="Machine output."),
) -> None:
    """Learning on a held-out project, on 2 CPU cores: data, base eval, SFT, trained eval.
    Every step is cached: a rerun costs seconds."""
    with handle_errors():
        from codemill.cli.checks import check_counts, check_model
        from codemill.factory.demo import DemoConfig, run_demo

        settings = State.settings()
        check_counts(steps=(steps, 1), tasks=(tasks, 1))
        check_model(model, settings.home)
        cfg = DemoConfig(projects=projects or _default_projects(), held_out=held_out,
                         model=model, sft_steps=steps,
                         tasks_per_project=tasks)
        started = time.monotonic()
        with err_console.status("[bold]demo[/]: starting") as status:
            result = run_demo(settings, cfg,
                              say=lambda m: status.update(f"[bold]demo[/]: {m}"))
        seconds = time.monotonic() - started
        if as_json:
            print_json({"projects": result.projects, "train_tasks": result.train_tasks,
                        "held_out": cfg.held_out, "held_out_tasks": result.held_out_tasks,
                        "checkpoint_id": result.checkpoint_id, "sft": result.sft,
                        "suite": result.suite, "seconds": result.seconds,
                        **{k: {"successes": r.successes, "graded": r.n, "rate": r.value,
                               "low": r.low, "high": r.high}
                           for k, r in (("base", result.base), ("trained", result.trained))},
                        "only_base": result.only_base, "only_trained": result.only_trained,
                        "mcnemar_p": result.p_value})
            return
        table = Table(title="demo: projects", title_justify="left")
        for col in ("project", "role", "environment", "tasks", "seconds"):
            table.add_column(col)
        for name, row in result.projects.items():
            table.add_row(name, "held out" if name == cfg.held_out else "train",
                          str(row["status"]), str(row["tasks"]), f"{row['seconds']:.0f}")
        console.print(table)
        sft = result.sft
        answers = (sft.get("sequences") or 0) - (sft.get("reversals") or 0)
        console.print(
            f"SFT: ckpt:{result.checkpoint_id[:12]}"
            f"{' (cached)' if sft.get('cached') else ''} on {answers} graded expert "
            f"answers of {result.train_tasks} tasks and {sft.get('reversals') or 0} "
            "mutation reversals; loss "
            f"{sft.get('loss_first') or 0:.3f} -> {sft.get('loss_last') or 0:.3f}",
            highlight=False)
        console.print(f"paired on the same tasks: only base {result.only_base}, only "
                      f"trained {result.only_trained}, exact McNemar p = "
                      f"{result.p_value:.3f}; {seconds:.0f} s in all", highlight=False)
        console.print(f"task by task: [bold]codemill eval compare --suite {result.suite} "
                      f"{cfg.model} ckpt:{result.checkpoint_id[:12]}[/]", highlight=False)
        console.print(f"held-out: base {_rate(result.base)}, trained "
                      f"{_rate(result.trained)} (patch mode)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
