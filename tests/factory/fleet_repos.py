"""Small local git repositories for fleet runs: Python projects with pytest suites, and one
that is broken (its suite cannot be collected), built fresh by each test that needs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODULE = '''"""Small helpers of {name}."""


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

TESTS = '''from {name} import clamp, mean


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10


def test_mean():
    assert mean([1, 2, 3]) == 2
'''

BROKEN_TESTS = '''from {name} import no_such_function


def test_it():
    assert no_such_function() == 1
'''

BARREN_TESTS = '''import {name}


def test_imports():
    assert callable({name}.clamp)
'''
"""Passes, but runs no line of a function: synthesis has nothing covered to mutate."""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


def make_repo(root: Path, name: str, *, broken: bool = False, barren: bool = False) -> Path:
    """A committed git repository ``root/name`` holding module ``name`` and its tests; a
    broken one's test file imports a name the module lacks, so collection fails; a barren
    one's test passes without calling a function, so no task can be made from it."""
    repo = root / name
    (repo / "tests").mkdir(parents=True)
    (repo / f"{name}.py").write_text(MODULE.format(name=name))
    (repo / "tests" / f"test_{name}.py").write_text(
        (BROKEN_TESTS if broken else BARREN_TESTS if barren else TESTS).format(name=name))
    (repo / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1"\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\n')
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    return repo


def sources_file(root: Path, repos: list[Path]) -> Path:
    path = root / "sources.txt"
    path.write_text("# a fleet of toy repositories\n\n"
                    + "".join(f"{r}\n" for r in repos))
    return path


def run_cli(cwd: Path, env: dict[str, str], *args: str, timeout: int = 600
            ) -> subprocess.CompletedProcess[str]:
    """``codemill run --sources ... --json`` (or any ``run`` arguments) in a subprocess."""
    return subprocess.run([sys.executable, "-m", "codemill.cli.main", "run", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", **env})


def fleet_json(out: subprocess.CompletedProcess[str]) -> dict:
    assert out.stdout.strip(), out.stderr[-3000:]
    return json.loads(out.stdout)


def home_env(home: Path, **extra: str) -> dict[str, str]:
    env = {"CODEMILL_HOME": str(home), **extra}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env
