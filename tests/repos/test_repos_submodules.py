"""Submodules fetched at snapshot time: local git repositories made by the test, one whose
submodule can be cloned and one whose submodule URL leads nowhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codemill.core.errors import SourceError
from codemill.repos.snapshots import snapshots_root
from codemill.repos.sources import snapshot_source
from codemill.repos.submodules import missing_submodules, parse_gitmodules, resolve_url

from .conftest import _git, _write


def _data_repo(root: Path) -> Path:
    repo = root / "data-repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _write(repo, "values.txt", "1\n2\n3\n")
    _write(repo, "nested/more.txt", "4\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "data")
    return repo


def _super_repo(root: Path, sub_url: str) -> Path:
    """A project whose ``tests/data`` is a submodule at ``sub_url`` (git itself records it;
    the URL in .gitmodules is then set to ``sub_url`` as given, relative or absolute)."""
    repo = root / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    _write(repo, "tests/test_values.py", "def test_x():\n    assert True\n")
    _git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q",
         str(root / "data-repo"), "tests/data")
    _git(repo, "config", "-f", ".gitmodules", "submodule.tests/data.url", sub_url)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "project with a data submodule")
    return repo


def test_a_reachable_submodule_is_fetched_into_the_snapshot(tmp_path: Path):
    _data_repo(tmp_path)
    project = _super_repo(tmp_path, "../data-repo")  # relative to the project, as git does
    home = tmp_path / "home"
    snap = snapshot_source(f"{project}@HEAD", home)
    tree = Path(snap.path)
    assert (tree / "tests/data/values.txt").read_text() == "1\n2\n3\n"
    assert (tree / "tests/data/nested/more.txt").is_file()
    assert not (tree / "tests/data/.git").exists()
    assert missing_submodules(tree) == []

    # A local work tree cloned without its submodules gets them fetched too.
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not any((clone / "tests/data").iterdir())
    local = snapshot_source(str(clone), home)
    assert (Path(local.path) / "tests/data/values.txt").is_file()
    assert local.snapshot_id == snap.snapshot_id  # the same tree as from the repository


def test_an_unreachable_submodule_is_left_out_and_named(tmp_path: Path):
    _data_repo(tmp_path)
    project = _super_repo(tmp_path, "../data-repo")
    shutil.move(tmp_path / "data-repo", tmp_path / "gone")  # the URL now leads nowhere
    said: list[str] = []
    snap = snapshot_source(f"{project}@HEAD", tmp_path / "home", progress=said.append)
    tree = Path(snap.path)
    assert (tree / "tests/test_values.py").is_file() and not (tree / "tests/data").exists()
    assert any(m.startswith("submodule tests/data not fetched") for m in said), said
    [missing] = missing_submodules(tree)
    assert missing.path == "tests/data" and missing.url == "../data-repo"
    # nothing half-written is left behind in the store
    assert not [p for p in snapshots_root(tmp_path / "home").iterdir()
                if p.name.startswith(".staging-")]


def test_submodule_urls_from_the_network_may_not_name_local_paths():
    assert resolve_url("../lib.git", "https://example.org/o/proj.git") == \
        "https://example.org/o/lib.git"
    assert resolve_url("./sub", "/srv/proj") == "/srv/proj/sub"
    assert resolve_url("../sub", "/srv/proj") == "/srv/sub"
    for bad, parent in (("/etc", "https://example.org/o/p"), ("file:///etc", "git@h:o/p"),
                        ("-uhack", "/srv/proj"), ("", "/srv/proj")):
        with pytest.raises(SourceError):
            resolve_url(bad, parent)


def test_gitmodules_is_read_by_git_and_includes_are_ignored(tmp_path: Path):
    (tmp_path / "inc").write_text('[submodule "x"]\n\tpath = injected\n\turl = /etc\n')
    text = (f'[include]\n\tpath = {tmp_path / "inc"}\n'
            '[submodule "a"]\n\tpath = lib/a\n\turl = https://example.org/a.git\n').encode()
    subs = parse_gitmodules(text)
    assert [(s.path, s.url) for s in subs] == [("lib/a", "https://example.org/a.git")]
