"""Fixtures for the ledger tests: real SQLite catalogs and file warehouses in tmp dirs,
and a real PostgreSQL server for the catalog tests that need one."""

from __future__ import annotations

import itertools
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pytest

from codemill.core.config import Settings, WriterConfig
from codemill.store.ledger import Ledger

_names = itertools.count()


def make_settings(home: Path, **writer: object) -> Settings:
    return Settings(home=home, writer=WriterConfig(**writer))


@pytest.fixture(scope="module")
def shared_ledger(tmp_path_factory):
    """One ledger per test module (creating the twelve tables costs about a second);
    tests that need a table of their own make one with ``fresh_table``."""
    home = tmp_path_factory.mktemp("ledger") / "home"
    ledger = Ledger.open(make_settings(home))
    yield ledger
    ledger.close()


@pytest.fixture
def fresh_table(shared_ledger):
    """A new empty table in the shared ledger: ``fresh_table(schema) -> name``."""

    def make(schema: pa.Schema | None = None) -> str:
        name = f"t{next(_names)}"
        shared_ledger.create_table(name, schema or pa.schema([
            ("item_id", pa.string()), ("n", pa.int64()), ("run_id", pa.string()),
            ("code_version", pa.string()), ("created_at", pa.timestamp("us", tz="UTC")),
        ]))
        return name

    return make


@pytest.fixture(scope="session")
def pg_server_uri():
    """A throwaway PostgreSQL server for this test session (``tests/store/pg_server.py``);
    a machine that cannot start one skips, and fails under ``CI=true``."""
    from conftest import missing_prerequisite

    from .pg_server import PgUnavailable, pg_server

    with ExitStack() as stack:
        try:
            uri = stack.enter_context(pg_server())
        except PgUnavailable as exc:
            missing_prerequisite(str(exc))
        yield uri


@pytest.fixture
def pg_uri(pg_server_uri):
    """The URI of a fresh, empty database on the session's PostgreSQL server."""
    from .pg_server import create_database

    return create_database(pg_server_uri, f"t{next(_names)}")


def wait_for_writers(procs, timeout: float) -> int:
    """Wait for the writer children of the concurrency tests; each must exit 0 and end its
    output with ``done ... retries=N``. Returns the writer-level retries of all of them."""
    retries = 0
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        last = out.splitlines()[-1]
        assert last.startswith("done")
        retries += int(last.split("retries=")[1])
    return retries
