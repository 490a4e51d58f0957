"""Fixtures for the ledger tests: real SQLite catalogs and file warehouses in tmp dirs."""

from __future__ import annotations

import itertools
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
