"""The one exception tree of codemill.

    CodemillError
    ├── ConfigError            bad settings, codemill.toml or CODEMILL_* variables
    ├── LedgerError            the Iceberg ledger
    │   ├── CatalogError       catalog unreadable, corrupt or half-written (names the file)
    │   ├── UnknownTableError  no such table
    │   ├── QueryError         SQL that DuckDB rejects
    │   └── CommitError        a batch that could not be committed; carries the rows
    ├── FactoryError           asset graph problems: cycles, unknown assets, failed assets
    ├── SourceError            a repository source that cannot be taken in
    ├── BuildError             an environment that cannot be built; carries a reason
    ├── SandboxError           a sandbox that cannot be started or cleaned up
    ├── TestRunError           a test run whose results cannot be read
    ├── TaskError              task mining, synthesis, validation or import
    ├── ModelError             a model backend that fails or answers nonsense
    ├── GradingError           grading that cannot produce a verdict
    └── SessionError           an environment session used out of order

Exceptions carry data and have no side effects: ``__str__`` never logs or prints.
"""

from __future__ import annotations

from typing import Any


class CodemillError(Exception):
    """Root of every error codemill raises on purpose."""


class ConfigError(CodemillError):
    """Settings that cannot be loaded or do not validate."""


class LedgerError(CodemillError):
    """A problem reading or writing the Iceberg ledger."""


class CatalogError(LedgerError):
    """The catalog cannot be opened; ``path`` names the file or URI at fault."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class UnknownTableError(LedgerError):
    """A table name that the ledger does not have."""

    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        hint = f" (known: {', '.join(known)})" if known else ""
        super().__init__(f"unknown table {name!r}{hint}")
        self.name = name
        self.known = known


class QueryError(LedgerError):
    """SQL that could not be run."""


class CommitError(LedgerError):
    """A batch that could not be committed after all retries.

    ``rows`` holds every row of the failed batch (and any still buffered), so nothing is
    lost: the caller may retry, spill them to disk, or show them.
    """

    def __init__(self, message: str, table: str, rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.table = table
        self.rows = rows


class FactoryError(CodemillError):
    """An asset graph that cannot be planned or an asset that failed."""


class SourceError(CodemillError):
    """A repository source that cannot be resolved, fetched or snapshotted."""


class BuildError(CodemillError):
    """An environment that could not be built; ``reason`` is short and actionable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SandboxError(CodemillError):
    """A sandbox that could not be created, run or cleaned up."""


class TestRunError(CodemillError):
    """A test run whose results could not be obtained or parsed."""

    __test__ = False  # not a pytest test class


class TaskError(CodemillError):
    """Task mining, synthesis, validation or import failed."""


class ModelError(CodemillError):
    """A model backend failed or returned something unusable."""


class GradingError(CodemillError):
    """Grading could not reach a verdict."""


class SessionError(CodemillError):
    """An environment session (``codemill.rollouts.session``) used out of order: a step
    before ``reset``, after the episode ended or after ``close``, or ``grade`` before the
    episode ended. The message says what to call."""
