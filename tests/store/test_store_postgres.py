"""The ledger on a real PostgreSQL catalog (a server this session starts in a temp dir):
rows written and read back, four processes appending at once with every row landing once,
a commit conflict retried, processes creating one ledger at once, and bad URIs refused
with one line before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from codemill.core.config import CatalogConfig, Settings, WriterConfig
from codemill.core.errors import CatalogError
from codemill.store.ledger import Ledger
from codemill.store.schemas import TABLE_PROPERTIES, TABLES, iceberg_schema

from .conftest import wait_for_writers

CHILD = Path(__file__).with_name("ledger_child.py")
ITEMS = pa.schema([("item_id", pa.string()), ("n", pa.int64()), ("run_id", pa.string()),
                   ("code_version", pa.string()),
                   ("created_at", pa.timestamp("us", tz="UTC"))])


def _settings(home: Path, uri: str, **writer: object) -> Settings:
    return Settings(home=home, writer=WriterConfig(**writer),
                    catalog=CatalogConfig(uri=uri, warehouse=(home / "wh").resolve().as_uri()))


def _env(home: Path, uri: str) -> dict[str, str]:
    """Child processes find the catalog the way a fleet worker does: the environment."""
    return {**os.environ, "CODEMILL_CATALOG__URI": uri,
            "CODEMILL_CATALOG__WAREHOUSE": (home / "wh").resolve().as_uri()}


def test_ledger_writes_and_reads_rows_through_postgres(tmp_path, pg_uri):
    home = tmp_path / "home"
    with Ledger.open(_settings(home, pg_uri)) as ledger:
        assert set(ledger.table_names()) == set(TABLES)
        ledger.start_run("r1", "test", {"k": 1})
        ledger.finish_run("r1", "success", {"rows": 2})
    assert not (home / "catalog.db").exists(), "the SQLite default was used"
    # A reader in a fresh connection sees what was committed.
    with Ledger.open(_settings(home, pg_uri), create=False) as reader:
        rows = reader.read("runs").to_pylist()
        assert reader.where.startswith("postgresql+psycopg2://")
    assert sorted(r["status"] for r in rows) == ["running", "success"]
    assert {r["run_id"] for r in rows} == {"r1"}


def test_four_processes_append_concurrently_and_every_row_lands_once(tmp_path, pg_uri):
    """No commit lock on a server catalog: the writers conflict and retry."""
    home = tmp_path / "home"
    ledger = Ledger.open(_settings(home, pg_uri))
    ledger.create_table("items", ITEMS)
    n_workers, n_batches, batch = 4, 15, 10
    procs = [subprocess.Popen(
        [sys.executable, str(CHILD), str(home), "items", f"p{k}", str(n_batches), str(batch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=_env(home, pg_uri)) for k in range(n_workers)]
    retries = wait_for_writers(procs, timeout=240)
    print(f"postgres: writer-level retries {retries}")
    assert not (home / "catalog.db").exists(), "a child used the SQLite default"
    ids = ledger.read("items", columns=["item_id"]).column("item_id").to_pylist()
    assert len(ids) == n_workers * n_batches * batch, "a row was lost or landed twice"
    assert set(ids) == {f"p{k}:{b}:{j}" for k in range(n_workers) for b in range(n_batches)
                        for j in range(batch)}
    tbl = ledger.load_table("items")
    cfg = ledger.settings.writer
    assert len(tbl.metadata.snapshots) <= cfg.keep_snapshots + cfg.expire_every + n_workers
    ledger.close()


def _lock_waiters(uri: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(uri)
    try:
        with engine.connect() as con:
            return int(con.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar_one())
    finally:
        engine.dispose()


def test_a_commit_conflict_is_retried_and_both_batches_land_once(tmp_path, pg_uri):
    """Two writers on one table, forced to collide: the catalog row is held locked while
    both reach their compare-and-swap; the first to get it wins, the second finds the
    table moved, and its writer retries on the reloaded table."""
    from sqlalchemy import create_engine, text

    home = tmp_path / "home"
    a, b = (Ledger.open(_settings(home, pg_uri, max_retries=5)) for _ in range(2))
    # pyiceberg's own quick retries off, so the conflict reaches codemill's writer.
    a.catalog.create_table((a.namespace, "items"), iceberg_schema(ITEMS),
                           properties={**TABLE_PROPERTIES, "commit.retry.num-retries": "0"})
    writers = {name: led.writer("items", run_id=name, asset="items", config_hash="h")
               for name, led in (("a", a), ("b", b))}
    for name, w in writers.items():
        w.add({"item_id": f"{name}:0", "n": 0})
    errors: list[BaseException] = []

    def flush(w):
        try:
            w.flush()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    holder = create_engine(pg_uri)
    threads = [threading.Thread(target=flush, args=(w,)) for w in writers.values()]
    try:
        with holder.connect() as con:
            con.execute(text("SELECT 1 FROM iceberg_tables WHERE table_name = 'items' "
                             "FOR UPDATE"))
            for waiting, t in enumerate(threads, 1):
                t.start()
                deadline = time.monotonic() + 60
                while _lock_waiters(pg_uri) < waiting:
                    assert time.monotonic() < deadline, "a writer never reached its commit"
                    time.sleep(0.05)
            con.rollback()  # release the row: both swaps go, one after the other
        for t in threads:
            t.join(timeout=120)
    finally:
        holder.dispose()
    assert not errors, errors
    assert sorted(w.stats.retries for w in writers.values()) == [0, 1]
    assert all(w.stats.commits == 1 for w in writers.values())
    ids = a.read("items", columns=["item_id"]).column("item_id").to_pylist()
    assert sorted(ids) == ["a:0", "b:0"]
    for w in writers.values():
        w.close()
    a.close()
    b.close()


def test_processes_creating_one_new_ledger_at_once_all_succeed(tmp_path, pg_uri):
    home = tmp_path / "home"
    code = ("import sys\nfrom pathlib import Path\n"
            "from codemill.core.config import Settings\nfrom codemill.store.ledger import Ledger\n"
            "with Ledger.open(Settings(home=Path(sys.argv[1]))) as l:\n"
            "    print(len(l.table_names()))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env(home, pg_uri))
             for _ in range(2)]  # two: one per core of the CI machine, so they do race
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    with Ledger.open(_settings(home, pg_uri), create=False) as ledger:
        assert set(ledger.table_names()) == set(TABLES)


@pytest.mark.parametrize("uri", [
    "postgres://u@127.0.0.1/db",            # SQLAlchemy's dialect is "postgresql"
    "not a uri",
    "postgresql+nosuchdriver://u@127.0.0.1/db",
    "postgresql+psycopg2://u:secret@127.0.0.1:1/db",  # nothing listens there
])
def test_a_bad_catalog_uri_is_one_line_and_writes_nothing(tmp_path, uri):
    home = tmp_path / "home"
    settings = Settings(home=home, catalog=CatalogConfig(uri=uri))
    for create in (True, False):
        with pytest.raises(CatalogError) as info:
            Ledger.open(settings, create=create)
        message = str(info.value)
        assert "\n" not in message and "secret" not in message
        assert "catalog" in message
    assert not home.exists() and not list(tmp_path.iterdir())


def test_a_missing_database_names_it(pg_uri, tmp_path):
    uri = pg_uri.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(CatalogError, match='database "no_such_db" does not exist'):
        Ledger.open(Settings(home=tmp_path / "home", catalog=CatalogConfig(uri=uri)))
    assert not (tmp_path / "home").exists()
