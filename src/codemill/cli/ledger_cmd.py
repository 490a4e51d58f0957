"""``codemill ledger ...`` and ``codemill runs``: read the Iceberg ledger."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    ledger = typer.Typer(help="Read the ledger: list tables, show rows, run SQL.",
                         no_args_is_help=True)
    app.add_typer(ledger, name="ledger")
