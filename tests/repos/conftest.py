"""A real git repository with a small, known history, made fresh for each test module."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ODD_NAME = b"caf\xe9.txt"  # latin-1 bytes: not valid UTF-8
BINARY = bytes(range(256)) * 8


@dataclass
class FixtureRepo:
    path: Path
    shas: list[str]  # oldest first
    dates: list[str]


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    out = subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com",
         "-c", "init.defaultBranch=main", *args],
        cwd=repo, env=env, check=True, capture_output=True,
    )
    return out.stdout.decode().strip()


def _write(repo: Path, rel: str, text: str) -> None:
    p = repo / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def make_repo(root: Path) -> FixtureRepo:
    repo = root / "proj"
    repo.mkdir()
    _git(repo, "init", "-q")
    _write(repo, "src/pkg/__init__.py", "")
    _write(repo, "src/pkg/core.py", "def add(a, b):\n    return a + b\n")
    _write(repo, "tests/test_core.py", "from pkg.core import add\n\n"
           "def test_add():\n    assert add(1, 2) == 3\n")
    _write(repo, ".gitignore", "*.log\n")
    (repo / "data.bin").write_bytes(BINARY)
    with open(os.path.join(os.fsencode(repo), ODD_NAME), "wb") as fh:
        fh.write(b"odd\n")
    _write(repo, "run.sh", "#!/bin/sh\necho hi\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link.py").symlink_to("src/pkg/core.py")
    dates = ["2021-03-01T10:00:00+00:00", "2021-03-02T10:00:00+00:00",
             "2021-03-03T10:00:00+00:00", "2021-03-04T10:00:00+00:00"]
    shas = []
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial", date=dates[0])
    shas.append(_git(repo, "rev-parse", "HEAD"))
    _write(repo, "src/pkg/core.py", "def add(a, b):\n    return b + a\n\n"
           "def sub(a, b):\n    return a - b\n")
    _write(repo, "tests/test_core.py", "from pkg.core import add, sub\n\n"
           "def test_add():\n    assert add(1, 2) == 3\n\n"
           "def test_sub():\n    assert sub(3, 2) == 1\n")
    _git(repo, "commit", "-q", "-am", "add sub\n\nWith a body line.", date=dates[1])
    shas.append(_git(repo, "rev-parse", "HEAD"))
    _git(repo, "mv", "src/pkg/core.py", "src/pkg/engine.py")
    (repo / "link.py").unlink()
    (repo / "link.py").symlink_to("src/pkg/engine.py")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "rename core to engine", date=dates[2])
    shas.append(_git(repo, "rev-parse", "HEAD"))
    _git(repo, "rm", "-q", "data.bin")
    _git(repo, "commit", "-q", "-m", "drop data", date=dates[3])
    shas.append(_git(repo, "rev-parse", "HEAD"))
    return FixtureRepo(repo, shas, dates)


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> FixtureRepo:
    return make_repo(tmp_path_factory.mktemp("gitrepo"))
