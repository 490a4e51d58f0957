"""Opening the catalog: properties from settings, WAL, and clear errors for broken files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from codemill.core.config import CatalogConfig, Settings
from codemill.core.errors import CatalogError, ConfigError
from codemill.store.catalog import catalog_properties
from codemill.store.ledger import Ledger

from .conftest import make_settings


def test_default_is_sqlite_in_home_with_busy_timeout(tmp_path):
    s = Settings(home=tmp_path / "h")
    props = catalog_properties(s)
    db = (tmp_path / "h" / "catalog.db").resolve()
    assert props["type"] == "sql"
    assert props["uri"] == f"sqlite:///{db}?timeout=30"
    assert props["warehouse"] == (tmp_path / "h" / "warehouse").resolve().as_uri()
    assert not (tmp_path / "h").exists(), "a pure function must not create the home"


def test_postgres_uri_passes_through_with_pre_ping(tmp_path):
    uri = "postgresql+psycopg2://user:secret@db:5432/codemill"
    s = Settings(home=tmp_path, catalog=CatalogConfig(
        uri=uri, warehouse="s3://bucket/wh", properties={"s3.endpoint": "http://minio:9000"}))
    assert catalog_properties(s) == {
        "type": "sql", "uri": uri, "warehouse": "s3://bucket/wh", "pool_pre_ping": "true",
        "s3.endpoint": "http://minio:9000",
    }


def test_rest_catalog_properties(tmp_path):
    s = Settings(home=tmp_path, catalog=CatalogConfig(
        kind="rest", uri="https://iceberg.example.com", properties={"credential": "id:secret"}))
    # No local warehouse is invented for a REST server: it names its own.
    assert catalog_properties(s) == {
        "type": "rest", "uri": "https://iceberg.example.com", "credential": "id:secret"}
    s2 = Settings(home=tmp_path, catalog=CatalogConfig(
        kind="rest", uri="https://iceberg.example.com", warehouse="prod"))
    assert catalog_properties(s2)["warehouse"] == "prod"


def test_rest_without_uri_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="catalog.uri"):
        catalog_properties(Settings(home=tmp_path, catalog=CatalogConfig(kind="rest")))


def test_user_properties_win(tmp_path):
    s = Settings(home=tmp_path, catalog=CatalogConfig(properties={"uri": "sqlite:///x.db"}))
    assert catalog_properties(s)["uri"] == "sqlite:///x.db"


def test_new_catalog_is_in_wal_mode(tmp_path):
    with Ledger.open(make_settings(tmp_path / "h")):
        pass
    con = sqlite3.connect(tmp_path / "h" / "catalog.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        con.close()


def test_read_open_of_missing_home_creates_nothing(tmp_path):
    home = tmp_path / "nothing-here"
    with pytest.raises(CatalogError, match=r"no ledger at .*nothing-here; run"):
        Ledger.open(make_settings(home), create=False)
    assert not home.exists()


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A small ledger with one committed batch, closed; tests corrupt copies of it."""
    home = tmp_path_factory.mktemp("cat") / "h"
    with Ledger.open(make_settings(home)) as ledger:
        with ledger.writer("runs", run_id="r", asset="runs", config_hash="h") as w:
            w.add({"command": "x", "status": "running"})
        meta = ledger.load_table("runs").metadata_location.removeprefix("file://")
    return home, meta


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty-header"])
def test_corrupt_catalog_file_names_the_file(populated, tmp_path, damage):
    home, _ = populated
    db = home / "catalog.db"
    backup = db.read_bytes()
    try:
        if damage == "truncated":
            os.truncate(db, len(backup) // 2)
        elif damage == "garbage":
            db.write_bytes(os.urandom(len(backup)))
        else:
            db.write_bytes(backup[:100])
        for create in (False, True):
            with pytest.raises(CatalogError) as info:
                Ledger.open(make_settings(home), create=create)
            assert str(db) in str(info.value)
            assert info.value.path == str(db)
            assert "\n" not in str(info.value)
    finally:
        db.write_bytes(backup)


def test_half_written_table_metadata_names_the_file(populated):
    home, meta = populated
    original = Path(meta).read_text(encoding="utf-8")
    try:
        Path(meta).write_text(original[: len(original) // 2], encoding="utf-8")
        with Ledger.open(make_settings(home), create=False) as ledger:
            assert "runs" in ledger.table_names()  # the catalog itself is fine
            with pytest.raises(CatalogError) as info:
                ledger.read("runs")
        assert meta in str(info.value) and info.value.path == meta
        assert "\n" not in str(info.value)
    finally:
        Path(meta).write_text(original, encoding="utf-8")
    with Ledger.open(make_settings(home), create=False) as ledger:
        assert ledger.read("runs").num_rows == 1
