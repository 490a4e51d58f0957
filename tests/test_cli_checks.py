"""Bad options stop ``codemill run`` before any work starts, through the real CLI.

A user who mistypes a model spec must learn it in a second, from one line naming the option,
not after a build, task validation and a dozen masked rollouts. "No work" is checked on disk:
the run leaves no codemill home (no ledger, no snapshot, no environment) behind.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def codemill(tmp_path, *args):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    env = {**os.environ, "CODEMILL_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-c", "from codemill.cli.main import main; main()",
                           *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(("args", "named"), [
    (["--model", "nosuch:model"], "--model nosuch:model: model spec 'nosuch:model': unknown kind"),
    (["--model", "ckpt:abc"], "--model ckpt:abc: no finished checkpoint 'abc'"),
    (["--model", "scripted:nope"], "--model scripted:nope: scripted model 'nope'"),
    (["--model", "transformers:/no/such/dir"], "--model transformers:/no/such/dir: no model"),
    (["--group", "0"], "--group 0: must be at least 1"),
    (["--max-turns", "0"], "--max-turns 0: must be at least 1"),
])
def test_bad_option_is_one_line_before_any_work(tmp_path, args, named):
    out = codemill(tmp_path, "run", str(tmp_path / "repo"), *args)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}"), out.stderr
    assert out.stdout == ""
    assert not (tmp_path / "home").exists()  # nothing resolved, built or recorded


def test_a_good_spec_passes_the_check(tmp_path):
    # --plan stops after resolving the source: the check let the spec through.
    out = codemill(tmp_path, "run", str(tmp_path / "repo"), "--model", "scripted:submit",
                   "--plan")
    assert out.returncode == 0, out.stderr
    assert "environments" in out.stdout


@pytest.mark.parametrize("command", [["solve", "--repo", "repo", "fix it"], ["rollout", "all"]])
def test_solve_and_rollout_check_the_model_first(tmp_path, command):
    out = codemill(tmp_path, *command, "--model", "nosuch:model")
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: --model nosuch:model: model spec 'nosuch:model': unknown kind 'nosuch' "
        "(openai, scripted, transformers, smollm2)"]
    assert not (tmp_path / "home").exists()
