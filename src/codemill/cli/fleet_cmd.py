"""``codemill run --sources FILE``: the main job over many repositories (a fleet run).

The sources file is checked whole before anything runs (``codemill.repos.source_list``):
a bad line is one error line naming the file and line, exit 1. Then
``codemill.factory.fleet.run_fleet`` runs every source on the configured executor (a local
process pool, or a Ray cluster with ``CODEMILL_EXECUTOR__KIND=ray`` and
``CODEMILL_EXECUTOR__RAY_ADDRESS``) while a live panel on stderr shows each stage's done,
failed and running sources, failures by reason and an ETA. It ends with the cost table per
repository (or ``--json``). Exit 1 when any repository failed; the others' work is kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from codemill.cli.app import State, console, err_console, print_json


def run_fleet_cmd(sources_file: str, cfg: Any, *, rollouts: bool, as_json: bool) -> None:
    """Parse ``sources_file``, run the fleet, print its cost table; see the module doc."""
    from codemill.repos.source_list import read_source_list

    sources = read_source_list(sources_file)
    if not sources:
        err_console.print(f"[bold red]error:[/] {sources_file}: no sources listed",
                          highlight=False)
        raise typer.Exit(1)
    with _stdout_to_stderr():
        result = _run_live(sources, cfg, rollouts)
    if as_json:
        print_json(result.to_json())
    else:
        _print_costs(result)
    if not result.ok:
        failed = sum(c.status != "ok" for c in result.costs)
        err_console.print(f"[bold red]error:[/] {failed} of {len(result.costs)} "
                          "repositories failed (their rows say why)", highlight=False)
        raise typer.Exit(1)


def _run_live(sources: list[str], cfg: Any, rollouts: bool) -> Any:
    """The fleet with its progress panel on stderr: live on a terminal, else once at the
    end (a log is not a screen)."""
    from codemill.factory.fleet import FleetProgress, run_fleet

    settings = State.settings()
    if err_console.is_terminal:
        with Live(_panel(None, len(sources)), console=err_console, refresh_per_second=4,
                  transient=False) as live:
            def show(p: FleetProgress) -> None:
                live.update(_panel(p, len(sources)))

            return run_fleet(sources, cfg, settings, rollouts=rollouts, on_progress=show)
    last: list[FleetProgress] = []

    def keep(p: FleetProgress) -> None:
        last[:] = [p]

    result = run_fleet(sources, cfg, settings, rollouts=rollouts, on_progress=keep)
    err_console.print(_panel(last[-1] if last else None, len(sources)))
    return result


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 points at stderr meanwhile: what Ray or a library prints while
    the fleet runs cannot end up inside the ``--json`` document."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _panel(p: Any, total: int) -> Any:
    if p is None:
        return Text(f"fleet: {total} sources queued")
    table = Table(title_justify="left", box=None, padding=(0, 2),
                  title=f"fleet: {p.repos['ok']} ok, {p.repos['failed']} failed, "
                        f"{p.repos['running']} running, {p.repos['queued']} queued "
                        f"of {p.total}; {p.elapsed_s:.0f}s"
                        + (f", ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""))
    for col in ("stage", "done", "failed", "running"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, n in p.stages.items():
        table.add_row(name, str(n["done"]), str(n["failed"]), str(n["running"]))
    parts: list[Any] = [table]
    if p.failures:
        parts.append(Text("failures: " + ", ".join(f"{k} {v}" for k, v in
                                                    sorted(p.failures.items()))))
    return Group(*parts)


def _print_costs(result: Any) -> None:
    table = Table(title=f"fleet {result.fleet_id}: cost per repository", title_justify="left")
    for col in ("source", "status", "build s", "env MB", "tasks", "tasks/CPU-min", "CPU s",
                "wall s", "failure"):
        table.add_column(col, justify="left" if col in ("source", "status", "failure")
                         else "right")
    for c in result.costs:
        rate = c.tasks_per_cpu_minute
        table.add_row(c.source, c.status + (" (cached)" if c.stages and set(c.stages.values())
                                            == {"cached"} else ""),
                      f"{c.build_seconds:.1f}", f"{c.env_bytes / 1e6:.1f}",
                      str(c.tasks_validated), "-" if rate is None else f"{rate:.2f}",
                      f"{c.cpu_seconds:.1f}", f"{c.wall_seconds:.1f}", c.failure or "")
    console.print(table)
    console.print(f"{result.seconds:.1f}s in all; ledger: {State.settings().catalog_uri()}",
                  highlight=False)
