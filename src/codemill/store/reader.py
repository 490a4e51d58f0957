"""The read side of the ledger: codemill's Iceberg tables, opened to be read.

    reader = LedgerReader.open(settings)     # creates nothing; "no ledger at ..." if none
    reader.table_names()                     # ['checkpoints', 'environments', ...]
    reader.read("tasks", row_filter="env_id == 'abc'", columns=["task_id"], limit=10)
    reader.query("SELECT status, count(*) FROM environments GROUP BY 1")

Reads go through Arrow (``scan().to_arrow()``); ``query`` runs DuckDB in memory over the
Arrow scans of the tables the SQL names (DuckDB's Iceberg extension would download itself).
A reader has no way to write rows: ``codemill.store.ledger.Ledger`` (this class plus the
batched writer and the ``runs`` bookkeeping) does, and only ``codemill.factory`` opens one
(an import-linter contract keeps the CLI to this module). Every failure is a
``LedgerError`` with one clear line: ``CatalogError`` (unreadable catalog or table
metadata, naming the file), ``UnknownTableError``, ``QueryError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from codemill.core.config import Settings
from codemill.core.errors import CatalogError, LedgerError, QueryError, UnknownTableError
from codemill.store import catalog as cat
from codemill.store.runs import latest_runs_sql
from codemill.store.schemas import TABLE_PROPERTIES, TABLES

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table


class LedgerReader:
    """codemill's tables in one Iceberg namespace, to read; see the module docstring."""

    def __init__(self, settings: Settings, catalog: Catalog, where: str,
                 catalog_file: Path | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.namespace = settings.catalog.namespace
        self.where = where
        """The catalog file or URI, for messages."""
        self.catalog_file = catalog_file
        """The SQLite catalog file, when the catalog is one (commits queue on its lock)."""
        self._known: set[str] = set()

    @classmethod
    def open(cls, settings: Settings, create: bool = False) -> Self:
        """Open the ledger of ``settings``; with ``create``, make what is missing."""
        props = cat.catalog_properties(settings)
        path = cat.sqlite_path(props["uri"]) if props["uri"].startswith("sqlite") else None
        if create and path is not None:
            # Processes opening a new ledger at once take turns: creating the catalog's
            # tables, the namespace and the ledger's tables are not atomic in pyiceberg.
            path.parent.mkdir(parents=True, exist_ok=True)
            with cat.commit_lock(path):
                return cls._open(settings, create, path, props)
        return cls._open(settings, create, path, props)

    @classmethod
    def _open(cls, settings: Settings, create: bool, path: Path | None,
              props: dict[str, str]) -> Self:
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchNamespaceError
        from sqlalchemy.exc import IntegrityError

        catalog = cat.open_catalog(settings, create=create)
        ledger = cls(settings, catalog, str(path) if path else cat.safe_uri(props["uri"]), path)
        ns = ledger.namespace
        try:
            with cat.catalog_errors(ledger.where):
                if create:
                    # Made by another process; on a server catalog (no creation lock) its
                    # insert can land between this one's check and insert: IntegrityError.
                    with suppress(NamespaceAlreadyExistsError, IntegrityError):
                        catalog.create_namespace_if_not_exists(ns)
                try:
                    ledger._refresh_names()
                except NoSuchNamespaceError:
                    raise CatalogError(f"no ledger at {ledger._home_or_where()}; "
                                       f"{cat.INIT_HINT}", path=ledger.where) from None
                if create:
                    existing = set(ledger._known)
                    for name in sorted(set(TABLES) - existing):
                        ledger.create_table(name, TABLES[name])
                    for name in sorted(set(TABLES) & existing):
                        ledger._add_declared_columns(name)
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _home_or_where(self) -> str:
        return str(self.settings.home) if self.settings.catalog.uri is None else self.where

    def close(self) -> None:
        """Release catalog connections. The ledger is not usable afterwards."""
        cat.close_catalog(self.catalog)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tables ------------------------------------------------------------------------

    def _refresh_names(self) -> None:
        self._known = {ident[-1] for ident in self.catalog.list_tables(self.namespace)}

    def table_names(self) -> list[str]:
        """The tables in the ledger's namespace, sorted."""
        with cat.catalog_errors(self.where):
            self._refresh_names()
        return sorted(self._known)

    def create_table(self, name: str, schema: pa.Schema) -> None:
        """Create ``name`` with ``schema`` (all columns nullable) unless it exists."""
        from pyiceberg.exceptions import TableAlreadyExistsError

        from codemill.store.schemas import iceberg_schema

        # A table created concurrently by another process has the same schema: fine.
        with cat.catalog_errors(self.where), suppress(TableAlreadyExistsError):
            self.catalog.create_table((self.namespace, name), iceberg_schema(schema),
                                      properties=TABLE_PROPERTIES)
        self._known.add(name)

    def commit_lock(self, enabled: bool = True) -> AbstractContextManager[bool]:
        """Held by writers around a commit; see ``codemill.store.catalog.commit_lock``."""
        return cat.commit_lock(self.catalog_file if enabled else None)

    def current_location(self, name: str) -> str | None:
        """The catalog's current metadata location of ``name`` (None: cannot tell cheaply)."""
        with cat.catalog_errors(self.where):
            return cat.metadata_location(self.catalog, self.namespace, name)

    def _add_declared_columns(self, name: str) -> None:
        """Give an existing table the columns ``schemas`` declares and it lacks (a ledger
        made by an older codemill); nullable, so its old rows read back with nulls."""
        import pyarrow as pa
        from pyiceberg.exceptions import CommitFailedException

        tbl = self.load_table(name)
        have = set(tbl.schema().column_names)
        missing = [f for f in TABLES[name] if f.name not in have]
        if not missing:
            return
        try:
            with tbl.update_schema() as update:
                update.union_by_name(pa.schema(missing))
        except CommitFailedException:
            pass  # another process changed it first; the next open tries again

    def _require(self, name: str) -> None:
        if name not in self._known:
            self.table_names()
            if name not in self._known:
                raise UnknownTableError(name, tuple(sorted(self._known)))

    def load_table(self, name: str) -> Table:
        """The current pyiceberg table ``name`` (freshly loaded)."""
        from pyiceberg.exceptions import NoSuchTableError
        from pyiceberg.exceptions import ValidationError as MetadataError

        self._require(name)
        with cat.catalog_errors(self.where):
            try:
                return self.catalog.load_table((self.namespace, name))
            except NoSuchTableError:
                raise UnknownTableError(name, tuple(sorted(self._known))) from None
            except (MetadataError, ValueError, OSError) as exc:
                loc = cat.metadata_location(self.catalog, self.namespace, name) or "?"
                loc = loc.removeprefix("file://")
                raise CatalogError(f"table {name}: metadata file {loc} is unreadable "
                                   f"(truncated or corrupt?): {_line(exc)}", path=loc) from exc

    # -- reading -----------------------------------------------------------------------

    def read(self, table: str, row_filter: str | BooleanExpression | None = None,
             columns: Sequence[str] | None = None, limit: int | None = None) -> pa.Table:
        """Rows of ``table`` as Arrow; ``row_filter`` is pyiceberg's filter syntax
        (``"env_id == 'x' and n_tests > 0"``) or one of its expressions."""
        import pyarrow as pa
        from pyiceberg.expressions import AlwaysTrue
        from pyparsing import ParseException

        tbl = self.load_table(table)
        try:
            return tbl.scan(row_filter=row_filter or AlwaysTrue(),
                            selected_fields=tuple(columns) if columns else ("*",),
                            limit=limit).to_arrow()
        except ParseException as exc:
            raise QueryError(f"table {table}: cannot parse row filter {row_filter!r} "
                             f"(at character {exc.loc})") from None
        except ValueError as exc:
            raise QueryError(f"table {table}: bad filter or columns: {_line(exc)}") from exc
        except (OSError, pa.ArrowException) as exc:
            raise LedgerError(f"table {table}: cannot read its data files: {_line(exc)}") from exc

    def query(self, sql: str) -> pa.Table:
        """Run ``sql`` in DuckDB over the tables it names; raises ``QueryError``."""
        import duckdb
        import pyarrow as pa

        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            for name in self.table_names():
                if re.search(rf"\b{re.escape(name)}\b", sql, re.IGNORECASE):
                    con.register(name, self.read(name))
            try:
                rel = con.sql(sql)
                return rel.to_arrow_table() if rel is not None else pa.table({})
            except duckdb.Error as exc:
                raise QueryError(_line(exc)) from None
        finally:
            con.close()

    def table_info(self) -> list[dict[str, Any]]:
        """Per table: name, rows, snapshots, columns and the last commit time (UTC)."""
        info = []
        for name in self.table_names():
            tbl = self.load_table(name)
            snap = tbl.current_snapshot()
            info.append({
                "name": name,
                "rows": int(snap.summary.get("total-records") or 0)
                if snap and snap.summary else 0,
                "snapshots": len(tbl.metadata.snapshots),
                "columns": len(tbl.schema().fields),
                "last_commit": datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC)
                if snap else None,
            })
        return info

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest row of each run, newest first, with ``duration_s``."""
        return self.query(latest_runs_sql(limit)).to_pylist()


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
