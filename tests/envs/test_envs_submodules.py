"""A test module that reads a submodule's data at collection: the builder gets a usable
environment when the submodule can be fetched, and when it cannot, names the tests that need
it and keeps the environment usable on the rest of the suite. Real git repositories made by
the test, real bubblewrap sandboxes, the real package index (warm cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codemill.core.config import Settings
from codemill.core.records import EnvStatus
from codemill.envs.builder.build import BuildConfig, build_env
from codemill.repos.sources import snapshot_source


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com",
                    "-c", "init.defaultBranch=main", *args], cwd=repo, env=env, check=True,
                   capture_output=True)


def _write(repo: Path, rel: str, text: str) -> None:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)

pytestmark = [pytest.mark.slow, pytest.mark.network]

QUICK = BuildConfig(baseline_runs=1, fix_missing_imports=False)
READS_DATA = ("from pathlib import Path\n\n"
              "VALUES = (Path(__file__).parent / 'data' / 'values.txt').read_text().split()\n\n"
              "def test_values():\n    assert VALUES == ['1', '2', '3']\n")


def _project(root: Path) -> Path:
    data = root / "data-repo"
    data.mkdir(parents=True)
    _git(data, "init", "-q")
    _write(data, "values.txt", "1\n2\n3\n")
    _git(data, "add", ".")
    _git(data, "commit", "-q", "-m", "data")
    repo = root / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    _write(repo, "tests/test_values.py", READS_DATA)
    _write(repo, "tests/test_plain.py", "def test_plain():\n    assert 1 + 1 == 2\n")
    _git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(data),
         "tests/data")
    _git(repo, "config", "-f", ".gitmodules", "submodule.tests/data.url", "../data-repo")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "tests read a data submodule")
    return repo


def test_a_fetched_submodule_makes_its_tests_usable(tmp_path: Path, build_home: Path,
                                                     settings: Settings) -> None:
    snap = snapshot_source(f"{_project(tmp_path)}@HEAD", build_home)
    result = build_env(snap, build_home, settings, config=QUICK)
    env = result.env
    assert env.status == EnvStatus.USABLE, (env.reason, result.log[-2000:])
    assert (env.n_tests, env.n_passing) == (2, 2) and env.reason == ""


def test_an_unfetchable_submodule_marks_only_its_tests_unusable(
        tmp_path: Path, build_home: Path, settings: Settings) -> None:
    project = _project(tmp_path)
    shutil.rmtree(tmp_path / "data-repo")  # the submodule's URL now leads nowhere
    snap = snapshot_source(f"{project}@HEAD", build_home)
    result = build_env(snap, build_home, settings, config=QUICK)
    env = result.env
    assert env.status == EnvStatus.USABLE, (env.reason, result.log[-2000:])
    assert env.n_passing == 1 and "tests/test_plain.py::test_plain" in {
        r.node_id for r in result.reports[0].results if r.outcome.value == "passed"}
    assert env.reason.startswith("1 test needs submodule tests/data (../data-repo, not "
                                 "fetched): tests/test_values.py"), env.reason
