"""The ``process`` sandbox: NO ISOLATION. For trusted code in development only.

Same API as the bwrap sandbox so the rest of codemill runs unchanged on a machine without
bubblewrap (or without root): the layers are copied into a plain directory under the
sandbox's scratch dir, and commands run there as the calling user, with the host's file
system, network and processes in full view. It still enforces the wall-clock timeout (the
command's process group is killed) and the output cap; it does not limit memory, pids or
disk, and a daemon that leaves the process group survives the run.

Opening one emits ``IsolationWarning``; every run logs a warning too. ``freeze`` writes the
changes as an overlay-style layer (changed files plus whiteouts), so forks and the bwrap
backend can stack it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from codemill.core.diffs import text_bytes
from codemill.core.errors import SandboxError
from codemill.core.records import ExecResult
from codemill.sandbox.api import SandboxSpec
from codemill.sandbox.capture import drive
from codemill.sandbox.layers import Entry, MergedView
from codemill.sandbox.workspace import WorkspaceSandbox, clear_dir
from codemill.sandbox.workspace_diff import tree_diff

logger = logging.getLogger(__name__)
NOTICE = "process sandbox: NO ISOLATION, trusted code only"


class IsolationWarning(UserWarning):
    """A sandbox that does not isolate anything was opened."""


def _copy_entry(entry: Entry, dest: Path) -> None:
    if entry.is_dir:
        dest.mkdir(mode=stat.S_IMODE(entry.st.st_mode) | stat.S_IRWXU, exist_ok=True)
    elif entry.is_link:
        os.symlink(os.readlink(entry.host), dest)
    elif entry.is_file:
        shutil.copyfile(entry.host, dest, follow_symlinks=False)
        os.chmod(dest, stat.S_IMODE(entry.st.st_mode) | stat.S_IWUSR)


def materialize(view: MergedView, dest: Path) -> None:
    """Copy the merged view into a plain directory ``dest`` (created)."""
    dest.mkdir(parents=True)
    for entry in view.walk(dirs=True):
        _copy_entry(entry, dest.joinpath(*entry.rel))


class ProcessSandbox(WorkspaceSandbox):
    """A plain directory and plain subprocesses; see the module docstring."""

    backend = "process"

    def __init__(self, spec: SandboxSpec, home: Path) -> None:
        super().__init__(spec, home)
        warnings.warn(NOTICE, IsolationWarning, stacklevel=3)
        self.work = self.dir / "repo"
        materialize(MergedView(spec.layers), self.work)
        self.results = self.dir / "results"
        self.results.mkdir()
        (self.dir / "home").mkdir()

    def _top(self) -> Path:
        return self.work

    def _view(self) -> MergedView:
        return MergedView([self.work])

    @property
    def results_dir(self) -> tuple[Path, str]:
        return self.results, str(self.results)

    def diff(self) -> str:
        with self._lock:
            self._check_open()
            return tree_diff(self._view(), self._base())

    def freeze(self, dest: Path | None = None) -> Path:
        """Write the changes against the spec's layers as a layer dir (copies of changed
        files, whiteouts for deletions); the workspace itself is unchanged."""
        with self._lock:
            self._check_open()
            target = self._layer_dest(dest)
            target.mkdir()
            view, base = self._view(), self._base()
            for entry in view.walk(dirs=True):
                old = base.lookup(entry.rel)
                if entry.is_dir and old is not None and old.is_dir:
                    continue
                if _same(entry, old):
                    continue
                target.joinpath(*entry.rel[:-1]).mkdir(parents=True, exist_ok=True)
                _copy_entry(entry, target.joinpath(*entry.rel))
            for entry in base.walk(dirs=True):
                parent = view.lookup(entry.rel[:-1])
                if view.lookup(entry.rel) is None and parent is not None and parent.is_dir:
                    target.joinpath(*entry.rel[:-1]).mkdir(parents=True, exist_ok=True)
                    os.mknod(target.joinpath(*entry.rel), stat.S_IFCHR, os.makedev(0, 0))
            self._frozen.insert(0, target)
            return target

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        offline: bool = False,
    ) -> ExecResult:
        """Run ``argv`` in the workspace directory, unisolated, with a timeout
        (``offline`` cannot be honoured without isolation: this backend is for trusted
        development only)."""
        if not argv:
            raise SandboxError("empty command")
        logger.warning(NOTICE)
        with self._lock:
            self._check_open()
            clear_dir(self.results)
            env_path = str(self.spec.env_dir) if self.spec.env_dir else None
            full_env = self.sandbox_env(env, env_path, str(self.dir / "home"))
            stdin_fd = os.memfd_create("codemill-stdin")
            try:
                os.write(stdin_fd, text_bytes(stdin or ""))
                os.lseek(stdin_fd, 0, os.SEEK_SET)
                started = time.monotonic()
                try:
                    proc = subprocess.Popen(list(argv), cwd=self.work, env=full_env,
                                            stdin=stdin_fd, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, start_new_session=True)
                except OSError as exc:
                    return ExecResult(exit_code=None, stderr=f"{argv[0]}: {exc.strerror}")
            finally:
                os.close(stdin_fd)

            def kill() -> None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

            timeout = max(0.0, min(timeout_s, self.spec.limits.timeout_s))
            try:
                out = drive(proc, started=started, timeout_s=timeout,
                            limit=self.spec.limits.output_limit, kill=kill)
            finally:
                kill()
                proc.wait()
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            return ExecResult(exit_code=out.exit_code, stdout=out.stdout, stderr=out.stderr,
                              duration_s=out.duration_s,
                              timed_out=out.killed_reason == "timeout",
                              killed_reason=out.killed_reason, truncated=out.truncated,
                              stderr_truncated=out.stderr_truncated)


def _same(entry: Entry, old: Entry | None) -> bool:
    if old is None or entry.is_dir != old.is_dir or entry.is_link != old.is_link:
        return False
    if entry.is_link:
        return os.readlink(entry.host) == os.readlink(old.host)
    if (entry.st.st_mode ^ old.st.st_mode) & stat.S_IXUSR:
        return False
    if entry.st.st_size != old.st.st_size:
        return False
    with open(entry.host, "rb") as a, open(old.host, "rb") as b:
        return a.read() == b.read()
