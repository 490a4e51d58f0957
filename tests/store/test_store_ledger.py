"""The Ledger object: tables, reads, SQL, runs, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codemill.core.errors import QueryError, UnknownTableError
from codemill.store.ledger import Ledger
from codemill.store.schemas import TABLES

from .conftest import make_settings


@pytest.fixture(scope="module")
def envs(shared_ledger):
    rows = [{"env_id": f"e{i}", "status": "usable" if i % 3 else "failed", "n_tests": i}
            for i in range(30)]
    with shared_ledger.writer("environments", run_id="run-envs", asset="environments",
                              config_hash="h") as w:
        w.add_many(rows)
    return rows


def test_open_creates_every_table_and_is_idempotent(shared_ledger):
    assert set(shared_ledger.table_names()) >= set(TABLES)
    again = Ledger.open(shared_ledger.settings)
    try:
        assert again.table_names() == shared_ledger.table_names()
    finally:
        again.close()


def test_read_with_filter_columns_and_limit(shared_ledger, envs):
    got = shared_ledger.read("environments", row_filter="n_tests >= 25 and status == 'usable'",
                             columns=["env_id", "n_tests"])
    assert got.column_names == ["env_id", "n_tests"]
    assert sorted(got.column("env_id").to_pylist()) == ["e25", "e26", "e28", "e29"]
    assert shared_ledger.read("environments", limit=7).num_rows == 7


def test_bad_filter_or_column_is_a_query_error(shared_ledger, envs):
    with pytest.raises(QueryError, match="environments"):
        shared_ledger.read("environments", columns=["no_such_column"])
    with pytest.raises(QueryError):
        shared_ledger.read("environments", row_filter="n_tests >>> 3")


def test_query_joins_tables_by_name(shared_ledger, envs):
    with shared_ledger.writer("tasks", run_id="run-q", asset="tasks", config_hash="h") as w:
        w.add_many({"task_id": f"t{i}", "env_id": "e1" if i < 4 else "e2"} for i in range(6))
    got = shared_ledger.query(
        "SELECT e.env_id, count(*) AS n FROM environments e JOIN tasks t USING (env_id) "
        "GROUP BY 1 ORDER BY 1").to_pylist()
    assert got == [{"env_id": "e1", "n": 4}, {"env_id": "e2", "n": 2}]


@pytest.mark.parametrize("sql, fragment", [
    ("SELEC 1", "syntax error"),
    ("SELECT * FROM no_such_table", "no_such_table"),
    ("SELECT no_such_column FROM environments", "no_such_column"),
])
def test_bad_sql_is_one_line(shared_ledger, sql, fragment):
    with pytest.raises(QueryError) as info:
        shared_ledger.query(sql)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unknown_table_names_the_known_ones(shared_ledger):
    with pytest.raises(UnknownTableError) as info:
        shared_ledger.read("enviroments")
    assert "'enviroments'" in str(info.value) and "environments" in str(info.value)


def test_runs_are_append_only_and_listed_by_latest_row(shared_ledger):
    shared_ledger.start_run("run-a", "factory materialize", {"targets": ["envs"]})
    shared_ledger.start_run("run-b", "solve", {})
    shared_ledger.finish_run("run-a", "success", {"envs": {"rows": 3}})
    runs = {r["run_id"]: r for r in shared_ledger.recent_runs(50)}
    assert runs["run-a"]["status"] == "success"
    assert runs["run-a"]["command"] == "factory materialize"  # carried to the final row
    assert runs["run-a"]["duration_s"] >= 0
    assert runs["run-b"]["status"] == "running" and runs["run-b"]["duration_s"] is None
    rows_a = shared_ledger.read("runs", row_filter="run_id == 'run-a'").to_pylist()
    assert sorted(r["status"] for r in rows_a) == ["running", "success"]
    order = [r["run_id"] for r in shared_ledger.recent_runs(50)]
    assert order.index("run-b") < order.index("run-a")  # newest first
    assert len(shared_ledger.recent_runs(1)) == 1


def test_table_info_counts_rows_and_snapshots(shared_ledger, envs):
    info = {t["name"]: t for t in shared_ledger.table_info()}
    assert info["environments"]["rows"] == shared_ledger.read("environments").num_rows
    assert info["environments"]["snapshots"] >= 1
    assert info["environments"]["last_commit"] is not None
    assert info["checkpoints"]["rows"] == 0 and info["checkpoints"]["last_commit"] is None


def test_read_only_open_sees_committed_rows(shared_ledger, envs):
    with Ledger.open(shared_ledger.settings, create=False) as ro:
        assert ro.read("environments", row_filter="env_id == 'e3'").num_rows >= 1


def test_importing_the_store_package_is_cheap(tmp_path):
    code = ("import sys, codemill.store, codemill.store.rows\n"
            "heavy = [m for m in ('pyiceberg', 'pyarrow', 'duckdb') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_open_for_writing_creates_home(tmp_path):
    home = tmp_path / "new" / "home"
    with Ledger.open(make_settings(home)) as ledger:
        assert "runs" in ledger.table_names()
    assert (home / "catalog.db").is_file() and (home / "warehouse").is_dir()
