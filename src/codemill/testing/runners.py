"""One way to run an environment's tests: its recorded ``test_command`` -> a runner.

The environment builder records a test command (``PYTHON -m pytest [opts]`` or
``PYTHON -m unittest discover -s DIR -p PATTERN``) and environment variables. Every place
that runs those tests (the build's baseline, task validation and coverage, grading) gets
its runner here, so a task is validated and graded with the same interpreter, options,
start dir and pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codemill.core.errors import TestRunError
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.unittest_runner import UnittestRunner

DEFAULT_PYTHON = "/env/bin/python"


def _option(args: list[str], short: str, long: str, default: str) -> str:
    for i, arg in enumerate(args):
        if arg in (short, long) and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
    return default


def runner_for_command(test_command: Sequence[str],
                       env_vars: Mapping[str, str] | Sequence[tuple[str, str]] = (),
                       *, safe_start: bool = True) -> PytestRunner | UnittestRunner:
    """The runner that runs ``test_command`` (empty: pytest with the environment's
    interpreter). ``TestRunError`` for a command that is neither pytest nor unittest:
    guessing would run the tests some other way than the build did."""
    env = dict(env_vars)
    cmd = tuple(test_command) or (DEFAULT_PYTHON, "-m", "pytest")
    if len(cmd) < 3 or cmd[1] != "-m" or cmd[2] not in ("pytest", "unittest"):
        raise TestRunError(f"not a test command codemill can run: {' '.join(cmd)[:200]}")
    python, module, args = cmd[0], cmd[2], list(cmd[3:])
    if module == "unittest":
        if args[:1] == ["discover"]:
            args = args[1:]
        return UnittestRunner(python=python,
                              start_dir=_option(args, "-s", "--start-directory", "."),
                              pattern=_option(args, "-p", "--pattern", "test*.py"), env=env,
                              safe_start=safe_start)
    return PytestRunner(python=python, extra_args=args, env=env, safe_start=safe_start)


def same_runner_with(runner: Any, *, extra_args: Sequence[str] = (),
                     env: Mapping[str, str] | None = None) -> PytestRunner:
    """A pytest runner like ``runner`` plus ``extra_args`` and ``env`` (the coverage pass
    adds its plugin this way, keeping everything else the environment recorded)."""
    if not isinstance(runner, PytestRunner):
        raise TestRunError("this pass needs a pytest environment")
    return PytestRunner(runner.python, (*runner.extra_args, *extra_args),
                        {**runner.env, **(env or {})}, rootdir=runner.rootdir,
                        safe_start=runner.safe_start)
