"""Reading a repository's history from a mirror, for mining tasks later.

Every function takes a mirror made by ``gitcmd.ensure_mirror`` (never an untrusted working
tree) and runs a few plumbing commands through ``gitcmd.git``:

- ``list_commits``: first-parent commits, newest first, with date, subject and body;
- ``changed_files``: what a commit changed against its first parent (A/M/D/R, renames found);
- ``commit_diff``: that change as a unified diff, split into test files and source files;
- ``export_tree``: the files of a commit written into a directory (no checkout, no
  ``.gitattributes`` filters or export rules, no ``.git``).

``is_test_path`` holds the conventions that decide what counts as a test file.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from codemill.core.errors import SourceError
from codemill.repos.archives import link_inside
from codemill.repos.gitcmd import SAFE_FLAGS, git, git_env

TEST_DIRS = frozenset({"tests", "test", "testing"})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parent: str | None
    """First parent; None for a root commit."""
    date: str
    """Committer date, ISO 8601 with offset."""
    subject: str
    body: str


@dataclass(frozen=True)
class FileChange:
    status: str
    """``A`` added, ``M`` modified (also type changes), ``D`` deleted, ``R`` renamed."""
    path: str
    """The path after the commit (for ``D``, the deleted path)."""
    old_path: str | None = None
    """The path before a rename."""

    @property
    def is_test(self) -> bool:
        return is_test_path(self.path) or (
            self.old_path is not None and is_test_path(self.old_path)
        )


@dataclass(frozen=True)
class CommitDiff:
    commit: str
    parent: str | None
    files: tuple[FileChange, ...]
    test_patch: str
    """Unified diff (``--binary``) of the test files only."""
    source_patch: str
    """Unified diff of every other file."""
    lossy: bool = False
    """Some patch bytes were not UTF-8 and were replaced: the patch will not apply."""


def is_test_path(path: str) -> bool:
    """Whether ``path`` (repo-relative, ``/``-separated) is a test file by the usual
    conventions: under a ``tests``/``test``/``testing`` directory, or named ``test_*.py``,
    ``*_test.py``, ``test.py``, ``tests.py`` or ``conftest.py`` (a single-module project's
    suite is often one ``test.py`` beside it)."""
    parts = PurePosixPath(path).parts
    if not parts:
        return False
    if any(p in TEST_DIRS for p in parts[:-1]):
        return True
    name = parts[-1]
    if not name.endswith(".py"):
        return False
    return (name.startswith("test_") or name.endswith("_test.py")
            or name in ("conftest.py", "test.py", "tests.py"))


def list_commits(mirror: Path, rev: str = "HEAD", *, limit: int | None = None) -> list[CommitInfo]:
    """First-parent commits reachable from ``rev``, newest first."""
    args = ["log", "--first-parent", "-z", "--format=%H%x1f%P%x1f%cI%x1f%s%x1f%b"]
    if limit is not None:
        args.append(f"--max-count={limit}")
    args += ["--end-of-options", rev, "--"]
    out = git(args, git_dir=mirror).decode("utf-8", errors="replace")
    commits = []
    for rec in out.split("\0"):
        if not rec.strip():
            continue
        sha, parents, date, subject, body = rec.lstrip("\n").split("\x1f", 4)
        first = parents.split()[0] if parents.strip() else None
        commits.append(CommitInfo(sha, first, date, subject, body.strip("\n")))
    return commits


def _first_parent(mirror: Path, commit: str) -> str | None:
    out = git(["rev-list", "--parents", "-n", "1", "--end-of-options", commit], git_dir=mirror)
    shas = out.decode().split()
    return shas[1] if len(shas) > 1 else None


def _tree_args(parent: str | None, commit: str) -> list[str]:
    return ["--root", commit] if parent is None else [parent, commit]


def changed_files(mirror: Path, commit: str) -> list[FileChange]:
    """Files ``commit`` changed against its first parent, with renames detected."""
    parent = _first_parent(mirror, commit)
    out = git(["diff-tree", "-r", "-M", "-z", "--name-status", "--no-commit-id",
               *_tree_args(parent, commit)], git_dir=mirror)
    fields = out.decode("utf-8", errors="surrogateescape").split("\0")
    changes, i = [], 0
    while i < len(fields) and fields[i]:
        status = fields[i][0]
        if status in ("R", "C"):
            changes.append(FileChange(status, fields[i + 2], old_path=fields[i + 1]))
            i += 3
        else:
            changes.append(FileChange("M" if status == "T" else status, fields[i + 1]))
            i += 2
    return changes


def commit_diff(mirror: Path, commit: str) -> CommitDiff:
    """The diff of ``commit`` against its first parent, split into tests and source."""
    parent = _first_parent(mirror, commit)
    files = changed_files(mirror, commit)
    raw = git(["diff-tree", "-p", "-r", "-M", "--binary", "--full-index", "--no-ext-diff",
               "--no-textconv", "--no-color", "--no-commit-id", *_tree_args(parent, commit)],
              git_dir=mirror)
    chunks = _split_patch(raw)
    if len(chunks) != len(files):
        raise SourceError(f"diff of {commit[:12]} has {len(chunks)} file sections "
                          f"for {len(files)} changed files")
    tests = b"".join(c for c, f in zip(chunks, files, strict=True) if f.is_test)
    source = b"".join(c for c, f in zip(chunks, files, strict=True) if not f.is_test)
    test_text, lossy_t = _decode(tests)
    source_text, lossy_s = _decode(source)
    return CommitDiff(commit, parent, tuple(files), test_text, source_text, lossy_t or lossy_s)


def _split_patch(raw: bytes) -> list[bytes]:
    """Cut a multi-file patch at its ``diff --git`` headers (content lines never start
    with that: they carry a `` ``/``+``/``-`` prefix, and base85 has no spaces)."""
    chunks: list[bytes] = []
    for line in raw.splitlines(keepends=True):
        if line.startswith(b"diff --git ") or not chunks:
            chunks.append(line)
        else:
            chunks[-1] += line
    return [c for c in chunks if c.startswith(b"diff --git ")]


def _decode(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def _safe_rel(path: bytes) -> bool:
    parts = path.split(b"/")
    return all(p not in (b"", b".", b"..") and p.lower() != b".git" for p in parts)


def export_tree(mirror: Path, commit: str, dest: Path) -> int:
    """Write the files of ``commit`` into ``dest`` (created; must not hold the paths).

    Uses ``ls-tree`` and ``cat-file --batch``: no checkout, no filters, no
    ``export-ignore``. Submodules (gitlinks) are left out, symlinks pointing outside the
    tree are left out, and hostile names (``..``, ``.git``) are refused. Returns the number
    of entries left out.
    """
    listing = git(["ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit],
                  git_dir=mirror)
    entries: list[tuple[bytes, bytes, bytes]] = []  # (mode, sha, path)
    skipped = 0
    for rec in listing.split(b"\0"):
        if not rec:
            continue
        meta, path = rec.split(b"\t", 1)
        mode, kind, sha = meta.split(b" ")
        if kind != b"blob" or not _safe_rel(path):
            skipped += 1
            continue
        entries.append((mode, sha, path))
    root = os.fsencode(dest)
    os.makedirs(root, exist_ok=True)
    links: list[tuple[bytes, bytes]] = []
    proc = subprocess.Popen(["git", *SAFE_FLAGS, f"--git-dir={mirror}", "cat-file", "--batch"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=git_env())
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        try:
            for _, sha, _ in entries:
                proc.stdin.write(sha + b"\n")  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        for mode, sha, path in entries:
            header = proc.stdout.readline().split()
            if len(header) != 3:
                raise SourceError(f"git cat-file: object {sha.decode()} missing")
            size = int(header[2])
            target = os.path.join(root, path)
            if mode == b"120000":
                links.append((target, _read_exact(proc.stdout, size)))
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                perm = 0o755 if mode == b"100755" else 0o644
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, perm)
                with os.fdopen(fd, "wb") as fh:
                    left = size
                    while left:
                        buf = proc.stdout.read(min(left, _CHUNK))
                        if not buf:
                            raise SourceError("git cat-file: output ended early")
                        fh.write(buf)
                        left -= len(buf)
            proc.stdout.read(1)  # the newline after each object
    except OSError as exc:  # a crafted tree: duplicate names, a file where a dir must be
        raise SourceError(f"cannot export {commit[:12]}: {exc.strerror}: "
                          f"{os.fsdecode(exc.filename or b'')}") from exc
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()  # done reading, or failed half-way: either way it is not needed
        proc.wait()
        writer.join()
    # Links last, so no file above was ever written through one.
    for target, link in links:
        inside = link_inside(os.fsdecode(root), os.fsdecode(target), os.fsdecode(link))
        if inside and not os.path.lexists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(link, target)
        else:
            skipped += 1
    return skipped


def _read_exact(stream, size: int) -> bytes:  # type: ignore[no-untyped-def]
    data = stream.read(size)
    if len(data) != size:
        raise SourceError("git cat-file: output ended early")
    return data
