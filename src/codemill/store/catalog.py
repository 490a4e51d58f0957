"""Open the Iceberg catalog that ``Settings`` describe, or say clearly why it cannot be.

- ``catalog_properties(settings)`` is a pure function from settings to pyiceberg catalog
  properties: SQLite (default, in the home), Postgres (``catalog.uri``) or REST
  (``catalog.kind = "rest"``); ``catalog.properties`` are passed through and win.
- ``open_catalog(settings, create)`` builds the catalog. For a SQLite file it first checks
  the file (``PRAGMA quick_check``) so a truncated or garbage file raises ``CatalogError``
  naming it, and switches it to WAL mode (persistent in the file) so readers never wait
  for a writer. With ``create=False`` (read commands) nothing is created: a missing file
  or home raises ``CatalogError`` ("no ledger at ..."). A server URI (PostgreSQL:
  ``postgresql+psycopg2://user@host:5432/db``, the ``postgres`` extra) that cannot be used
  (unparsable, unknown dialect, driver not installed, server or database unreachable)
  raises ``CatalogError`` in one line, before anything is written.
- ``catalog_errors(where)`` turns database and metadata failures into ``CatalogError``.

The catalog is built directly (``SqlCatalog`` / ``RestCatalog``), not with
``load_catalog``, so ``~/.pyiceberg.yaml`` and ``PYICEBERG_*`` variables cannot change
which catalog codemill writes to behind the settings' back.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codemill.core.config import Settings
from codemill.core.errors import CatalogError, ConfigError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

CATALOG_NAME = "codemill"
SQLITE_BUSY_TIMEOUT_S = "30"
"""How long a SQLite connection waits for another process's write lock before failing."""
INIT_HINT = "run `codemill ledger init` (or any command that writes) first"
POSTGRES_EXAMPLE = "postgresql+psycopg2://user@host:5432/db"


def catalog_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg catalog properties for ``settings`` (pure: no I/O, nothing imported)."""
    cat = settings.catalog
    if cat.kind == "rest":
        if not cat.uri:
            raise ConfigError("catalog.kind = 'rest' needs catalog.uri (the REST endpoint)")
        props = {"type": "rest", "uri": cat.uri}
        if cat.warehouse:  # a REST server names its own warehouse unless told
            props["warehouse"] = cat.warehouse
    else:
        uri = settings.catalog_uri()
        props = {"type": "sql", "uri": uri, "warehouse": settings.warehouse()}
        if uri.startswith("sqlite"):
            if "timeout=" not in uri and sqlite_path(uri) is not None:
                sep = "&" if "?" in uri else "?"
                props["uri"] = f"{uri}{sep}timeout={SQLITE_BUSY_TIMEOUT_S}"
        else:
            # Server databases drop idle connections; check before use.
            props["pool_pre_ping"] = "true"
    props.update(cat.properties)
    return props


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for in-memory databases."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
    return Path(path) if path and path != ":memory:" else None


def safe_uri(uri: str) -> str:
    """``uri`` with any password hidden, for messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return uri


def _check_sqlite(path: Path, settings: Settings, create: bool) -> None:
    if not path.exists():
        if not create:
            where = settings.home if path.parent == settings.home.resolve() else path
            raise CatalogError(f"no ledger at {where}; {INIT_HINT}", path=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
    elif path.is_dir():
        raise CatalogError(f"catalog file {path} is a directory", path=str(path))
    try:
        con = sqlite3.connect(path, timeout=float(SQLITE_BUSY_TIMEOUT_S))
        try:
            check = con.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise CatalogError(f"catalog file {path} is corrupt: {check[0][0]}",
                                   path=str(path))
            if create:
                con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CatalogError(f"catalog file {path} is not a readable SQLite database "
                           f"(truncated or corrupt?): {exc}", path=str(path)) from exc


def open_catalog(settings: Settings, create: bool = True) -> Catalog:
    """The catalog of ``settings``; see the module docstring for what is checked."""
    props = catalog_properties(settings)
    uri = props["uri"]
    if props["type"] == "rest":
        from pyiceberg.catalog.rest import RestCatalog

        with catalog_errors(safe_uri(uri)):
            return RestCatalog(CATALOG_NAME, **props)
    from pyiceberg.catalog.sql import SqlCatalog

    path = sqlite_path(uri) if uri.startswith("sqlite") else None
    if path is not None:
        _check_sqlite(path, settings, create)
    if not create:
        props["init_catalog_tables"] = "false"
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    where = str(path) if path else safe_uri(uri)
    try:
        with catalog_errors(where):
            try:
                return SqlCatalog(CATALOG_NAME, **props)
            except (OperationalError, ProgrammingError, IntegrityError) as exc:
                # Two processes creating a new catalog at once: one made the tables between
                # the other's check and create (SQLite: "already exists"; PostgreSQL: the
                # same, or a duplicate key in its own type catalog). The second try finds
                # them.
                if not any(s in str(exc) for s in ("already exists", "duplicate key")):
                    raise
            return SqlCatalog(CATALOG_NAME, **props)
    except (ArgumentError, ImportError) as exc:
        # Raised while building the engine, before any connection: nothing was written.
        raise CatalogError(f"catalog.uri {where} is not a usable SQLAlchemy URI "
                           f"({_first_line(exc)}); expected e.g. "
                           f"{POSTGRES_EXAMPLE} (driver: pip install 'codemill[postgres]')",
                           path=where) from exc


def close_catalog(catalog: Catalog) -> None:
    """Release the catalog's database connections (SQL catalogs hold a pool)."""
    engine = getattr(catalog, "engine", None)
    if engine is not None:
        engine.dispose()


@contextmanager
def catalog_errors(where: str) -> Iterator[None]:
    """Raise ``CatalogError`` naming ``where`` for a database that cannot be used.

    SQLite lock waits (``database is locked``) are not caught: writers retry them.
    """
    from sqlalchemy.exc import DatabaseError, OperationalError

    try:
        yield
    except OperationalError as exc:
        if _is_lock_error(exc):
            raise
        raise CatalogError(f"catalog {where}: {_first_line(exc.orig or exc)}",
                           path=where) from exc
    except DatabaseError as exc:
        raise CatalogError(f"catalog {where} is unreadable (truncated or corrupt?): "
                           f"{_first_line(exc.orig or exc)}", path=where) from exc


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def metadata_location(catalog: Catalog, namespace: str, table: str) -> str | None:
    """Where the catalog says ``table``'s current metadata file is (SQL catalogs only)."""
    from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    if not isinstance(catalog, SqlCatalog):
        return None
    with Session(catalog.engine) as session:
        return session.scalar(select(IcebergTables.metadata_location).where(
            IcebergTables.catalog_name == catalog.name,
            IcebergTables.table_namespace == namespace,
            IcebergTables.table_name == table,
        ))


LOCK_WAIT_S = 120.0


@contextmanager
def commit_lock(db: Path | None, wait_s: float = LOCK_WAIT_S) -> Iterator[bool]:
    """Serialize commits of processes sharing one SQLite catalog; yields whether it locked.

    Optimistic commits stay correct without it (the catalog compares and swaps the
    metadata location), but writers racing on one table redo their metadata work for
    every conflict; queueing on an ``flock`` costs nothing when alone. The lock dies with
    its process (SIGKILL included). After ``wait_s`` the commit goes ahead unlocked, so a
    stuck process slows others down but cannot stop them. No lock for other catalogs.
    """
    import fcntl
    import time

    if db is None:
        yield False
        return
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        locked = False
        while not locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
        yield locked
    finally:
        os.close(fd)  # closing releases the lock
