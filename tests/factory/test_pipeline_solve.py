"""`codemill solve` end to end: real snapshot, real environment build in the sandbox,
the real agent loop with a scripted policy, the diff, `--apply`, and the ledger rows."""

import json
import subprocess
import sys

import pytest

from codemill.core.config import load_settings
from codemill.factory.solve import solve
from codemill.store.ledger import Ledger

pytestmark = [pytest.mark.network, pytest.mark.slow]

SCRIPT = [
    "```bash\ncat calc.py\n```",
    '<tool name="edit">{"path": "calc.py", "old": "a - b", "new": "a + b"}</tool>',
    "```bash\n/env/bin/python -m pytest -q\n```",
    '<tool name="submit"></tool>',
]


def _repo(path):
    (path / "tests").mkdir(parents=True)
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (path / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    (path / "pyproject.toml").write_text(
        '[project]\nname = "calc"\nversion = "0.1"\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\n')
    return path


def test_solve_fixes_a_bug_without_touching_the_repo_then_applies(tmp_path):
    repo = _repo(tmp_path / "repo")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    settings = load_settings(None, home=tmp_path / "home")

    result = solve(str(repo), "add() returns the wrong sum", settings,
                   model=f"scripted:{script}")

    assert result.trajectory.stop_reason.value == "submitted"
    assert "-    return a - b" in result.diff and "+    return a + b" in result.diff
    assert "a - b" in (repo / "calc.py").read_text(), "solve must not touch the user's files"
    with Ledger.open(settings) as ledger:
        rollouts = ledger.read("rollouts").to_pylist()
        assert [r["rollout_id"] for r in rollouts] == [result.trajectory.rollout_id]
        assert len(ledger.read("steps")) == 4
        baseline = ledger.read("test_results").to_pylist()
        assert baseline and {r["outcome"] for r in baseline} == {"failed"}
        assert {r["env_id"] for r in baseline} == {result.env.env_id}

    # The CLI with --apply changes the user's file; the environment is reused (no rebuild).
    out = subprocess.run(
        [sys.executable, "-m", "codemill.cli.main", "solve", "--repo", str(repo),
         "--model", f"scripted:{script}", "--apply", "--json", "fix add"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"CODEMILL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["applied"] and doc["env_id"] == result.env.env_id
    assert "a + b" in (repo / "calc.py").read_text()
