"""``codemill solve``: run the agent on your own repository, in a sandboxed copy."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from codemill.cli.app import State, console, err_console, handle_errors, print_json
from codemill.cli.checks import check_counts, check_model


def solve_cmd(
    task: str = typer.Argument(..., help="What to do, in words (an issue, a feature)."),
    repo: Path = typer.Option(Path("."), "--repo", "-r", help="The repository to work on."),
    model: str = typer.Option("smollm2", "--model", "-m",
                              help="openai:MODEL@URL, transformers:PATH, scripted:NAME "
                                   "or smollm2 (embedded default)."),
    max_turns: int = typer.Option(30, "--max-turns", help="Model calls at most."),
    python: str | None = typer.Option(None, "--python", help="Interpreter version."),
    mode: Literal["agent", "patch"] = typer.Option(
        "agent", "--mode", help="agent: the multi-turn agent; patch: one answer from "
        "the failing tests' output and the code they run."),
    apply: bool = typer.Option(False, "--apply",
                               help="Apply the diff to your working tree (off by default)."),
    as_json: bool = typer.Option(False, "--json", help="Machine output."),
) -> None:
    """Let the agent work on TASK in a sandboxed copy of --repo and print its diff.

    Your files are never touched unless you pass --apply.
    """
    with handle_errors():
        from codemill.core.errors import SourceError
        from codemill.factory.solve import apply_diff, solve

        path = repo.resolve()
        if not path.is_dir():
            raise SourceError(f"{repo}: not a directory")
        settings = State.settings()
        check_counts(max_turns=(max_turns, 1))
        check_model(model, settings.home)
        with err_console.status("[bold]solve[/]: preparing") as status:
            def say(message: str) -> None:
                status.update(f"[bold]solve[/]: {message}")
            result = solve(str(path), task, settings, model=model, max_turns=max_turns,
                           python=python, progress=say, mode=mode)
        traj = result.trajectory
        if apply:
            apply_diff(path, result.diff)
        if as_json:
            print_json({"run_id": result.run_id, "env_id": result.env.env_id,
                        "rollout_id": traj.rollout_id, "stop_reason": traj.stop_reason.value,
                        "mode": mode,
                        "turns": len(traj.steps), "error": traj.error, "diff": result.diff,
                        "applied": apply})
            return
        err_console.print(f"stopped: {traj.stop_reason.value} after {len(traj.steps)} turns"
                          f" ({traj.wall_seconds:.1f}s)" + (f"; {traj.error}" if traj.error
                                                           else ""), highlight=False)
        if result.diff.strip():
            console.print(result.diff, highlight=False, markup=False, end="")
            if apply:
                err_console.print(f"applied to {path}")
        else:
            err_console.print("the agent made no change")


def register(app: typer.Typer) -> None:
    app.command("solve")(solve_cmd)
