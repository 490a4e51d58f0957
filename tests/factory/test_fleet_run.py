"""`codemill run --sources FILE` on four local git repositories, one of them broken and one
barren: two environments with validated tasks, the broken one a failed row with its reason,
the barren one (usable, but nothing to make a task of) failed as ``tasks: none validated``
(the others unharmed), a cost table as JSON; then a rerun that redoes nothing (every stage
of the good ones cached, no new task or materialization rows). A bad sources file stops
before anything runs."""

from __future__ import annotations

import pytest

from codemill.core.config import Settings

from .fleet_repos import fleet_json, home_env, make_repo, run_cli, sources_file

pytestmark = [pytest.mark.network, pytest.mark.slow]


def _ledger_counts(home):
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(Settings(home=home), create=False) as reader:
        tasks = reader.read("tasks", columns=["task_id"]).column("task_id").to_pylist()
        mats = reader.read("materializations").to_pylist()
    return tasks, mats


def test_bad_sources_line_stops_before_anything_runs(tmp_path):
    good = make_repo(tmp_path, "goodone")
    path = tmp_path / "sources.txt"
    path.write_text(f"# fleet\n{good}\n\npypi:toolz==0.12.0\nnot a source\n")
    home = tmp_path / "home"
    out = run_cli(tmp_path, home_env(home), "--sources", str(path), "--json", timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert f"{path}:5" in lines[0] and "not a source" in lines[0]
    assert not home.exists(), "something ran before the file was checked"


def test_fleet_builds_each_repo_keeps_a_failure_as_a_row_and_resumes(tmp_path):
    repos = [make_repo(tmp_path, "alpha"), make_repo(tmp_path, "beta"),
             make_repo(tmp_path, "gamma", broken=True), make_repo(tmp_path, "delta", barren=True)]
    listing = sources_file(tmp_path, repos)
    home = tmp_path / "home"
    args = ("--sources", str(listing), "--tasks", "1", "--features", "0", "--json")

    out = run_cli(tmp_path, home_env(home), *args)
    assert out.returncode == 1, out.stderr[-3000:]  # one repository failed
    first = fleet_json(out)
    rows = {r["source"]: r for r in first["repositories"]}
    assert list(rows) == [str(r) for r in repos]  # input order, every source a row
    for repo in repos[:2]:
        row = rows[str(repo)]
        assert row["status"] == "ok" and row["failure"] is None, row
        assert row["stages"] == {"snapshots": "success", "environments": "success",
                                 "tasks": "success"}
        assert row["env_status"] == "usable" and row["tasks_validated"] >= 1
        assert row["build_seconds"] > 0 and row["env_bytes"] > 1_000_000
        assert row["cpu_seconds"] > 0 and row["tasks_per_cpu_minute"] > 0
        assert "rollouts" not in row["stages"]  # off by default for a fleet
    bad = rows[str(repos[2])]
    assert bad["status"] == "failed" and bad["failure_kind"] == "environment failed"
    assert bad["failure"].startswith("environment failed"), bad
    assert bad["tasks_validated"] == 0
    barren = rows[str(repos[3])]  # built and usable, its tasks stage clean, yet no task
    assert barren["env_status"] == "usable" and barren["stages"]["tasks"] == "success"
    assert barren["status"] == "failed" and barren["failure_kind"] == "tasks: none validated"
    assert barren["tasks_validated"] == 0
    assert "failed" in out.stderr and "environment failed 1" in out.stderr  # progress panel
    tasks, mats = _ledger_counts(home)
    assert len(tasks) == len(set(tasks)) == sum(rows[str(r)]["tasks_validated"]
                                                for r in repos[:2])

    again_out = run_cli(tmp_path, home_env(home), *args)
    assert again_out.returncode == 1
    again = {r["source"]: r for r in fleet_json(again_out)["repositories"]}
    for repo in repos[:2]:
        row = again[str(repo)]
        assert row["status"] == "ok" and set(row["stages"].values()) == {"cached"}, row
        assert row["env_id"] == rows[str(repo)]["env_id"]
        assert row["tasks_validated"] == rows[str(repo)]["tasks_validated"]
        assert row["wall_seconds"] < rows[str(repo)]["wall_seconds"]
    # The broken repository's environment is cached too; its tasks stage fails again.
    assert again[str(repos[3])]["failure_kind"] == "tasks: none validated"
    assert again[str(repos[2])]["stages"]["environments"] == "cached"
    assert again[str(repos[2])]["failure_kind"] == "environment failed"
    tasks_after, mats_after = _ledger_counts(home)
    assert sorted(tasks_after) == sorted(tasks)
    def successes(rows):
        return sorted(m["cache_key"] for m in rows if m["status"] == "success")

    assert successes(mats_after) == successes(mats)  # nothing materialized again
