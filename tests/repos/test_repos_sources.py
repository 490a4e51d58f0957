"""Snapshots from local dirs, working trees and git revisions; the content-addressed store."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from codemill.core.errors import SourceError
from codemill.core.records import SourceKind
from codemill.repos.snapshots import (
    export_clean_repo,
    new_staging,
    remove_tree,
    store_staging,
)
from codemill.repos.sources import snapshot_source, split_rev

from .conftest import BINARY, ODD_NAME, FixtureRepo


def _tree(path: Path) -> dict[bytes, bytes]:
    """Every file (content) and link (``-> target``) under ``path``, by relative bytes path."""
    out = {}
    base = os.fsencode(path)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, base)
            if os.path.islink(p):
                out[rel] = b"-> " + os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as fh:
                    out[rel] = fh.read()
    return out


def test_git_revisions_snapshot_their_trees(fixture_repo: FixtureRepo, tmp_path: Path):
    home = tmp_path / "home"
    first = snapshot_source(f"{fixture_repo.path}@{fixture_repo.shas[0]}", home)
    assert first.source_kind == SourceKind.GIT and first.commit == fixture_repo.shas[0]
    assert first.created_at == fixture_repo.dates[0]
    tree = _tree(Path(first.path))
    assert tree[b"data.bin"] == BINARY
    assert tree[ODD_NAME] == b"odd\n"
    assert tree[b"link.py"] == b"-> src/pkg/core.py"
    assert b".git" not in tree and b".gitignore" in tree
    assert first.n_files == len(tree) == 8 and first.n_skipped == 0
    assert first.n_bytes == sum(len(v) for k, v in tree.items() if k != b"link.py")
    assert os.stat(Path(first.path) / "run.sh").st_mode & 0o111

    head = snapshot_source(f"{fixture_repo.path}@main", home)
    assert head.commit == fixture_repo.shas[-1] and head.snapshot_id != first.snapshot_id
    assert b"src/pkg/engine.py" in _tree(Path(head.path))
    again = snapshot_source(f"{fixture_repo.path}@HEAD~3", home)
    assert again.snapshot_id == first.snapshot_id and again.path == first.path


def test_same_tree_same_id_across_sources(fixture_repo: FixtureRepo, tmp_path: Path):
    home = tmp_path / "home"
    from_git = snapshot_source(f"{fixture_repo.path}@HEAD", home)
    # The clean working tree holds the same files as HEAD.
    (fixture_repo.path / "ignored.log").write_text("ignored by .gitignore\n")
    try:
        work = snapshot_source(str(fixture_repo.path), home)
    finally:
        (fixture_repo.path / "ignored.log").unlink()
    assert work.source_kind == SourceKind.LOCAL and work.commit is None
    assert work.snapshot_id == from_git.snapshot_id
    # A plain copy without .git, plus junk that plain-dir snapshots leave out.
    plain = tmp_path / "plain"
    shutil.copytree(fixture_repo.path, plain, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    for junk in (".venv/bin/python", "src/pkg/__pycache__/core.cpython-311.pyc",
                 ".tox/x", "build/lib/x.py", "pkg.egg-info/PKG-INFO", ".git/HEAD"):
        (plain / junk).parent.mkdir(parents=True, exist_ok=True)
        (plain / junk).write_text("junk")
    (plain / "empty_dir").mkdir()
    assert snapshot_source(str(plain), home).snapshot_id == from_git.snapshot_id
    # One changed byte, or a changed exec bit, is a new tree.
    (plain / "src/pkg/engine.py").write_text("def add(a, b):\n    return a + b + 0\n")
    changed = snapshot_source(str(plain), home)
    assert changed.snapshot_id != from_git.snapshot_id
    (plain / "run.sh").chmod(0o644)
    assert snapshot_source(str(plain), home).snapshot_id != changed.snapshot_id
    ids = {p.name for p in (home / "snapshots").iterdir()}
    assert ids == {from_git.snapshot_id, changed.snapshot_id,
                   snapshot_source(str(plain), home).snapshot_id}


def test_stored_trees_are_sealed_and_world_readable(fixture_repo: FixtureRepo, tmp_path: Path):
    snap = snapshot_source(f"{fixture_repo.path}@HEAD", tmp_path / "home")
    root = Path(snap.path)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISLNK(st.st_mode):
                continue
            assert st.st_mode & 0o222 == 0, (dirpath, name)  # read-only for everyone
            assert st.st_mode & stat.S_IROTH
            if stat.S_ISDIR(st.st_mode):
                assert st.st_mode & stat.S_IXOTH
    assert os.stat(root.parent).st_mode & stat.S_IXOTH
    remove_tree(root)
    assert not root.exists()


def test_the_store_never_takes_links_out_or_git_dirs(tmp_path: Path):
    home = tmp_path / "home"
    staging = new_staging(home)
    (staging / "a.py").write_text("x = 1\n")
    (staging / "self").symlink_to(".")
    (staging / "escape").symlink_to("self/..")  # inside on paper, outside for real
    (staging / "abs").symlink_to("/etc/passwd")
    (staging / "ok").symlink_to("a.py")
    (staging / "sub/.git").mkdir(parents=True)
    (staging / "sub/.git/config").write_text("[core]\nfsmonitor = touch /tmp/pwned\n")
    os.mkfifo(staging / "pipe")
    stored = store_staging(staging, home)
    names = sorted(p.name for p in stored.path.iterdir())
    assert names == ["a.py", "ok", "self"]
    assert stored.n_skipped == 4 and stored.n_files == 3
    assert not staging.exists()


def test_export_clean_repo_is_one_deterministic_commit(fixture_repo: FixtureRepo, tmp_path: Path):
    snap = snapshot_source(f"{fixture_repo.path}@HEAD", tmp_path / "home")
    shas = [export_clean_repo(Path(snap.path), tmp_path / f"work{i}") for i in range(2)]
    assert shas[0] == shas[1]
    log = subprocess.run(["git", "-C", str(tmp_path / "work0"), "log", "--format=%H"],
                         capture_output=True, check=True).stdout.decode().split()
    assert log == [shas[0]]
    status = subprocess.run(["git", "-C", str(tmp_path / "work0"), "status", "--porcelain"],
                            capture_output=True, check=True).stdout
    assert status == b""
    assert (tmp_path / "work0" / "run.sh").stat().st_mode & 0o200  # writable copy


def test_source_errors_are_one_clear_line(fixture_repo: FixtureRepo, tmp_path: Path):
    home = tmp_path / "home"
    cases = {
        str(tmp_path / "missing"): "no such path",
        f"{fixture_repo.path}@no-such-branch": "unknown revision",
        f"{fixture_repo.path}@--upload-pack=touch": "bad revision",
        "pypi:not a name": "expected pypi:NAME",
    }
    for source, message in cases.items():
        with pytest.raises(SourceError, match=message) as info:
            snapshot_source(source, home)
        assert "\n" not in str(info.value)
    empty = tmp_path / "empty"
    (empty / "only_dirs").mkdir(parents=True)
    with pytest.raises(SourceError, match="no files"):
        snapshot_source(str(empty), home)
    assert [p.name for p in (home / "snapshots").iterdir()] == []  # no staging left behind


def test_split_rev_keeps_user_parts_of_urls():
    assert split_rev("https://github.com/o/r.git@v1.0") == ("https://github.com/o/r.git", "v1.0")
    assert split_rev("https://u@host.org/o/r") == ("https://u@host.org/o/r", None)
    assert split_rev("git@github.com:o/r.git") == ("git@github.com:o/r.git", None)
    assert split_rev("git@github.com:o/r.git@feature/x") == ("git@github.com:o/r.git",
                                                             "feature/x")
    assert split_rev("some/dir@abc123") == ("some/dir", "abc123")


def test_git_urls_and_hostile_repo_config(fixture_repo: FixtureRepo, tmp_path: Path):
    home = tmp_path / "home"
    hostile = tmp_path / "hostile"
    shutil.copytree(fixture_repo.path, hostile, symlinks=True)
    marker = tmp_path / "pwned"
    with open(hostile / ".git/config", "a") as fh:
        fh.write(f"[core]\n\tfsmonitor = touch {marker}\n\thooksPath = {tmp_path}/hooks\n"
                 f"[uploadpack]\n\tpackObjectsHook = touch {marker}\n")
    (tmp_path / "hooks").mkdir()
    for hook in ("post-checkout", "reference-transaction", "post-index-change"):
        (tmp_path / "hooks" / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (tmp_path / "hooks" / hook).chmod(0o755)
    work = snapshot_source(str(hostile), home)
    by_url = snapshot_source(f"file://{hostile}@{fixture_repo.shas[-1]}", home)
    assert by_url.source_kind == SourceKind.GIT and by_url.snapshot_id == work.snapshot_id
    assert by_url.name == "hostile" and by_url.created_at == fixture_repo.dates[-1]
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(fixture_repo.path), str(bare)],
                   check=True)
    from_bare = snapshot_source(str(bare), home)
    assert from_bare.commit == fixture_repo.shas[-1] and from_bare.name == "bare"
    assert from_bare.snapshot_id == work.snapshot_id
    assert not marker.exists()


def test_a_git_snapshot_knows_the_version_of_its_nearest_tag(tmp_path: Path,
                                                             fixture_repo: FixtureRepo):
    """A version-from-git tool reads the checkout's tags; a snapshot has no ``.git``, so
    the builder pretends the nearest tag's version (pluggy built as 0.0.0 could not be
    paired with the pytest that needs pluggy >= 1)."""
    from codemill.repos.sources import tag_version

    home = tmp_path / "home"
    bare = tmp_path / "tagged.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(fixture_repo.path), str(bare)],
                   check=True)
    subprocess.run(["git", "--git-dir", str(bare), "tag", "pkg-v1.4.2", fixture_repo.shas[1]],
                   check=True)
    newest = snapshot_source(f"{bare}@{fixture_repo.shas[-1]}", home)
    assert newest.source_kind == SourceKind.GIT
    assert tag_version(newest, home) == "1.4.2"  # the nearest tag below the commit
    first = snapshot_source(f"{bare}@{fixture_repo.shas[0]}", home)
    assert tag_version(first, home) == ""  # the tag is not reachable from the first commit
    assert tag_version(snapshot_source(str(fixture_repo.path), home), home) == ""  # not git
