"""Shared CLI plumbing: the console, settings loading and one-line error reporting.

Every command runs its body inside ``handle_errors``: a ``CodemillError`` (or a bad
argument) prints one line on stderr and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from codemill.core.config import Settings, load_settings
from codemill.core.errors import CodemillError

console = Console()
err_console = Console(stderr=True)


class State:
    """Global options, set by the root callback."""

    debug: bool = False
    config: str | None = None
    _settings: Settings | None = None

    @classmethod
    def settings(cls) -> Settings:
        if cls._settings is None:
            cls._settings = load_settings(cls.config)
        return cls._settings


@contextmanager
def handle_errors() -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except CodemillError as exc:
        if State.debug:
            raise
        # emoji off: "ckpt:abc: ..." must not print an emoji for ":abc:".
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True,
                          emoji=False)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(code=130) from None


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")


def open_reader(create: bool = False) -> Any:
    """The ledger's read side (``codemill.store.reader.LedgerReader``): commands read the
    ledger here and record only through ``codemill.factory``. Without ``create`` a missing
    ledger is one line ("no ledger at ..."), never a new one."""
    from codemill.store.reader import LedgerReader

    return LedgerReader.open(State.settings(), create=create)
