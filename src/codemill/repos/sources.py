"""Taking a source in: ``snapshot_source(source, home) -> RepoSnapshot``.

Source forms, tried in this order:

- ``pypi:NAME`` or ``pypi:NAME==VERSION``: the release's sdist (see ``pypi.py``).
- ``PATH_OR_URL@REV``: a git repository (local path or URL) at a commit; the repository
  is mirrored into the cache first and read from the mirror (see ``gitcmd.py``), and its
  submodules are fetched where they can be (``submodules.py``; the ones that cannot stay
  absent, and the builder names the tests that needed them).
- a local git working tree: tracked plus untracked-not-ignored files as they are on disk;
  a submodule's files as checked out, or fetched when it is not;
  a local bare repository: its HEAD.
- a local plain directory: every file except VCS dirs, virtualenvs, caches and build output.
- a local ``.tar.gz``/``.zip`` archive: extracted safely.
- a git URL (``https://``, ``ssh://``, ``git://``, ``file://``, ``user@host:path``) at HEAD.

Every failure is a ``SourceError`` with one line that names the source.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from codemill.core.errors import SourceError
from codemill.core.records import RepoSnapshot, SourceKind
from codemill.repos import history, pypi, submodules
from codemill.repos.archives import extract_archive
from codemill.repos.gitcmd import ensure_mirror, git, has_commit, mirror_path, resolve_commit
from codemill.repos.snapshots import (
    StoredTree,
    copy_files,
    new_staging,
    remove_tree,
    store_staging,
)

Progress = Callable[[str], None]
_log = logging.getLogger(__name__)

# Left out of plain-directory snapshots at any depth (names or globs) ...
EXCLUDED_ANYWHERE = (".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".tox", ".nox",
                     "__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                     "*.egg-info", "node_modules", ".codemill")
# ... and only at the top, since a package may well have a ``build`` module.
EXCLUDED_AT_TOP = ("build", "dist")
_URL_PREFIXES = ("http://", "https://", "ssh://", "git://", "file://", "git+ssh://")


def snapshot_source(source: str, home: Path, *, progress: Progress | None = None) -> RepoSnapshot:
    """Snapshot ``source`` into ``<home>/snapshots/`` and describe it."""
    say = progress or (lambda _msg: None)
    snap = _snapshot(source, Path(home).absolute(), say)
    say(f"snapshot {snap.snapshot_id[:12]}: {snap.n_files} files, {snap.n_bytes} bytes")
    return snap


def _snapshot(source: str, home: Path, say: Progress) -> RepoSnapshot:
    if source.startswith("pypi:"):
        return _from_pypi(source, home, say)
    location, rev = split_rev(source)
    local = Path(location).expanduser()
    if rev is None and local.is_dir() and not _is_bare_repo(local):
        return _from_local_dir(source, local, home, say)
    if rev is None and local.is_file():
        staging = new_staging(home)
        say(f"extracting {local.name}")
        try:
            skipped = extract_archive(local, staging)
        except BaseException:
            remove_tree(staging)
            raise
        return _record(source, SourceKind.LOCAL, store_staging(staging, home, skipped=skipped),
                       name=_archive_stem(local.name))
    if local.exists():
        url = str(local.resolve())
    elif _looks_like_url(location):
        url = location
    else:
        raise SourceError(f"{source}: no such path, and not a git URL or pypi:NAME")
    return _from_git(source, url, rev or "HEAD", home, say)


def split_rev(source: str) -> tuple[str, str | None]:
    """``"repo@v1.2"`` -> ``("repo", "v1.2")``. An ``@`` that belongs to the URL's user
    part (``git@host:o/r.git``, ``https://u@host/r``) is not a revision separator."""
    if Path(source).expanduser().exists():
        return source, None
    start = 0
    if "://" in source:
        scheme_end = source.index("://") + 3
        slash = source.find("/", scheme_end)
        start = len(source) if slash < 0 else slash
    elif ":" in source and "@" in source.split(":", 1)[0]:
        start = source.index(":")  # scp-like user@host:path
    at = source.rfind("@", start)
    if at <= 0 or at == len(source) - 1:
        return source, None
    return source[:at], source[at + 1:]


def _looks_like_url(location: str) -> bool:
    if location.startswith(_URL_PREFIXES):
        return True
    head = location.split("/", 1)[0]
    return ":" in head and "@" in head.split(":", 1)[0]


def _from_pypi(source: str, home: Path, say: Progress) -> RepoSnapshot:
    say(f"looking up {source}")
    sdist, archive = pypi.fetch_sdist(source.removeprefix("pypi:"), home)
    staging = new_staging(home)
    say(f"extracting {sdist.filename}")
    try:
        skipped = extract_archive(archive, staging)
    except BaseException:
        remove_tree(staging)
        raise
    stored = store_staging(staging, home, skipped=skipped)
    return _record(f"pypi:{sdist.name}=={sdist.version}", SourceKind.PYPI, stored,
                   name=sdist.name, commit=f"sha256:{sdist.sha256}",
                   created_at=sdist.uploaded_at)


def _from_git(source: str, url: str, rev: str, home: Path, say: Progress) -> RepoSnapshot:
    mirror = mirror_path(url, home)
    if mirror.exists() and has_commit(mirror, rev):
        say(f"using cached mirror of {url}")
    elif mirror.exists():
        say(f"fetching {url}")
        try:
            ensure_mirror(url, home)
        except SourceError as exc:  # offline or gone: what the cache holds may do
            say(f"fetch failed, using the cached mirror as it is ({exc})")
    else:
        say(f"mirroring {url}")
        ensure_mirror(url, home)
    commit = resolve_commit(mirror, rev)
    date = git(["show", "-s", "--format=%cI", commit], git_dir=mirror).decode().strip()
    staging = new_staging(home)
    say(f"exporting {commit[:12]}")
    try:
        skipped = history.export_tree(mirror, commit, staging)
        submodules.fetch_submodules(mirror, commit, url, staging, home, say)
    except BaseException:
        remove_tree(staging)
        raise
    stored = store_staging(staging, home, skipped=skipped)
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return _record(source, SourceKind.GIT, stored, name=name, commit=commit, created_at=date)


def tag_version(snapshot: RepoSnapshot, home: Path) -> str:
    """The version of the nearest tag reachable from a git snapshot's commit (what a
    version-from-git tool such as setuptools-scm would read in a checkout), e.g. ``1.3.0``
    from ``v1.3.0`` or ``pluggy-1.3.0``; ``""`` for other sources or when there is no tag.
    Reads our own mirror only; nothing of the repository runs."""
    if snapshot.source_kind != SourceKind.GIT or not snapshot.commit:
        return ""
    mirror = mirror_path(split_rev(snapshot.source)[0], home)
    if not mirror.exists():
        return ""
    try:
        tag = git(["describe", "--tags", "--abbrev=0", snapshot.commit], git_dir=mirror,
                  check=True).decode().strip()
    except SourceError:
        return ""
    found = re.search(r"\d+(?:\.\d+)+(?:[.-]?(?:a|b|rc|post|dev)\d*)?", tag)
    return found.group(0) if found else ""


def _from_local_dir(source: str, root: Path, home: Path, say: Progress) -> RepoSnapshot:
    root = root.resolve()
    files = _git_listing(root)
    in_git = files is not None
    say(f"copying {'git working tree' if files else 'directory'} {root}")
    if not files:  # not in a work tree, or a dir the work tree ignores as a whole
        files = list(_walk_plain(root))
    inside_home = _relative_inside(home, root)
    if inside_home is not None:  # never snapshot our own store into itself
        files = [f for f in files if f != inside_home and not f.startswith(inside_home + b"/")]
    staging = new_staging(home)
    try:
        skipped = copy_files(root, files, staging)
        if in_git and (root / ".gitmodules").is_file():
            submodules.fetch_worktree_submodules(
                root, staging, home, say, lambda dest, path: _copy_checked_out(root, path, dest))
    except OSError as exc:
        remove_tree(staging)
        name = os.fsdecode(exc.filename) if exc.filename else root
        raise SourceError(f"{source}: cannot read {name}: {exc.strerror}") from exc
    except BaseException:
        remove_tree(staging)
        raise
    stored = store_staging(staging, home, skipped=skipped)
    return _record(source, SourceKind.LOCAL, stored, name=root.name)


def _copy_checked_out(root: Path, path: str, dest: Path) -> bool:
    """Copy the submodule at ``root/path`` into ``dest/path`` when it is checked out (its
    own tracked and untracked-not-ignored files); False when it is not."""
    sub = root / path
    if ".." in path.split("/") or not (sub / ".git").exists():
        return False
    files = _git_listing(sub)
    if not files:
        return False
    copy_files(sub, files, dest / path)
    return True


def _is_bare_repo(path: Path) -> bool:
    """A bare repository (``repo.git``) is taken at HEAD, not copied as a directory."""
    if not (path / "HEAD").is_file() or not (path / "objects").is_dir():
        return False
    out = git(["rev-parse", "--is-bare-repository"], cwd=path, check=False)
    return out.strip() == b"true"


def _git_listing(root: Path) -> list[bytes] | None:
    """Tracked and untracked-not-ignored files under ``root`` when it is in a git work
    tree, else None. Runs git in the user's own tree, with hooks and fsmonitor off."""
    try:
        inside = git(["rev-parse", "--is-inside-work-tree"], cwd=root, check=False)
    except SourceError:
        return None
    if inside.strip() != b"true":
        return None
    out = git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root)
    return sorted({p for p in out.split(b"\0") if p})


def _excluded(name: bytes, at_top: bool) -> bool:
    text = os.fsdecode(name)
    if at_top and text in EXCLUDED_AT_TOP:
        return True
    return any(fnmatch.fnmatchcase(text, pat) for pat in EXCLUDED_ANYWHERE)


def _walk_plain(root: Path) -> Iterator[bytes]:
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        top = dirpath == base
        dirnames[:] = sorted(d for d in dirnames if not _excluded(d, top))
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if not _excluded(name, top):
                yield os.path.relpath(os.path.join(dirpath, name), base)


def _relative_inside(path: Path, root: Path) -> bytes | None:
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return None
    return os.fsencode(rel.as_posix())


def _archive_stem(filename: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".tar"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def _record(source: str, kind: SourceKind, stored: StoredTree, *, name: str,
            commit: str | None = None, created_at: str = "") -> RepoSnapshot:
    if stored.n_skipped or stored.n_odd_names:
        _log.info("%s: %d entries left out (links out of the tree, .git, special files), "
                  "%d names not UTF-8", source, stored.n_skipped, stored.n_odd_names)
    return RepoSnapshot(
        snapshot_id=stored.snapshot_id, source=source, source_kind=kind, commit=commit,
        path=str(stored.path), n_files=stored.n_files, n_bytes=stored.n_bytes,
        n_skipped=stored.n_skipped, name=name, created_at=created_at,
    )
