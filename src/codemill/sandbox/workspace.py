"""What both sandbox backends share: scratch directories, host-side file access, diff.

A sandbox owns ``<home>/tmp/sandboxes/<id>/`` (mode 0700) until ``close``; its results dir
lives inside it. File access from the host goes through ``codemill.sandbox.layers`` (never
follows a link out of the workspace); runs and file access are serialized by one lock, so
the host never reads a layer while sandboxed code is changing it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codemill.core.errors import SandboxError
from codemill.sandbox.api import SandboxSpec
from codemill.sandbox.layers import MergedView, write_into_top

RESULTS_INSIDE = "/harness/results"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def clear_dir(path: Path) -> None:
    """Empty a directory without following links in it."""
    with os.scandir(path) as it:
        children = list(it)
    for child in children:
        if child.is_dir(follow_symlinks=False):
            shutil.rmtree(child.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child.path)


def tree_usage(root: Path) -> int:
    """Bytes under ``root`` by apparent size (``st_size``: a sparse file counts whole, as
    it would when copied or read back), plus 512 per entry for inode floods."""
    total = 0
    stack = [str(root)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as it:
            for entry in it:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    total += max(st.st_size, st.st_blocks * 512) + 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return total


def sanitize_results(root: Path) -> None:
    """Leave only directories and regular files in the results dir: the harness reads it
    from the host, and sandboxed code (a hostile conftest.py) may have planted a symlink
    to a host file or a FIFO that blocks a reader."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                    os.unlink(path)


class WorkspaceSandbox:
    """Base of the backends. Subclasses provide ``run``, ``freeze`` and the views."""

    backend = "base"

    def __init__(self, spec: SandboxSpec, home: Path) -> None:
        self.spec = spec
        self.home = Path(home).absolute()
        self.id = uuid.uuid4().hex[:12]
        root = self.home / "tmp" / "sandboxes"
        root.mkdir(parents=True, exist_ok=True)
        self.dir = root / self.id
        self.dir.mkdir(mode=0o700)
        self._finalizer = weakref.finalize(self, _remove_tree, self.dir)
        self._lock = threading.RLock()
        self._closed = False
        self._frozen: list[Path] = []
        self._freezes = 0

    # --- views ------------------------------------------------------------------------------
    def _top(self) -> Path:
        """The directory that receives the workspace's writes."""
        raise NotImplementedError

    def _owner(self) -> int | None:
        return None

    def _view(self) -> MergedView:
        return MergedView([self._top(), *self._frozen, *self.spec.layers])

    def _base(self) -> MergedView:
        return MergedView(self.spec.layers)

    # --- the Sandbox protocol -----------------------------------------------------------------
    def read_file(self, path: str) -> bytes:
        """Bytes of ``path`` (relative to /repo, or absolute under /repo)."""
        with self._lock:
            self._check_open()
            return self._view().read(path)

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``path`` in the workspace, creating parent directories."""
        with self._lock:
            self._check_open()
            write_into_top(self._view(), path, bytes(data), self._owner())

    def diff(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()
            self._finalizer()

    def _release(self) -> None:
        """Backend-specific cleanup before the scratch dir is removed."""

    # --- extras ---------------------------------------------------------------------------------
    @property
    def results_dir(self) -> tuple[Path, str]:
        """(host path, inside path) of the harness results dir; emptied before each run."""
        raise NotImplementedError

    def freeze(self, dest: Path | None = None) -> Path:
        raise NotImplementedError

    def _layer_dest(self, dest: Path | None) -> Path:
        if dest is None:
            self._freezes += 1
            dest = self.home / "layers" / f"{self.id}-{self._freezes}"
        dest = Path(dest).absolute()
        if dest.exists():
            raise SandboxError(f"freeze destination exists: {dest}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"sandbox {self.id} is closed")

    def sandbox_env(self, extra: Mapping[str, str] | None, env_path: str | None,
                    home: str) -> dict[str, str]:
        """The environment a command sees: a fixed base plus the caller's variables."""
        env = {"PATH": BASE_PATH, "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
               "USER": "sandbox", "PYTHONNOUSERSITE": "1"}
        if env_path is not None:
            env["PATH"] = f"{env_path}/bin:{BASE_PATH}"
            env["VIRTUAL_ENV"] = env_path
        env.update(extra or {})
        return env

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.id} {state} layers={len(self.spec.layers)}>"
