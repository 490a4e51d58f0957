"""Using a built environment: run its tests, a command or an interactive shell, each in a
fresh fork (a new sandbox over the environment; its changes are dropped on close).

The shell gets a pseudo-terminal of its own: the sandbox's end is a pty allocated here,
and this process relays bytes between it and the user's terminal. The sandboxed shell
never holds the user's real terminal, so terminal tricks (``TIOCSTI`` input injection into
the parent shell) reach only the pty it already owns.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Sequence

from codemill.core.config import Settings
from codemill.core.errors import BuildError, SandboxError
from codemill.core.records import EnvSpec, ExecResult, TestReport
from codemill.envs import installs
from codemill.envs.builder.verdict import make_runner
from codemill.sandbox.api import open_sandbox


def _open(env: EnvSpec, settings: Settings, timeout_s: float) -> object:
    limits = settings.sandbox.model_copy(update={
        "timeout_s": max(settings.sandbox.timeout_s, timeout_s)})
    return open_sandbox(installs.sandbox_spec(env, settings.home, limits), settings.home)


def run_tests(env: EnvSpec, settings: Settings, *, keyword: str | None = None,
              selection: Sequence[str] | None = None, timeout_s: float = 900.0) -> TestReport:
    """The suite of ``env`` (or a selection / ``-k`` expression) in a fresh fork."""
    runner = make_runner(env.test_command, env.env_vars)
    sb = _open(env, settings, timeout_s)
    try:
        if keyword:
            if not hasattr(runner, "extra_args"):
                raise BuildError("-k needs a pytest environment")
            return runner.run(sb, selection, timeout_s=timeout_s, keyword=keyword)
        return runner.run(sb, selection, timeout_s=timeout_s)
    finally:
        sb.close()  # type: ignore[attr-defined]


def exec_in_env(env: EnvSpec, settings: Settings, argv: Sequence[str], *,
                timeout_s: float = 600.0) -> ExecResult:
    """Run ``argv`` in /repo of a fresh fork of ``env`` with the env's variables."""
    if not argv:
        raise BuildError("no command given (put it after --)")
    with _open(env, settings, timeout_s) as sb:  # type: ignore[attr-defined]
        return sb.run(list(argv), timeout_s=timeout_s, env=dict(env.env_vars))


def _relay(master: int, done: threading.Event) -> None:
    """Copy the user's stdin to the pty and the pty to stdout until ``done``."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    while not done.is_set():
        try:
            ready, _, _ = select.select([stdin, master], [], [], 0.1)
        except (OSError, ValueError):
            return
        try:
            if master in ready:
                data = os.read(master, 65536)
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    return
                os.write(master, data)
        except OSError:
            return


def _copy_size(master: int) -> None:
    import fcntl

    with contextlib.suppress(OSError):
        size = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def shell_in_env(env: EnvSpec, settings: Settings, *, timeout_s: float = 8 * 3600.0) -> int:
    """An interactive bash in a fresh fork of ``env``; returns its exit status."""
    master, slave = os.openpty()
    _copy_size(master)
    saved = termios.tcgetattr(sys.stdin.fileno())
    done = threading.Event()
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_size(master))
    try:
        with _open(env, settings, timeout_s) as sb:  # type: ignore[attr-defined]
            if not hasattr(sb, "run_interactive"):
                raise SandboxError(f"the {sb.backend} sandbox has no interactive mode")
            tty.setraw(sys.stdin.fileno(), termios.TCSANOW)  # keep type-ahead input
            pump = threading.Thread(target=_relay, args=(master, done), daemon=True)
            pump.start()
            argv = ["/usr/bin/setsid", "--ctty", "/bin/bash", "--norc", "-i"]
            shell_env = {**dict(env.env_vars), "TERM": os.environ.get("TERM", "xterm"),
                         "PS1": r"(codemill \w)\$ "}
            code = sb.run_interactive(argv, stdio_fd=slave, env=shell_env,
                                      timeout_s=timeout_s)
            done.set()
            pump.join(timeout=1)
            return code
    finally:
        done.set()
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
        os.close(slave)
        os.close(master)
