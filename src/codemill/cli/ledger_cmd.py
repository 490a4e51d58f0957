"""``codemill ledger ...`` and ``codemill runs``: look into the Iceberg ledger.

    codemill ledger init                  create the catalog and tables (idempotent)
    codemill ledger tables [--json]       name, rows, snapshots, last commit per table
    codemill ledger show TABLE [--limit N] [--json]
    codemill ledger query "SQL" [--json]  DuckDB over the tables the SQL names
    codemill runs [--limit N] [--json]    recent runs: status, command, duration

Read commands never create a ledger: where there is none they say so in one line.
The store is imported inside each command so ``codemill --help`` stays fast.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table as RichTable

from codemill.cli.app import State, console, handle_errors, print_json

if TYPE_CHECKING:
    import pyarrow as pa

    from codemill.store.reader import LedgerReader

CELL_MAX = 60


def _open(create: bool = False) -> LedgerReader:
    from codemill.store.reader import LedgerReader

    return LedgerReader.open(State.settings(), create=create)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("\n", "\\n")
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def _print_rows(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    """A table of ``rows``; when it would not fit the terminal, one field/value block per
    row instead (Rich would squeeze wide tables into unreadable slivers)."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    width = sum(max([len(c)] + [len(r[i]) for r in cells]) + 3 for i, c in enumerate(columns))
    if width <= console.width or len(columns) <= 2:
        table = RichTable(title=title, header_style="bold")
        for name in columns:
            table.add_column(name, overflow="ellipsis", no_wrap=True)
        for line in cells:
            table.add_row(*line)
        console.print(table)
        return
    if title:
        console.print(f"[bold]{title}[/]")
    for n, line in enumerate(cells, 1):
        block = RichTable(title=f"row {n}", show_header=False, title_justify="left")
        block.add_column("column", style="bold", no_wrap=True)
        block.add_column("value", overflow="fold")
        for name, value in zip(columns, line, strict=True):
            block.add_row(name, value)
        console.print(block)


def _print_arrow(data: pa.Table, as_json: bool, title: str | None = None) -> None:
    rows = data.to_pylist()
    if as_json:
        print_json(rows)
    else:
        _print_rows(rows, data.column_names, title)


def init() -> None:
    """Create the ledger (catalog, namespace and tables) where settings say; idempotent."""
    with handle_errors():
        with _open(create=True) as ledger:
            names = ledger.table_names()
        console.print(f"ledger ready at {ledger.where} ({len(names)} tables)", highlight=False)


def tables(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the tables: rows, snapshots and the time of the last commit."""
    with handle_errors():
        with _open() as ledger:
            info = ledger.table_info()
        if as_json:
            print_json(info)
        else:
            _print_rows(info, ["name", "rows", "snapshots", "columns", "last_commit"])


def show(
    table: str = typer.Argument(..., help="Table name (see `codemill ledger tables`)."),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Rows to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the first rows of a table (long cells are cut; --json has them whole)."""
    with handle_errors():
        with _open() as ledger:
            data = ledger.read(table, limit=limit)
        _print_arrow(data, as_json, title=f"{table} (first {data.num_rows} rows)")


def query(
    sql: str = typer.Argument(..., help="SQL for DuckDB; tables by their names."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run SQL over the ledger with DuckDB."""
    with handle_errors():
        with _open() as ledger:
            data = ledger.query(sql)
        _print_arrow(data, as_json)


def runs(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent runs, newest first: status, command and duration."""
    with handle_errors():
        with _open() as ledger:
            rows = ledger.recent_runs(limit)
        if as_json:
            print_json(rows)
            return
        for row in rows:
            d = row.get("duration_s")
            row["duration"] = f"{d:.1f}s" if d is not None else ""
        _print_rows(rows, ["run_id", "status", "command", "started_at", "duration"])


def register(app: typer.Typer) -> None:
    ledger = typer.Typer(help="Read the ledger: list tables, show rows, run SQL.",
                         no_args_is_help=True)
    ledger.command("init")(init)
    ledger.command("tables")(tables)
    ledger.command("show")(show)
    ledger.command("query")(query)
    app.add_typer(ledger, name="ledger")
    app.command("runs")(runs)
