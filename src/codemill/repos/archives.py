"""Safe extraction of source archives (``.tar.gz``, ``.tar.bz2``, ``.zip``) from the net.

Contract: nothing is ever written outside ``dest``.
- A member with an absolute path or a ``..`` component makes the whole archive refused
  (``SourceError``): no honest sdist has one.
- Symlinks and hard links are kept only when they point inside the tree; device files,
  FIFOs and other special members are left out. Both are counted, not fatal.
- Regular files and directories are written first and symlinks last, so no file is ever
  written through a link; files are opened with ``O_NOFOLLOW``.
- The total size written is capped (zip and tar bombs), as is the number of members.
- A single top-level directory (``name-1.0/``) is stripped.

Only the exec bit of a member's mode is kept; owners, times and other bits are not.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from codemill.core.errors import SourceError

MAX_BYTES = 4 << 30
MAX_MEMBERS = 500_000
_CHUNK = 1 << 20


@dataclass
class _Member:
    parts: tuple[str, ...]
    kind: str  # file | dir | symlink | hardlink | other
    executable: bool = False
    link: str = ""
    opener: object = None  # () -> IO[bytes] for files


def _parts(name: str, archive: str) -> tuple[str, ...]:
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise SourceError(f"{archive}: refused: absolute path in archive: {name!r}")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise SourceError(f"{archive}: refused: '..' in archive path: {name!r}")
    return parts


def _tar_members(tf: tarfile.TarFile, archive: str) -> Iterator[_Member]:
    for m in tf:
        parts = _parts(m.name, archive)
        if m.isreg():
            yield _Member(parts, "file", bool(m.mode & 0o111),
                          opener=lambda m=m: tf.extractfile(m))
        elif m.isdir():
            yield _Member(parts, "dir")
        elif m.issym():
            yield _Member(parts, "symlink", link=m.linkname)
        elif m.islnk():
            yield _Member(parts, "hardlink", link=m.linkname)
        else:
            yield _Member(parts, "other")


def _zip_members(zf: zipfile.ZipFile, archive: str) -> Iterator[_Member]:
    for info in zf.infolist():
        parts = _parts(info.filename, archive)
        mode = info.external_attr >> 16
        if info.is_dir():
            yield _Member(parts, "dir")
        elif (mode & 0o170000) == 0o120000:
            yield _Member(parts, "symlink", link=zf.read(info).decode("utf-8", "replace"))
        elif mode & 0o170000 not in (0, 0o100000):
            yield _Member(parts, "other")
        else:
            yield _Member(parts, "file", bool(mode & 0o111),
                          opener=lambda info=info: zf.open(info))


def extract_archive(archive: Path, dest: Path, *, max_bytes: int = MAX_BYTES) -> int:
    """Extract ``archive`` into ``dest`` (created), stripping a single top-level directory.

    Returns how many members were left out (special files, links pointing outside).
    Raises ``SourceError`` for a hostile or unreadable archive.
    """
    name = archive.name
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return _extract(list(_zip_members(zf, name)), dest, name, max_bytes)
        with tarfile.open(archive, "r:*") as tf:
            return _extract(list(_limited(_tar_members(tf, name), name)), dest, name,
                            max_bytes)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise SourceError(f"{name}: cannot extract: {exc}") from exc


def _limited(members: Iterator[_Member], archive: str) -> Iterator[_Member]:
    for i, m in enumerate(members):
        if i >= MAX_MEMBERS:
            raise SourceError(f"{archive}: refused: more than {MAX_MEMBERS} members")
        yield m


def _extract(members: list[_Member], dest: Path, archive: str, max_bytes: int) -> int:
    tops = {m.parts[0] for m in members if m.parts}
    strip = len(tops) == 1 and any(len(m.parts) > 1 for m in members)
    root = os.path.abspath(dest)
    os.makedirs(root, exist_ok=True)
    skipped, written = 0, 0
    deferred: list[tuple[str, _Member]] = []
    for m in members:
        parts = m.parts[1:] if strip else m.parts
        if not parts:
            continue
        target = os.path.join(root, *parts)
        if m.kind == "dir":
            _makedirs(target, archive)
        elif m.kind == "file":
            _makedirs(os.path.dirname(target), archive)
            stream = m.opener()  # type: ignore[operator]
            written += _write(target, stream, m.executable, max_bytes - written, archive)
        elif m.kind in ("symlink", "hardlink"):
            deferred.append((target, m))
        else:
            skipped += 1
    for target, m in deferred:
        if m.kind == "hardlink":
            # A hard link names another member by its archive path: copy that file.
            src_parts = _parts(m.link, archive)
            src_parts = src_parts[1:] if strip else src_parts
            source = os.path.join(root, *src_parts) if src_parts else root
            if src_parts and os.path.isfile(source) and not os.path.islink(source):
                with open(source, "rb") as fh:
                    written += _write(target, fh, os.access(source, os.X_OK),
                                      max_bytes - written, archive)
            else:
                skipped += 1
        elif link_inside(root, target, m.link) and not os.path.lexists(target):
            _makedirs(os.path.dirname(target), archive)
            os.symlink(m.link, target)
        else:
            skipped += 1
    return skipped


def _makedirs(path: str, archive: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise SourceError(f"{archive}: conflicting entries at {path}: {exc}") from exc


def _write(target: str, stream: IO[bytes], executable: bool, budget: int, archive: str) -> int:
    if os.path.isdir(target) and not os.path.islink(target):
        raise SourceError(f"{archive}: a file and a directory share the path {target}")
    if os.path.lexists(target):
        os.unlink(target)  # a later member of the same name wins, as with tar
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o755 if executable else 0o644)
    n = 0
    with os.fdopen(fd, "wb") as out:
        while buf := stream.read(_CHUNK):
            n += len(buf)
            if n > budget:
                raise SourceError(f"{archive}: refused: expands past the size cap")
            out.write(buf)
    return n


def link_inside(root: str, link_path: str, target: str) -> bool:
    """Whether a symlink at ``link_path`` pointing to ``target`` stays inside ``root``,
    judged on the text alone (``snapshots`` re-checks the real resolution)."""
    if not target or target.startswith("/"):
        return False
    resolved = os.path.normpath(os.path.join(os.path.dirname(link_path), target))
    return resolved == root or resolved.startswith(root.rstrip("/") + "/")
