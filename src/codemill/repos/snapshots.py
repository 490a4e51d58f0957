"""The content-addressed store of source trees: ``<home>/snapshots/<snapshot_id>/``.

A source is first written into a staging dir (``new_staging``) by whoever fetched it, then
``store_staging`` cleans, hashes, seals and publishes it:

- ``snapshot_id`` = sha256 over the sorted lines ``path NUL mode NUL blob-sha256 LF`` of
  every file and symlink (path as raw bytes; mode ``100644``, ``100755`` or ``120000``;
  a symlink's blob is its target text). Identical trees from different sources get the
  same id and are stored once.
- Left out (and counted in ``n_skipped``): symlinks whose real resolution leaves the tree,
  ``.git`` entries at any depth, FIFOs, sockets and devices. Empty dirs are dropped.
- File names that are not UTF-8 are kept as raw bytes and counted in ``n_odd_names``.
- Sealed: files 0444 (0555 when executable), dirs 0555, so the sandbox uid can read the
  tree as an overlay lower layer and nothing edits it in place.
- Published by one ``rename`` from the staging dir; an id that already exists is never
  rewritten (the staging copy is discarded).

The stored tree has no ``.git``. ``export_clean_repo`` makes a one-commit repository from it
for tools that want one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from codemill.core.errors import SourceError
from codemill.repos.archives import link_inside
from codemill.repos.gitcmd import git

_CHUNK = 1 << 20
SNAPSHOT_VERSION = "1"
"""Version of the tree hash and the stored layout; bump when either changes (the
factory's ``snapshots`` asset keys on it)."""


@dataclass(frozen=True)
class StoredTree:
    snapshot_id: str
    path: Path
    n_files: int
    """Files and symlinks in the tree."""
    n_bytes: int
    n_skipped: int = 0
    """Entries left out: links out of the tree, ``.git``, special files."""
    n_odd_names: int = 0
    """Kept entries whose names are not valid UTF-8."""
    reused: bool = False
    """The id was already in the store; nothing new was written."""


def snapshots_root(home: Path) -> Path:
    root = home / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the sandbox uid must traverse it to reach a tree
    return root


def new_staging(home: Path) -> Path:
    """A fresh, empty staging dir on the same filesystem as the store."""
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=snapshots_root(home)))


def copy_files(src_root: Path, rel_paths: Iterable[bytes], staging: Path) -> int:
    """Copy the listed files (``/``-separated, relative, raw bytes) from ``src_root`` into
    ``staging`` as they are on disk: regular files with their exec bit, symlinks as
    symlinks. Paths that are missing, not files, or hostile are passed over; returns how
    many were (missing ones excepted)."""
    src, dst = os.fsencode(src_root), os.fsencode(staging)
    skipped = 0
    for rel in rel_paths:
        parts = rel.split(b"/")
        if rel.startswith(b"/") or any(p in (b"", b".", b"..") for p in parts):
            skipped += 1
            continue
        source, target = os.path.join(src, rel), os.path.join(dst, rel)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            continue  # tracked but deleted on disk: the tree is what is on disk
        if stat.S_ISREG(st.st_mode):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target, follow_symlinks=False)
            os.chmod(target, 0o755 if st.st_mode & 0o100 else 0o644)
        elif stat.S_ISLNK(st.st_mode):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(source), target)
        else:
            skipped += 1
    return skipped


def store_staging(staging: Path, home: Path, *, skipped: int = 0) -> StoredTree:
    """Clean, hash, seal and publish ``staging`` (consumed). ``skipped`` adds entries the
    caller already left out. Raises ``SourceError`` when no file is left."""
    root = os.fsencode(staging)
    try:
        skipped += _drop_unsafe(root)
        entries, n_bytes, odd = _hash_tree(root)
    except BaseException:
        remove_tree(staging)
        raise
    if not entries:
        remove_tree(staging)
        raise SourceError("no files to snapshot")
    lines = sorted(entries)
    digest = hashlib.sha256()
    for path, mode, blob in lines:
        digest.update(path + b"\0" + mode + b"\0" + blob + b"\n")
    sid = digest.hexdigest()
    _seal(root)
    final = staging.parent / sid
    reused = False
    if final.exists():
        reused = True
    else:
        try:
            os.rename(staging, final)
        except OSError:
            if not final.exists():
                remove_tree(staging)
                raise
            reused = True  # a concurrent writer published the same id first
    if reused:
        remove_tree(staging)
    return StoredTree(sid, final, len(entries), n_bytes, skipped, odd, reused)


def _drop_unsafe(root: bytes) -> int:
    """Remove ``.git`` entries, special files and links that really resolve outside."""
    dropped = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames) + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if name.lower() == b".git":
                _remove_any(path)
                dropped += 1
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                      or stat.S_ISLNK(st.st_mode)):
                os.unlink(path)
                dropped += 1
        dirnames[:] = [d for d in dirnames if os.path.isdir(os.path.join(dirpath, d))
                       and not os.path.islink(os.path.join(dirpath, d))]
    # A link may point at another link; removing one can strand another: iterate.
    real_root = os.path.realpath(root)
    while True:
        bad = [p for p in _links(root)
               if not _really_inside(real_root, root, p)]
        if not bad:
            return dropped
        for p in bad:
            os.unlink(p)
        dropped += len(bad)


def _links(root: bytes) -> list[bytes]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if os.path.islink(os.path.join(dirpath, name)):
                out.append(os.path.join(dirpath, name))
    return out


def _really_inside(real_root: bytes, root: bytes, link: bytes) -> bool:
    if not link_inside(os.fsdecode(root), os.fsdecode(link), os.fsdecode(os.readlink(link))):
        return False
    resolved = os.path.realpath(link)
    return resolved == real_root or resolved.startswith(real_root + b"/")


def _hash_tree(root: bytes) -> tuple[list[tuple[bytes, bytes, bytes]], int, int]:
    entries: list[tuple[bytes, bytes, bytes]] = []
    n_bytes = odd = 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                if not os.listdir(path):
                    os.rmdir(path)  # empty dirs are not part of a tree
                continue
            rel = os.path.relpath(path, root)
            try:
                rel.decode("utf-8")
            except UnicodeDecodeError:
                odd += 1
            if stat.S_ISLNK(st.st_mode):
                blob = hashlib.sha256(os.readlink(path)).hexdigest()
                entries.append((rel, b"120000", blob.encode()))
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while buf := fh.read(_CHUNK):
                    digest.update(buf)
            n_bytes += st.st_size
            mode = b"100755" if st.st_mode & 0o100 else b"100644"
            entries.append((rel, mode, digest.hexdigest().encode()))
    return entries, n_bytes, odd


def _seal(root: bytes) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                os.chmod(path, 0o555 if st.st_mode & 0o100 else 0o444)
            elif stat.S_ISDIR(st.st_mode):
                os.chmod(path, 0o555)
    os.chmod(root, 0o555)


def _remove_any(path: bytes) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        remove_tree(Path(os.fsdecode(path)))
    else:
        os.unlink(path)


def remove_tree(path: Path) -> None:
    """Delete a (possibly sealed, read-only) tree."""
    if not path.exists() and not path.is_symlink():
        return
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
    os.chmod(path, 0o700)
    shutil.rmtree(path)


def export_clean_repo(snapshot_dir: Path, dest: Path) -> str:
    """Copy a stored tree to ``dest`` (writable) and commit it as the only commit of a new
    git repository: no history, remotes or tags. Returns the commit sha.

    The commit has a fixed author and date, so the same tree always gives the same sha.
    Global and system git config are ignored, so no filter or hook of the host applies.
    """
    shutil.copytree(snapshot_dir, dest, symlinks=True)
    for dirpath, _dirnames, filenames in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o755 if os.stat(p).st_mode & 0o100 else 0o644)
    env_flags = ["-c", "user.name=codemill", "-c", "user.email=codemill@localhost",
                 "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false",
                 "-c", "init.defaultBranch=main"]
    git([*env_flags, "init", "--quiet", str(dest)], global_config=False)
    git([*env_flags, "add", "--all", "--force", "."], cwd=dest, global_config=False)
    git([*env_flags, "commit", "--quiet", "--no-verify", "-m", "snapshot"], cwd=dest,
        global_config=False, extra_env={"GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000",
                                        "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000"})
    return git(["rev-parse", "HEAD"], cwd=dest, global_config=False).decode().strip()
