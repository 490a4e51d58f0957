"""`codemill run` end to end on a small real project: a real build, synthesized and
validated tasks, graded rollouts, the summary; then a rerun that is fully cached and a
policy change that reruns only the rollouts and their rewards. Then, on a local git
repository, an edit to one source file re-runs the snapshot and everything downstream of
it, and with no edit (or the edit undone) everything is cached."""

import json
import subprocess
import sys

import pytest

from . import fleet_repos

STAGES = ("snapshots", "environments", "tasks", "rollouts", "rewards")

pytestmark = [pytest.mark.network, pytest.mark.slow]

MODULE = fleet_repos.MODULE.format(name="mathx")
TESTS = fleet_repos.TESTS.format(name="mathx")


def _run(tmp_path, *args):
    out = subprocess.run(
        [sys.executable, "-m", "codemill.cli.main", "run", *args, "--json"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={"CODEMILL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _project(tmp_path):
    repo = tmp_path / "mathx"
    (repo / "tests").mkdir(parents=True)
    (repo / "mathx.py").write_text(MODULE)
    (repo / "tests" / "test_mathx.py").write_text(TESTS)
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "mathx"\nversion = "0.1"\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\n')
    return repo


def test_run_end_to_end_then_cached_then_new_policy(tmp_path):
    repo = _project(tmp_path)

    first = _run(tmp_path, str(repo), "--model", "scripted:submit", "--tasks", "2",
                 "--features", "1", "--group", "2")
    status = {s["asset"]: s["status"] for s in first["stages"]}
    assert status == dict.fromkeys(STAGES, "success")
    assert first["env_status"] == "usable"
    n_tasks = sum(first["tasks_by_kind"].values())
    assert first["tasks_by_kind"].get("synth", 0) >= 1 and n_tasks >= 2
    # A policy that submits nothing is graded (not masked) and resolves nothing.
    assert first["rollouts"] == 2 * n_tasks
    assert first["resolved"]["graded"] == first["rollouts"]
    assert first["resolved"]["successes"] == 0 and first["masked"] == {}
    assert first["resolved"]["high"] < 0.5

    again = _run(tmp_path, str(repo), "--model", "scripted:submit", "--tasks", "2",
                 "--features", "1", "--group", "2")
    assert {s["status"] for s in again["stages"]} == {"cached"}
    assert again["rollouts"] == first["rollouts"]

    other = _run(tmp_path, str(repo), "--model", "scripted:look-then-submit", "--tasks", "2",
                 "--features", "1", "--group", "2")
    status = {s["asset"]: s["status"] for s in other["stages"]}
    assert status["tasks"] == "cached" and status["environments"] == "cached"
    assert status["rollouts"] == "success" and status["rewards"] == "success"
    assert other["policy"] == "scripted:look-then-submit"
    assert other["rollouts"] == 2 * n_tasks


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.mark.timeout(900)
def test_edit_reruns_what_is_downstream_and_nothing_else(tmp_path):
    repo = _project(tmp_path)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    args = (str(repo), "--model", "scripted:submit", "--tasks", "1", "--features", "0",
            "--group", "1")

    def statuses(out):
        return {s["asset"]: s["status"] for s in out["stages"]}

    first = _run(tmp_path, *args)
    assert statuses(first) == dict.fromkeys(STAGES, "success")
    # Validation started from the build's baseline runs (read from the ledger) and ran only
    # the full runs missing to its k=3, caching the topped-up baseline on disk.
    from codemill.core.config import Settings
    from codemill.core.records import TestReport
    from codemill.factory.lookup import baseline_reports
    from codemill.store.reader import LedgerReader

    home = tmp_path / "home"
    with LedgerReader.open(Settings(home=home)) as reader:
        built = baseline_reports(reader, first["env_id"])
    cache = home / "cache" / "baseline" / f"{first['env_id']}.json"
    cached = [TestReport.model_validate(r) for r in json.loads(cache.read_text())]
    assert 1 <= len(built) < 3 and len(cached) == 3 and cached[:len(built)] == built
    assert statuses(_run(tmp_path, *args)) == dict.fromkeys(STAGES, "cached")

    # An uncommitted edit to one source file: the working tree is the source.
    (repo / "mathx.py").write_text(MODULE.replace('"""Small helpers of mathx."""',
                                                  '"""Small helpers, edited."""'))
    edited = _run(tmp_path, *args)
    assert statuses(edited) == dict.fromkeys(STAGES, "success"), edited["stages"]
    why = {s["asset"]: s["reason"] for s in edited["stages"]}
    assert "config changed" in why["snapshots"]  # the snapshot the run resolved to
    for stage in STAGES[1:]:
        assert "upstream changed" in why[stage], why
    assert edited["env_id"] != first["env_id"] and edited["env_status"] == "usable"
    assert edited["rollouts"] >= 1

    assert statuses(_run(tmp_path, *args)) == dict.fromkeys(STAGES, "cached")
    # Undo the edit: the content is the first run's again, and so is every key.
    (repo / "mathx.py").write_text(MODULE)
    back = _run(tmp_path, *args)
    assert statuses(back) == dict.fromkeys(STAGES, "cached")
    assert back["env_id"] == first["env_id"]
