"""The resolved lock of an installed environment, its hash, and the env tree's digest.

Read on the host from the files the install left in the venv (``*.dist-info/METADATA`` and
``direct_url.json``), never by asking code inside the environment: a build runs untrusted
code, and what it prints about itself is not evidence. Every file is opened without
following symlinks, so a hostile build cannot make the host read a file outside the venv.

- ``Lock.text``: one ``name==version`` line per distribution, sorted by normalized name;
  the editable project as ``-e /repo  # name==version`` (installable with ``uv pip
  install -r``).
- ``Lock.hash``: content id of those lines (``EnvSpec.lock_hash``).
- ``tree_digest(venv)``: sha256 over every path, mode, link target and file content of the
  venv (timestamps that uv stamps into editable installs' metadata and the bytecode in
  ``__pycache__``, which the builder remakes itself, left out). Two builds
  share one installed environment on disk only when both the lock and the digest agree,
  so a build that tampered with its files can never be shared with another snapshot that
  merely resolves to the same lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from codemill.core.ids import content_id

MAX_META = 4_000_000
VOLATILE = {"uv_cache.json"}
"""Files in a ``.dist-info`` that record when, not what (uv's cache stamps of editable
installs); left out of the digest (and out of RECORD's lines) so identical installs match."""


def _read_nofollow(path: str, limit: int = MAX_META) -> bytes | None:
    """Bytes of a regular file, or None (missing, a symlink, not regular, too big)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_sha256(path: str) -> str:
    """sha256 of a regular file, read in chunks (a build may leave huge files); '' for
    anything that is not a regular file when opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    h = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages(venv: Path) -> Path | None:
    """``<venv>/lib/pythonX.Y/site-packages`` (the first one; venvs have exactly one)."""
    lib = venv / "lib"
    if not lib.is_dir() or lib.is_symlink():
        return None
    for entry in sorted(os.scandir(lib), key=lambda e: e.name):
        if entry.name.startswith("python") and entry.is_dir(follow_symlinks=False):
            sp = Path(entry.path) / "site-packages"
            if sp.is_dir() and not sp.is_symlink():
                return sp
    return None


@dataclass(frozen=True)
class Lock:
    """Installed distributions of a venv."""

    lines: tuple[str, ...]
    editable: str = ""
    """``name==version`` of the editable project, '' when none."""

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")

    @property
    def hash(self) -> str:
        return content_id("lock", list(self.lines))

    def versions(self) -> dict[str, str]:
        """Normalized name -> version of every distribution (the editable one included)."""
        out = {}
        for line in self.lines:
            pin = line.split("#", 1)[1].strip() if line.startswith("-e ") else line
            name, _, version = pin.partition("==")
            out[normalize(name)] = version
        return out


def read_lock(venv: Path) -> Lock:
    """The lock of the venv at ``venv`` (empty when it has no site-packages)."""
    sp = site_packages(Path(venv))
    if sp is None:
        return Lock(())
    pins: dict[str, str] = {}
    editable = ""
    for entry in sorted(os.scandir(sp), key=lambda e: e.name):
        if not entry.name.endswith(".dist-info") or not entry.is_dir(follow_symlinks=False):
            continue
        raw = _read_nofollow(os.path.join(entry.path, "METADATA"))
        if raw is None:
            continue
        msg = HeaderParser().parsestr(raw.decode("utf-8", "replace"))
        name, version = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
        if not name or not version:
            continue
        line = f"{name}=={version}"
        direct = _read_nofollow(os.path.join(entry.path, "direct_url.json"))
        if direct is not None:
            try:
                info = json.loads(direct)
            except ValueError:
                info = {}
            if isinstance(info, dict) and (info.get("dir_info") or {}).get("editable"):
                url = str(info.get("url", ""))
                editable = line
                line = f"-e {url.removeprefix('file://')}  # {line}"
        pins[normalize(name)] = line
    return Lock(tuple(pins[k] for k in sorted(pins)), editable)


def tree_digest(root: Path) -> tuple[str, int]:
    """(sha256 hex over the tree's paths, modes, link targets and contents; disk bytes).

    Disk bytes count each inode once (hard links inside the tree are not double counted)
    and include the ``__pycache__`` dirs that the digest leaves out.
    """
    h = hashlib.sha256()
    seen: set[tuple[int, int]] = set()
    disk = 0
    stack: list[tuple[str, bool]] = [("", True)]
    while stack:
        rel, hashed = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(root, rel)), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            info = entry.stat(follow_symlinks=False)
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                disk += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                # bytecode is remade on the host (codemill.envs.builder.compile): not hashed
                inner = hashed and entry.name != "__pycache__"
                if inner:
                    h.update(f"D {path}\n".encode())
                stack.append((path, inner))
            elif hashed and entry.name != "__pycache__":
                h.update(_entry_line(entry, info, rel, path).encode())
    return h.hexdigest(), disk


def _entry_line(entry: os.DirEntry[str], info: os.stat_result, rel: str, path: str) -> str:
    if stat.S_ISLNK(info.st_mode):
        return f"L {path} {os.readlink(entry.path)}\n"
    if not stat.S_ISREG(info.st_mode):
        return f"O {path} {stat.S_IFMT(info.st_mode)}\n"
    if entry.name in VOLATILE and rel.endswith(".dist-info"):
        return ""
    if entry.name == "RECORD" and rel.endswith(".dist-info"):
        data = _read_nofollow(entry.path) or b""
        data = b"\n".join(ln for ln in data.splitlines()
                          if ln.split(b",")[0].rsplit(b"/", 1)[-1].decode("utf-8", "replace")
                          not in VOLATILE)
        digest = hashlib.sha256(data).hexdigest()
    else:
        digest = _file_sha256(entry.path)
    mode = stat.S_IMODE(info.st_mode) & 0o111
    return f"F {path} {mode:o} {digest}\n"
