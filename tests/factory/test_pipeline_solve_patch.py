"""`codemill solve --mode patch` end to end: the repository's failing test runs under
coverage in the sandbox, the model answers once with a line edit, the diff is applied."""

import json
import subprocess
import sys

import pytest

from codemill.core.config import load_settings
from codemill.core.errors import FactoryError
from codemill.factory.solve import solve
from codemill.store.ledger import Ledger

from .test_pipeline_solve import _repo

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_solve_in_patch_mode_then_applies(tmp_path):
    repo = _repo(tmp_path / "repo")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["2:     return a + b"]))
    settings = load_settings(None, home=tmp_path / "home")

    result = solve(str(repo), "add() returns the wrong sum", settings,
                   model=f"scripted:{script}", mode="patch")

    traj = result.trajectory
    assert traj.stop_reason.value == "submitted" and len(traj.steps) == 1
    prompt = traj.task_prompt
    assert "add() returns the wrong sum" in prompt and "FAILED tests/test_calc.py::test_add" \
        in prompt and "calc.py\n1: def add(a, b):\n2:     return a - b" in prompt
    assert "+    return a + b" in result.diff
    assert "a - b" in (repo / "calc.py").read_text(), "solve must not touch the user's files"
    with Ledger.open(settings) as ledger:
        assert [r["rollout_id"] for r in ledger.read("rollouts").to_pylist()] == [
            traj.rollout_id]
        assert len(ledger.read("steps")) == 1

    out = subprocess.run(
        [sys.executable, "-m", "codemill.cli.main", "solve", "--repo", str(repo), "--mode",
         "patch", "--model", f"scripted:{script}", "--apply", "--json", "fix add"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"CODEMILL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["applied"] and doc["mode"] == "patch" and doc["turns"] == 1
    assert "a + b" in (repo / "calc.py").read_text()
    # now every test passes: patch mode has nothing to show, and says so
    with pytest.raises(FactoryError, match="needs a failing test"):
        solve(str(repo), "again", settings, model=f"scripted:{script}", mode="patch")
