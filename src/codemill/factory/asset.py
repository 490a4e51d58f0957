"""Assets: functions declared with a name, a code version and their upstream assets.

An asset computes the rows of the ledger table that bears its name (``snapshots``,
``environments``, ``tasks`` ...; the table must exist in ``codemill.store.schemas``). Its
function takes one ``AssetContext`` and returns (or yields) rows: core records or plain
dicts. The factory persists them; the function never writes a table (DESIGN.md, rule 1).
Declaring one::

    @asset("environments", code_version="3", deps=("snapshots",), checks=(no_empty_ids,))
    def environments(ctx: AssetContext) -> Iterator[EnvSpec]:
        done = ctx.existing_ids("environments", "env_id")   # resume after a crash
        todo = [s for s in ctx.upstream("snapshots").to_pylist() if ...]
        for spec in ctx.executor.map(build_one, todo):
            if isinstance(spec, ItemError):   # one item failed: data, not a crash
                ctx.logger.warning("%s", spec)
                continue
            yield spec

Two kinds of upstream. ``deps`` are materialized first, in the same plan, and their cache
keys are part of this asset's key (the pipeline: snapshots -> environments -> tasks ->
rollouts -> rewards). ``reads`` are assets whose *recorded* rows this one reads as they
stand, made by other runs and commands (a suite reads tasks, an eval reads suites and
checkpoints, a checkpoint reads tasks and rewards): declared so the graph and the lineage
show them and ``ctx.upstream`` allows them, never run on this asset's behalf; what is read
is identified by the asset's config (a suite id, a checkpoint id, the resolved task ids), so
the config is what keys it. An asset with ``requested=True`` runs only when named (it needs
a config saying which suite, eval or training job); "every asset" means the others.

``code_version`` is the author's promise: bump it when the function's output for the same
inputs would change; the cache key depends on it, not on codemill's git commit.

A check takes the list of rows the asset produced and returns ``None`` (or ``True``) when
they pass, ``False`` or a one-line reason (``str``) when they fail; raising also fails. A
failed check fails the materialization, so downstream assets do not run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codemill.core.errors import FactoryError

if TYPE_CHECKING:
    import pyarrow as pa

    from codemill.core.config import Settings
    from codemill.factory.executors import Executor

Check = Callable[[list[dict[str, Any]]], "bool | str | None"]
AssetFn = Callable[["AssetContext"], Iterable[Any]]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Asset:
    """A declared asset. ``name`` is also the ledger table its rows go to."""

    name: str
    fn: AssetFn
    code_version: str
    deps: tuple[str, ...] = ()
    description: str = ""
    checks: tuple[Check, ...] = ()
    reads: tuple[str, ...] = ()
    """Recorded upstream assets read as they stand (module docstring); not run for this."""
    requested: bool = False
    """Materialized only when named: not part of a plan for "every asset"."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise FactoryError(f"asset name {self.name!r} must be a lowercase identifier")
        if not self.code_version:
            raise FactoryError(f"asset {self.name!r} needs a non-empty code_version")
        if self.name in self.deps or self.name in self.reads:
            raise FactoryError(f"asset {self.name!r} depends on itself")
        both = sorted(set(self.deps) & set(self.reads))
        if both:
            raise FactoryError(f"asset {self.name!r} names {', '.join(both)} both as a dep "
                               "and as a read")

    @property
    def origin(self) -> str:
        """Where the function is defined, ``module.qualname``: names it in messages."""
        return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"


def make_asset(
    fn: AssetFn,
    name: str,
    code_version: str,
    deps: Iterable[str] = (),
    description: str = "",
    checks: Iterable[Check] = (),
    reads: Iterable[str] = (),
    requested: bool = False,
) -> Asset:
    """Build an ``Asset`` from a function; the description defaults to its docstring."""
    doc = (fn.__doc__ or "").strip().splitlines()
    return Asset(
        name=name,
        fn=fn,
        code_version=str(code_version),
        deps=tuple(deps),
        description=description or (doc[0] if doc else ""),
        checks=tuple(checks),
        reads=tuple(reads),
        requested=requested,
    )


@dataclass(frozen=True)
class Side:
    """A row for a table other than the asset's own, yielded by an asset that makes
    detail rows alongside its main ones (an environment's per-test baseline in
    ``test_results``, a rollout's ``steps``). It is written in the same materialization,
    counted separately and never makes the asset a dependency of anything."""

    table: str
    row: Any


@dataclass
class AssetContext:
    """What an asset function gets: its run, config, upstream, executor and read helpers.

    ``config`` is whatever the caller resolved for this asset (a dict or a pydantic model;
    ``{}`` when none). ``upstream_keys`` maps each dependency to the cache key it has in
    this run (a ``reads`` asset has no key here). Reads go to the ledger; writes do not
    exist here on purpose.
    """

    asset: Asset
    run_id: str
    cache_key: str
    config: Any
    upstream_keys: Mapping[str, str]
    settings: Settings
    logger: logging.Logger
    _reader: Any = field(repr=False)
    """The ledger (read side only is used): ``read(table, row_filter, columns, limit)``."""
    _executor_factory: Callable[[], Executor] = field(repr=False)
    _on_progress: Callable[[str, int, int | None], None] | None = field(
        default=None, repr=False
    )

    @property
    def executor(self) -> Executor:
        """The run's executor, started on first use (a cached run never starts one)."""
        return self._executor_factory()

    @property
    def reader(self) -> Any:
        """The ledger's read side (``read``, ``table_names``, ``query``), e.g. for
        ``codemill.factory.lookup``; for inputs prefer ``upstream``."""
        return self._reader

    def upstream(self, name: str, columns: list[str] | None = None,
                 row_filter: str | None = None) -> pa.Table:
        """The rows of upstream asset ``name``'s table (a dep or a read), optionally
        filtered (pyiceberg syntax, ``"status == 'usable'"``). The table is append-only,
        so this is every materialization's rows: rows are keyed by content ids, which
        already say what made them (a builder version, a snapshot), so select or dedupe
        by those."""
        if name not in self.asset.deps and name not in self.asset.reads:
            raise FactoryError(f"asset {self.asset.name!r} reads {name!r}, which is not "
                               "one of its deps or reads")
        return self._reader.read(name, row_filter=row_filter, columns=columns)

    def read(self, table: str, columns: list[str] | None = None,
             row_filter: str | None = None) -> list[dict[str, Any]]:
        """Rows of any ledger table as dicts (for resuming and dedupe, not for inputs:
        inputs come from ``upstream`` so the cache key covers them)."""
        return self._reader.read(table, row_filter=row_filter, columns=columns).to_pylist()

    def existing_ids(self, table: str, id_column: str) -> set[str]:
        """Ids already recorded in ``table``: lets an asset skip work a crashed or earlier
        run has committed, so a rerun neither redoes nor duplicates it."""
        col = self._reader.read(table, columns=[id_column]).column(id_column)
        return {v for v in col.to_pylist() if v is not None}

    def progress(self, done: int, total: int | None = None, phase: str | None = None) -> None:
        """Report progress of this asset (shown by the CLI; logged otherwise); ``phase``
        names a step before its items (reported as ``asset (phase)``)."""
        name = f"{self.asset.name} ({phase})" if phase else self.asset.name
        if self._on_progress is not None:
            self._on_progress(name, done, total)
        else:
            self.logger.debug("%s: %d/%s", name, done, total or "?")
