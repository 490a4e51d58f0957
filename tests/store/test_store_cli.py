"""``codemill ledger ...`` and ``codemill runs`` against a real ledger in a temp home."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from codemill.cli.main import app
from codemill.store.ledger import Ledger

from .conftest import make_settings


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli") / "home"
    with Ledger.open(make_settings(home)) as ledger:
        ledger.start_run("run-cli", "factory materialize", {"k": 1})
        with ledger.writer("tasks", run_id="run-cli", asset="tasks", config_hash="h") as w:
            w.add_many({"task_id": f"t{i}", "env_id": "e", "problem_statement": "x" * 500}
                       for i in range(3))
        ledger.finish_run("run-cli", "success", {"tasks": 3})
    return home


@pytest.fixture
def cli(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray codemill.toml
    runner = CliRunner()

    def invoke(*args: str, home_dir=home):
        return runner.invoke(app, list(args), env={"CODEMILL_HOME": str(home_dir)})

    return invoke


def test_tables_json(cli):
    result = cli("ledger", "tables", "--json")
    assert result.exit_code == 0, result.output
    info = {t["name"]: t for t in json.loads(result.stdout)}
    assert info["tasks"]["rows"] == 3 and info["tasks"]["snapshots"] == 1
    assert info["runs"]["rows"] == 2 and info["runs"]["last_commit"]


def test_tables_and_show_print_tables(cli):
    result = cli("ledger", "tables")
    assert result.exit_code == 0 and "tasks" in result.stdout
    result = cli("ledger", "show", "tasks", "--limit", "2")
    assert result.exit_code == 0 and "t0" in result.stdout
    assert "x" * 100 not in result.stdout  # long cells are cut
    rows = json.loads(cli("ledger", "show", "tasks", "--json").stdout)
    assert len(rows) == 3 and rows[0]["problem_statement"] == "x" * 500


def test_query_json(cli):
    result = cli("ledger", "query", "SELECT env_id, count(*) AS n FROM tasks GROUP BY 1",
                 "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"env_id": "e", "n": 3}]


def test_runs_lists_latest_status_and_duration(cli):
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [("run-cli", "success")]
    assert runs[0]["duration_s"] >= 0
    result = cli("runs")
    assert result.exit_code == 0 and "run-cli" in result.stdout and "success" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (("ledger", "show", "nope"), "unknown table 'nope'"),
    (("ledger", "query", "SELEC 1"), "syntax error"),
    (("ledger", "query", "SELECT * FROM missing_table"), "missing_table"),
])
def test_bad_input_is_one_line_and_exit_1(cli, args, fragment):
    result = cli(*args)
    assert result.exit_code == 1
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [("ledger", "tables"), ("ledger", "show", "runs"),
                                  ("ledger", "query", "SELECT 1"), ("runs",)])
def test_read_commands_do_not_create_a_missing_home(cli, tmp_path, args):
    missing = tmp_path / "no-home"
    result = cli(*args, home_dir=missing)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: no ledger at {missing}; run `codemill ledger "
                                      "init` (or any command that writes) first")
    assert not missing.exists()


def test_init_then_read(cli, tmp_path):
    fresh = tmp_path / "fresh"
    assert cli("ledger", "init", home_dir=fresh).exit_code == 0
    result = cli("runs", "--json", home_dir=fresh)
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_corrupt_catalog_in_a_real_process(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "catalog.db").write_bytes(b"not a database" * 100)
    env = {**os.environ, "CODEMILL_HOME": str(home)}
    cmd = [sys.executable, "-m", "codemill.cli.main", "ledger", "tables"]
    code = "from codemill.cli.main import main; main()"
    out = subprocess.run([sys.executable, "-c", code, *cmd[3:]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert str(home / "catalog.db") in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    debug = subprocess.run([sys.executable, "-c", code, "--debug", *cmd[3:]], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
