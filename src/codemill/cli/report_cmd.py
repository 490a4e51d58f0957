"""``codemill report``: write the self-contained HTML report of training and evals."""

from __future__ import annotations

from pathlib import Path

import typer

from codemill.cli.app import State, console, handle_errors


def report_cmd(
    out: Path = typer.Option(Path("codemill-report.html"), "--out", "-o",
                             help="Where to write the HTML file."),
    suite: str | None = typer.Option(None, "--suite", "-s", help="Only this suite."),
    screenshot: Path | None = typer.Option(None, "--screenshot",
                                           help="Also open it in headless Chromium and "
                                           "save a PNG screenshot here."),
) -> None:
    """One HTML file, no network needed to open it: training curve, pass@k with intervals,
    comparisons with flipped tasks, per-project rates, judge agreement, trajectories."""
    with handle_errors():
        from codemill.report.data import collect
        from codemill.report.html import write_report

        path = write_report(collect(State.settings(), suite), out)
        console.print(f"report: {path.absolute()}", highlight=False)
        if screenshot is not None:
            from codemill.report.browser import inspect

            seen = inspect(path, screenshot=screenshot)
            console.print(f"screenshot: {screenshot} ({len(seen.plots)} plots rendered)",
                          highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
