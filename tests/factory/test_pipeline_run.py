"""`codemill run` end to end on a small real project: a real build, synthesized and
validated tasks, graded rollouts, the summary; then a rerun that is fully cached and a
policy change that reruns only the rollouts."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.network, pytest.mark.slow]

MODULE = '''"""Small helpers."""


def clamp(x, lo, hi):
    """Clamp x into [lo, hi]."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def mean(values):
    """Arithmetic mean of a non-empty list."""
    total = 0
    for v in values:
        total += v
    return total / len(values)
'''

TESTS = '''from mathx import clamp, mean


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10


def test_mean():
    assert mean([1, 2, 3]) == 2
'''


def _run(tmp_path, *args):
    out = subprocess.run(
        [sys.executable, "-m", "codemill.cli.main", "run", *args, "--json"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={"CODEMILL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_run_end_to_end_then_cached_then_new_policy(tmp_path):
    repo = tmp_path / "mathx"
    (repo / "tests").mkdir(parents=True)
    (repo / "mathx.py").write_text(MODULE)
    (repo / "tests" / "test_mathx.py").write_text(TESTS)
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "mathx"\nversion = "0.1"\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\n')

    first = _run(tmp_path, str(repo), "--model", "scripted:submit", "--tasks", "2",
                 "--features", "1", "--group", "2")
    status = {s["asset"]: s["status"] for s in first["stages"]}
    assert status == dict.fromkeys(("snapshots", "environments", "tasks", "rollouts"),
                                   "success")
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
    assert status["rollouts"] == "success"
    assert other["policy"] == "scripted:look-then-submit"
    assert other["rollouts"] == 2 * n_tasks
