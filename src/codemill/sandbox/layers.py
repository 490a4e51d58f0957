"""Overlay layers read and written from the host side, with the kernel's overlayfs rules.

A workspace is a stack of directories, top first: the writable upper, then read-only lower
layers. ``MergedView`` answers "what does ``/repo/<path>`` hold" without mounting anything:
the topmost entry wins, a whiteout (a 0/0 character device) hides everything below it, a
directory merges with lower directories of the same name unless it is opaque
(``trusted.overlay.opaque=y``), and a non-directory hides everything below it.

Every path from a caller is resolved inside the view: ``..`` may not climb above the root,
absolute paths must lie under ``/repo``, and symlinks are followed only while they stay
inside the view (their targets are read as the sandbox would see them). Anything else
raises ``SandboxError``. Host files are opened with ``O_NOFOLLOW`` at paths whose every
directory was checked with ``lstat``, so a symlink planted by sandboxed code never leads the
host outside the workspace.

This module does no locking: callers touch a view only while no sandboxed process runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from codemill.core.errors import SandboxError

OPAQUE_XATTR = "trusted.overlay.opaque"
INSIDE_ROOT = "/repo"
MAX_SYMLINK_HOPS = 40


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


@dataclass(frozen=True)
class Entry:
    """The visible entry at a path of the view: its host path and ``lstat``."""

    rel: tuple[str, ...]
    host: Path
    st: os.stat_result
    layers: tuple[int, ...]
    """For a directory: the layers that contribute to its listing, top first."""

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.st.st_mode)


def split_inside(path: str) -> list[str]:
    """Turn a caller's path (relative to /repo, or absolute under /repo) into parts."""
    if "\x00" in path:
        raise SandboxError(f"path contains a NUL byte: {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/"):
        if not parts or parts[0] != INSIDE_ROOT.strip("/"):
            raise SandboxError(f"path escapes the workspace: {path!r}")
        parts = parts[1:]
    return parts


class MergedView:
    """The merged view of ``layers`` (top first) as overlayfs would show it."""

    def __init__(self, layers: Sequence[Path]) -> None:
        self.layers = tuple(Path(p) for p in layers)

    def lookup(self, rel: Sequence[str]) -> Entry | None:
        """The visible entry at ``rel`` (canonical parts, no symlinks on the way), or None."""
        dirs = tuple(range(len(self.layers)))
        found: Entry | None = None
        for depth in range(len(rel) + 1):
            if not dirs:
                return None
            if depth == 0:
                st = _lstat(self.layers[dirs[0]])
                if st is None:
                    return None
                found = Entry((), self.layers[dirs[0]], st, self._below(dirs, ()))
            else:
                found = self._step(dirs, tuple(rel[:depth]))
                if found is None:
                    return None
            if depth < len(rel):
                if not found.is_dir:
                    return None
                dirs = found.layers
        return found

    def _below(self, dirs: tuple[int, ...], rel: tuple[str, ...]) -> tuple[int, ...]:
        out = []
        for li in dirs:
            path = self.layers[li].joinpath(*rel)
            st = _lstat(path)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            out.append(li)
            if is_opaque(path):
                break
        return tuple(out)

    def _step(self, dirs: tuple[int, ...], rel: tuple[str, ...]) -> Entry | None:
        for pos, li in enumerate(dirs):
            path = self.layers[li].joinpath(*rel)
            st = _lstat(path)
            if st is None:
                continue
            if is_whiteout(st):
                return None
            if not stat.S_ISDIR(st.st_mode):
                return Entry(rel, path, st, ())
            return Entry(rel, path, st, self._below(dirs[pos:], rel))
        return None

    def resolve(self, path: str, *, follow_final: bool = True) -> tuple[str, ...]:
        """Canonical parts of ``path`` in the view, following symlinks that stay inside."""
        pending = split_inside(path)
        done: list[str] = []
        hops = 0
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if not done:
                    raise SandboxError(f"path escapes the workspace: {path!r}")
                done.pop()
                continue
            entry = self.lookup([*done, name])
            if entry is not None and entry.is_link and (pending or follow_final):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise SandboxError(f"too many symlinks: {path!r}")
                target = os.readlink(entry.host)
                if target.startswith("/"):
                    try:
                        pending = split_inside(target) + pending
                    except SandboxError:
                        raise SandboxError(
                            f"symlink leads out of the workspace: {path!r}") from None
                    done = []
                else:
                    pending = target.split("/") + pending
                continue
            done.append(name)
        return tuple(done)

    def read(self, path: str) -> bytes:
        rel = self.resolve(path)
        entry = self.lookup(rel)
        if entry is None:
            raise FileNotFoundError(f"no such file in the workspace: {path}")
        if entry.is_dir:
            raise IsADirectoryError(f"is a directory: {path}")
        if not entry.is_file:
            raise SandboxError(f"not a regular file: {path!r}")
        fd = os.open(entry.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def listdir(self, entry: Entry) -> dict[str, Entry]:
        """Visible children of a directory entry."""
        names: set[str] = set()
        for li in entry.layers:
            with contextlib.suppress(OSError):
                names |= set(os.listdir(self.layers[li].joinpath(*entry.rel)))
        out = {}
        for name in sorted(names):
            child = self._step(entry.layers, (*entry.rel, name))
            if child is not None:
                out[name] = child
        return out

    def walk(self, rel: Sequence[str] = (), *, dirs: bool = False) -> Iterator[Entry]:
        """Every visible non-directory entry at or under ``rel`` (and directories below
        ``rel``, parents before children, when ``dirs``)."""
        top = self.lookup(rel)
        if top is None:
            return
        if not top.is_dir:
            yield top
            return
        stack = [top]
        while stack:
            d = stack.pop()
            for child in self.listdir(d).values():
                if child.is_dir:
                    if dirs:
                        yield child
                    stack.append(child)
                else:
                    yield child


def write_into_top(view: MergedView, path: str, data: bytes, owner: int | None) -> None:
    """Write ``data`` at ``path`` of the view by changing only its top (upper) layer.

    Missing parent directories are created; a whiteout in the way is replaced by an opaque
    directory, as overlayfs does. New entries are owned by ``owner`` (when given) so that the
    sandbox user can edit them later.
    """
    rel = view.resolve(path)
    if not rel:
        raise IsADirectoryError("cannot write the workspace root")
    upper = view.layers[0]
    for depth in range(1, len(rel)):
        prefix = rel[:depth]
        entry = view.lookup(prefix)
        if entry is not None and not entry.is_dir:
            raise NotADirectoryError(f"not a directory: {'/'.join(prefix)}")
        target = upper.joinpath(*prefix)
        st = _lstat(target)
        if st is not None and stat.S_ISDIR(st.st_mode):
            continue
        if st is not None:  # a whiteout: the lower directory was deleted
            os.unlink(target)
        os.mkdir(target, 0o755 if entry is None else stat.S_IMODE(entry.st.st_mode))
        if st is not None:
            os.setxattr(target, OPAQUE_XATTR, b"y", follow_symlinks=False)
        if owner is not None:
            os.lchown(target, owner, owner)
    current = view.lookup(rel)
    if current is not None and current.is_dir:
        raise IsADirectoryError(f"is a directory: {path}")
    mode = stat.S_IMODE(current.st.st_mode) if current is not None else 0o644
    final = upper.joinpath(*rel)
    tmp = final.with_name(f".{final.name}.codemill-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), mode)
            if owner is not None:
                os.fchown(fh.fileno(), owner, owner)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def adopt(root: Path, uid: int) -> None:
    """Make a layer tree owned by ``uid`` (and owner-writable) so sandboxed code can edit
    its files through the overlay. Cheap when already done: the root's owner is checked
    first. Modes for group and others are left as they were."""
    st = os.lstat(root)
    if st.st_uid == uid and st.st_mode & stat.S_IWUSR:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            _own(Path(dirpath, name), uid)
    _own(root, uid)


def _own(path: Path, uid: int) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or is_whiteout(st):
        os.lchown(path, uid, uid)
        return
    if st.st_uid != uid or st.st_gid != uid:
        os.lchown(path, uid, uid)
    if not st.st_mode & stat.S_IWUSR or (stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o100):
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IWUSR | (
            stat.S_IXUSR if stat.S_ISDIR(st.st_mode) else 0))
