"""The default sandbox: bubblewrap as an unprivileged uid over a copy-on-write overlay.

Each ``run`` is a fresh world, built by a few lines of ``sh`` run as root in a private mount
namespace (``unshare -m``), then dropped to the sandbox uid:

1. join fresh cgroups (memory, pids, cpu limits; ``cgroup.kill`` for the whole tree);
2. mount an overlay: lower = the layers, upper/work = this sandbox's persistent dirs, so
   changes survive between runs of one sandbox and the host can read them as plain files;
3. bind the environment, interpreter and extra binds (and mount each overlay bind: the
   host dir as its lower layer, an upper dir of this sandbox, discarded at close) into a
   staging dir and bind that dir
   over ``/tmp`` of the private namespace, so inputs under 0700 dirs (``/root``, pytest's
   temp dirs) are reachable by the sandbox uid without exposing anything else;
4. ``prlimit`` (AS, CPU, FSIZE, NOFILE, NPROC, no core files), ``setpriv`` to the sandbox
   uid (no capabilities, no new privileges, no groups), then ``bwrap``: every namespace
   unshared (network only when the spec asks), a new session, ``--die-with-parent``,
   read-only ``/usr`` and a subset of ``/etc``, private ``/tmp`` (sized) and ``/dev``,
   ``/proc`` of the new pid namespace, ``/repo`` the overlay, ``/env`` and the
   interpreter read-only (at ``python_inside`` when the spec gives one),
   ``/harness/results`` writable, a read-only root, no nested user namespaces.

When the command ends, bwrap's pid 1 ends and the kernel kills everything left in the pid
namespace (double-forked daemons included); the mount namespace dies with its last process,
taking the overlay with it; the cgroups are killed and removed. At the deadline the cgroups
are killed (``cgroup.kill``, or freeze and SIGKILL on cgroup v1 only) and the process group
too. While the command runs, the size of everything it can write on the host disk (the
upper dir and the results dir together, by apparent size, so sparse files count whole) is
checked against ``disk_mb`` several times a second and once more at the end; a run over it
is killed with reason ``disk`` and its results dir is emptied, so the host never reads
more than the limit back. ``RLIMIT_FSIZE`` caps each file at ``disk_mb`` too. Between two
checks a fast writer can go past the limit by what it writes in that interval: the limit
is a poll, not a quota.

Protects against: reading host files outside what is bound (``/root``, ``/home``, the
codemill home, ``/etc/shadow``), writing anywhere but ``/repo``, ``/tmp`` and the results
dir, the network, seeing or signalling host processes, privilege gain through setuid
binaries, fork and memory bombs, runaway output, leftovers. Does not protect against:
kernel exploits (the kernel is shared; no seccomp filter is installed), CPU cache side
channels, reading world-readable files under ``/usr`` and the bound ``/etc`` subset.

Requires root to set up; see ``codemill.sandbox.host``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from codemill.core.diffs import text_bytes
from codemill.core.errors import SandboxError
from codemill.core.records import ExecResult
from codemill.sandbox.api import SandboxSpec
from codemill.sandbox.capture import drive
from codemill.sandbox.cgroups import RunCgroup
from codemill.sandbox.host import SYSTEM_PATH, host_tools, system_binds
from codemill.sandbox.layers import adopt
from codemill.sandbox.workspace import (
    RESULTS_INSIDE,
    WorkspaceSandbox,
    clear_dir,
    sanitize_results,
    tree_usage,
)
from codemill.sandbox.workspace_diff import workspace_diff

STAGE_INSIDE_HOST = "/tmp"  # where the staging dir is bound in the private mount namespace
OVERLAY_OPTS = "redirect_dir=off,index=off,metacopy=off"
NOFILE = 8192
NPROC_BACKSTOP = 16384
"""RLIMIT_NPROC when a pids cgroup limits each sandbox (shared by all sandboxes of the user)."""
DISK_CHECK_S = 0.2


def _check_overlay_path(path: Path) -> None:
    if any(c in str(path) for c in ",:\\\n"):
        raise SandboxError(f"path unusable in an overlay mount (',', ':' or '\\'): {path}")


class BwrapSandbox(WorkspaceSandbox):
    """An isolated workspace; see the module docstring for the guarantees."""

    backend = "bwrap"

    def __init__(self, spec: SandboxSpec, home: Path) -> None:
        self.tools = host_tools()
        super().__init__(spec, home)
        uid = spec.limits.uid
        for layer in spec.layers:
            _check_overlay_path(Path(layer).absolute())
            adopt(Path(layer), uid)  # lower files must be the sandbox uid's to edit in place
        _check_overlay_path(self.dir)
        self.upper, self.work = self.dir / "upper", self.dir / "work"
        self.stage = self.dir / "stage"
        for d in (self.upper, self.work, self.stage, self.stage / "repo",
                  self.stage / "results"):
            d.mkdir()
        os.chmod(self.stage, 0o755)
        for d in (self.upper, self.stage / "results"):
            os.chown(d, uid, uid)
        self._empty = None if spec.layers else self._make_empty()
        self._binds: list[tuple[Path, str, str, bool]] = []  # host, stage name, inside, rw
        if spec.env_dir is not None:
            if spec.env_writable:
                adopt(Path(spec.env_dir), uid)
            self._binds.append((Path(spec.env_dir), "env", "/env", spec.env_writable))
        home_py = spec.python_home
        if home_py is not None and not (home_py == Path("/usr") or
                                        Path("/usr") in Path(home_py).parents):
            self._binds.append((Path(home_py), "py", spec.python_inside or str(home_py),
                                False))
        for i, (host, inside) in enumerate(spec.rw_binds):
            adopt(Path(host), uid)
            self._binds.append((Path(host), f"rw{i}", inside, True))
        for i, (host, inside) in enumerate(spec.ro_binds):
            self._binds.append((Path(host), f"ro{i}", inside, False))
        self._overlays: list[tuple[Path, str, str]] = []  # lower, stage name, inside
        for i, (host, inside) in enumerate(spec.overlay_binds):
            lower = Path(host).absolute()
            _check_overlay_path(lower)
            if not lower.is_dir():
                raise SandboxError(f"overlay bind source is not a directory: {host}")
            for d in ("upper", "work"):
                (self.dir / f"ov{i}-{d}").mkdir()
            os.chown(self.dir / f"ov{i}-upper", uid, uid)
            (self.stage / f"ov{i}").mkdir()
            self._overlays.append((lower, f"ov{i}", inside))
        for host, name, _, _ in self._binds:
            if not host.exists():
                raise SandboxError(f"bind source does not exist: {host}")
            if host.is_dir():
                (self.stage / name).mkdir()
            else:
                (self.stage / name).touch()
        self._system = system_binds()
        self._runs = 0

    def _disk_used(self) -> int:
        """Bytes the sandbox has written to the host disk: its upper dirs and results dir."""
        return (tree_usage(self.upper) + tree_usage(self.stage / "results")
                + sum(tree_usage(self.dir / f"{name}-upper") for _, name, _ in self._overlays))

    def _make_empty(self) -> Path:
        empty = self.dir / "empty"
        empty.mkdir()
        return empty

    # --- views -------------------------------------------------------------------------------
    def _top(self) -> Path:
        return self.upper

    def _owner(self) -> int | None:
        return self.spec.limits.uid

    @property
    def results_dir(self) -> tuple[Path, str]:
        return self.stage / "results", RESULTS_INSIDE

    def diff(self) -> str:
        with self._lock:
            self._check_open()
            return workspace_diff(self._view(), self._base(), [self.upper, *self._frozen])

    def freeze(self, dest: Path | None = None) -> Path:
        """Turn the changes so far into a read-only layer (a rename, not a copy).

        The sandbox goes on over the new layer with an empty upper dir; ``diff`` still
        compares against the spec's layers. The caller owns the returned directory.
        """
        with self._lock:
            self._check_open()
            target = self._layer_dest(dest)
            _check_overlay_path(target)
            try:
                os.rename(self.upper, target)
            except OSError as exc:
                raise SandboxError(f"freeze needs {target.parent} on the same filesystem "
                                   f"as {self.home}: {exc}") from exc
            self.upper.mkdir()
            os.chown(self.upper, self.spec.limits.uid, self.spec.limits.uid)
            clear_dir(self.work)  # overlay's work dir must not carry state to a new upper
            self._frozen.insert(0, target)
            return target

    # --- running -------------------------------------------------------------------------------
    def _script(self, cg: RunCgroup) -> str:
        q = shlex.quote
        lowers = [*self._frozen, *self.spec.layers] or [self._empty]
        opts = (f"lowerdir={':'.join(str(Path(p).absolute()) for p in lowers)},"
                f"upperdir={self.upper},workdir={self.work},{OVERLAY_OPTS}")
        lines = ["set -e"]
        lines += [f"echo $$ > {q(str(f))}" for f in cg.procs_files]
        lines.append(f"{self.tools.mount} -t overlay codemill -o {q(opts)} "
                     f"{q(str(self.stage / 'repo'))}")
        for host, name, _, _ in self._binds:
            lines.append(f"{self.tools.mount} --bind {q(str(host))} {q(str(self.stage / name))}")
        for lower, name, _ in self._overlays:
            ov = (f"lowerdir={lower},upperdir={self.dir / (name + '-upper')},"
                  f"workdir={self.dir / (name + '-work')},{OVERLAY_OPTS}")
            lines.append(f"{self.tools.mount} -t overlay codemill -o {q(ov)} "
                         f"{q(str(self.stage / name))}")
        lines.append(f"{self.tools.mount} --rbind {q(str(self.stage))} {STAGE_INSIDE_HOST}")
        lines.append('exec "$@"')
        return "\n".join(lines)

    def _limits_args(self, timeout_s: float, cgroup_limits: set[str]) -> list[str]:
        lim = self.spec.limits
        mem = lim.memory_mb * 1024 * 1024
        # The memory cgroup is the real limit; AS only stops absurd reservations, so that a
        # memory bomb is seen as an OOM kill. Without a memory cgroup, AS is the limit.
        address = mem * 4 + (1 << 30) if "memory" in cgroup_limits else mem
        # RLIMIT_NPROC counts every process of the sandbox user on the machine, so all
        # concurrent sandboxes share it: with a pids cgroup (the real, per-sandbox limit) it
        # is only a backstop and must not make one sandbox's fork fail because others run.
        nproc = max(lim.pids * 4, NPROC_BACKSTOP) if "pids" in cgroup_limits else lim.pids
        cpu = int(timeout_s * max(1.0, lim.cpu_quota)) + 5
        return [self.tools.prlimit, f"--as={address}", f"--cpu={cpu}",
                f"--fsize={lim.disk_mb * 1024 * 1024}", f"--nofile={NOFILE}",
                f"--nproc={nproc}", "--core=0", "--"]

    def _bwrap_args(self, env: Mapping[str, str], status_fd: int,
                    offline: bool = False) -> list[str]:
        lim, stage = self.spec.limits, STAGE_INSIDE_HOST
        args = [self.tools.bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                "--unshare-user", "--disable-userns", "--hostname", "sandbox", *self._system,
                "--proc", "/proc", "--dev", "/dev",
                "--size", str(lim.disk_mb * 1024 * 1024), "--tmpfs", "/tmp",
                "--bind", f"{stage}/repo", "/repo",
                "--bind", f"{stage}/results", RESULTS_INSIDE]
        if self.spec.network and not offline:
            args[1:2] = ["--unshare-all", "--share-net"]
            args += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
        for _, name, inside, rw in self._binds:
            args += ["--bind" if rw and not offline else "--ro-bind", f"{stage}/{name}", inside]
        for _, name, inside in self._overlays:
            args += ["--ro-bind" if offline else "--bind", f"{stage}/{name}", inside]
        args += ["--remount-ro", "/", "--chdir", "/repo", "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += ["--json-status-fd", str(status_fd), "--"]
        return args

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        offline: bool = False,
    ) -> ExecResult:
        """Run ``argv`` in /repo; see the module docstring. Never raises for what the
        command does; raises ``SandboxError`` when the sandbox itself cannot start.
        ``offline``: this command gets no network and every bind read-only (only /repo and
        the results dir stay writable), whatever the spec says: a build runs the project's
        own code this way, so it can neither reach out nor plant files in the venv being
        built or the shared package cache."""
        if not argv:
            raise SandboxError("empty command")
        with self._lock:
            self._check_open()
            self._runs += 1
            clear_dir(self.stage / "results")
            timeout = max(0.0, min(timeout_s, self.spec.limits.timeout_s))
            cg = RunCgroup.create(f"codemill-{self.id}-{self._runs}", self.spec.limits)
            try:
                return self._run(list(argv), timeout, env, stdin, cg, offline)
            finally:
                if not cg.remove():
                    raise SandboxError(f"cgroups of sandbox {self.id} could not be removed")

    def run_interactive(self, argv: Sequence[str], *, stdio_fd: int,
                        env: Mapping[str, str] | None = None,
                        timeout_s: float = 3600.0) -> int:
        """Run ``argv`` with stdin, stdout and stderr on ``stdio_fd`` until it exits and
        return its exit status (an interactive shell; nothing is captured). Same isolation
        as ``run``. ``stdio_fd`` must be a pty of the caller's own (never the user's
        terminal): the command stays in a new session, so it cannot reach a terminal it
        was not given. Added for ``codemill env shell``."""
        if not argv:
            raise SandboxError("empty command")
        with self._lock:
            self._check_open()
            self._runs += 1
            timeout = max(0.0, min(timeout_s, self.spec.limits.timeout_s))
            cg = RunCgroup.create(f"codemill-{self.id}-{self._runs}", self.spec.limits)
            status_r, status_w = os.pipe()
            try:
                home_env = self.sandbox_env(env, "/env" if self.spec.env_dir else None, "/tmp")
                full = [self.tools.unshare, "-m", "--propagation", "private", self.tools.sh,
                        "-c", self._script(cg), "codemill-sandbox",
                        *self._limits_args(timeout, cg.limits_applied),
                        self.tools.setpriv, f"--reuid={self.spec.limits.uid}",
                        f"--regid={self.spec.limits.uid}", "--clear-groups", "--no-new-privs",
                        "--inh-caps=-all", "--bounding-set=-all",
                        *self._bwrap_args(home_env, status_w), *argv]
                proc = subprocess.Popen(full, stdin=stdio_fd, stdout=stdio_fd, stderr=stdio_fd,
                                        pass_fds=(status_w,), start_new_session=True,
                                        env={"PATH": SYSTEM_PATH})
                os.close(status_w)
                status_w = -1
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
                finally:
                    cg.kill()
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                code = _exit_code(_read_all(status_r), proc.returncode)
                status_r = -1
                return code if code is not None else 1
            finally:
                for fd in (status_r, status_w):
                    if fd >= 0:
                        os.close(fd)
                if not cg.remove():
                    raise SandboxError(f"cgroups of sandbox {self.id} could not be removed")

    def _run(self, argv: list[str], timeout: float, env: Mapping[str, str] | None,
             stdin: str | None, cg: RunCgroup, offline: bool = False) -> ExecResult:
        home_env = self.sandbox_env(env, "/env" if self.spec.env_dir else None, "/tmp")
        status_r, status_w = os.pipe()
        stdin_fd = os.memfd_create("codemill-stdin")
        try:
            os.write(stdin_fd, text_bytes(stdin or ""))
            os.lseek(stdin_fd, 0, os.SEEK_SET)
            full = [self.tools.unshare, "-m", "--propagation", "private", self.tools.sh, "-c",
                    self._script(cg), "codemill-sandbox",
                    *self._limits_args(timeout, cg.limits_applied),
                    self.tools.setpriv, f"--reuid={self.spec.limits.uid}",
                    f"--regid={self.spec.limits.uid}", "--clear-groups", "--no-new-privs",
                    "--inh-caps=-all", "--bounding-set=-all",
                    *self._bwrap_args(home_env, status_w, offline), *argv]
            started = time.monotonic()
            proc = subprocess.Popen(full, stdin=stdin_fd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(status_w,),
                                    start_new_session=True, env={"PATH": SYSTEM_PATH})
        except OSError as exc:
            os.close(status_r)
            raise SandboxError(f"sandbox {self.id} could not start: {exc}") from exc
        finally:
            os.close(status_w)
            os.close(stdin_fd)

        def kill() -> None:
            cg.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        checked = {"at": 0.0, "cost": 0.0}

        def disk() -> str | None:
            # A big upper dir costs more to measure: check less often (<= ~2% of the time).
            now = time.monotonic()
            if now - checked["at"] < 50 * checked["cost"]:
                return None
            used = self._disk_used()
            checked["at"], checked["cost"] = time.monotonic(), time.monotonic() - now
            return "disk" if used > self.spec.limits.disk_mb << 20 else None

        try:
            out = drive(proc, started=started, timeout_s=timeout,
                        limit=self.spec.limits.output_limit, kill=kill, tick=disk,
                        tick_s=DISK_CHECK_S)
        finally:
            kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            status = _read_all(status_r)
            sanitize_results(self.stage / "results")
            over = self._disk_used() > self.spec.limits.disk_mb << 20
            if over:  # what the host would read back is bounded by the limit, always
                clear_dir(self.stage / "results")
        if '"child-pid"' not in status and out.killed_reason is None:
            line = (out.stderr.strip().splitlines() or [f"exit {out.exit_code}"])[-1]
            raise SandboxError(f"sandbox {self.id} could not start: {line}")
        events = cg.events()
        reason = out.killed_reason
        if over and reason is None:
            reason = "disk"
        if events.oom_kills:
            reason = "memory"
        elif events.pids_limited and (reason == "timeout" or out.exit_code != 0):
            reason = "pids"
        exit_code = _exit_code(status, out.exit_code)
        return ExecResult(exit_code=exit_code, stdout=out.stdout, stderr=out.stderr,
                          duration_s=out.duration_s, timed_out=out.killed_reason == "timeout",
                          killed_reason=reason, truncated=out.truncated,
                          stderr_truncated=out.stderr_truncated)


def _read_all(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _exit_code(status: str, fallback: int | None) -> int | None:
    """The command's own exit status from bwrap's status stream, when it reported one.

    bwrap reports a death by signal N as 128 + N, like a shell; it becomes -N here, as
    ``ExecResult`` wants (a command that itself exits with 129-159 reads the same way).
    """
    for line in status.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and "exit-code" in doc:
                code = int(doc["exit-code"])
                return 128 - code if 128 < code < 128 + 32 else code
    return fallback
