"""History on a mirror: first-parent commits, changed files, split diffs, tree export."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from codemill.repos.gitcmd import ensure_mirror, resolve_commit
from codemill.repos.history import (
    changed_files,
    commit_diff,
    export_tree,
    is_test_path,
    list_commits,
)

from .conftest import BINARY, ODD_NAME, FixtureRepo


@pytest.fixture(scope="module")
def mirror(fixture_repo: FixtureRepo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_mirror(str(fixture_repo.path), tmp_path_factory.mktemp("home"))


def test_list_commits_first_parent_newest_first(fixture_repo: FixtureRepo, mirror: Path):
    commits = list_commits(mirror)
    assert [c.sha for c in commits] == fixture_repo.shas[::-1]
    assert [c.date for c in commits] == fixture_repo.dates[::-1]
    assert commits[-1].parent is None and commits[0].parent == fixture_repo.shas[-2]
    add_sub = commits[2]
    assert (add_sub.subject, add_sub.body) == ("add sub", "With a body line.")
    assert [c.sha for c in list_commits(mirror, fixture_repo.shas[1], limit=1)] == [
        fixture_repo.shas[1]]


def test_changed_files_with_status_and_renames(fixture_repo: FixtureRepo, mirror: Path):
    root, add_sub, rename, drop = fixture_repo.shas
    first = {c.path: c.status for c in changed_files(mirror, root)}
    assert first["data.bin"] == "A" and os.fsdecode(ODD_NAME) in first
    assert {(c.status, c.path) for c in changed_files(mirror, add_sub)} == {
        ("M", "src/pkg/core.py"), ("M", "tests/test_core.py")}
    renamed = [c for c in changed_files(mirror, rename) if c.status == "R"]
    assert [(c.old_path, c.path) for c in renamed] == [("src/pkg/core.py", "src/pkg/engine.py")]
    assert [(c.status, c.path) for c in changed_files(mirror, drop)] == [("D", "data.bin")]


def test_commit_diff_splits_tests_from_source(fixture_repo: FixtureRepo, mirror: Path,
                                              tmp_path: Path):
    root, add_sub, _, drop = fixture_repo.shas
    diff = commit_diff(mirror, add_sub)
    assert diff.parent == root and not diff.lossy
    assert "tests/test_core.py" in diff.test_patch and "src/pkg" not in diff.test_patch
    assert "+def sub(a, b):" in diff.source_patch and "tests/" not in diff.source_patch
    # The two halves apply, in either order, on the parent tree and give the child tree.
    work = tmp_path / "work"
    export_tree(mirror, root, work)
    for patch in (diff.test_patch, diff.source_patch):
        subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=work, check=True)
    assert "def sub" in (work / "src/pkg/core.py").read_text()
    binary = commit_diff(mirror, drop)
    assert "GIT binary patch" in binary.source_patch and binary.test_patch == ""


def test_export_tree_writes_a_commit_without_git(fixture_repo: FixtureRepo, mirror: Path,
                                                 tmp_path: Path):
    dest = tmp_path / "out"
    skipped = export_tree(mirror, resolve_commit(mirror, "HEAD~1"), dest)
    assert skipped == 0 and not (dest / ".git").exists()
    assert (dest / "data.bin").read_bytes() == BINARY
    assert os.readlink(dest / "link.py") == "src/pkg/engine.py"
    assert (dest / "run.sh").stat().st_mode & 0o100
    assert not (dest / "src/pkg/core.py").exists()


@pytest.mark.parametrize(("path", "expected"), [
    ("tests/test_core.py", True), ("pkg/tests/helpers.py", True), ("test/data/x.json", True),
    ("testing/util.py", True), ("src/test_thing.py", True), ("src/thing_test.py", True),
    ("conftest.py", True), ("app/tests.py", True), ("test.py", True), ("pkg/test.py", True),
    ("src/pkg/core.py", False), ("src/testing.py", False),
    ("src/testutils.py", False), ("docs/test_plan.md", False), ("latest/x.py", False),
])
def test_is_test_path(path: str, expected: bool):
    assert is_test_path(path) is expected
