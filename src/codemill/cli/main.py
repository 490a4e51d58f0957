"""The ``codemill`` command: a root Typer app that mounts one sub-app per module.

Sub-command modules are listed in ``COMMAND_MODULES``; each exposes ``register(app)``.
"""

from __future__ import annotations

import importlib

import typer

from codemill import __version__
from codemill.cli.app import State

COMMAND_MODULES = (
    "codemill.cli.ledger_cmd",
    "codemill.cli.env_cmd",
    "codemill.cli.tasks_cmd",
    "codemill.cli.model_cmd",
    "codemill.cli.factory_cmd",
    "codemill.cli.grade_cmd",
    "codemill.cli.solve_cmd",
    "codemill.cli.run_cmd",
    "codemill.cli.demo_cmd",
    "codemill.cli.eval_cmd",
    "codemill.cli.report_cmd",
    "codemill.cli.train_cmd",
)

app = typer.Typer(
    name="codemill",
    help="An open model factory for code agents: repositories in; environments, tasks, "
    "rollouts, rewards and evals out, recorded in Apache Iceberg.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"codemill {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: str | None = typer.Option(
        None, "--config", "-c", help="Settings file (default ./codemill.toml)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    State.config = config
    State.debug = debug
    State._settings = None


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
