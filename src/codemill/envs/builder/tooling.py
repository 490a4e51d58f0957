"""When pytest itself breaks: tell it from a failing suite, and the test tooling of the
snapshot's day to try instead.

A build on today's index gets the newest pytest, which may refuse what an older project
does: a conftest hook with an argument pytest removed (``pytest_collect_file(path,
parent)``), ``import py`` after pytest stopped shipping it, a plugin written against
internals that moved. That is not the project failing its tests: the builder reinstalls
the test tooling (pytest, pluggy, ``py``, ``iniconfig`` and every installed ``pytest-*``
plugin) as it was at the snapshot's date, no older than ``BuildConfig.pytest_floor``
(the harness needs pytest >= 6), and collects again. Signs of a broken pytest are read
from the collection's output (an untrusted text, used only to choose whether to retry).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from codemill.core.records import ExecResult
from codemill.envs.builder.plan import PYTHON, UV_INSIDE, BuildConfig, later_of, snapshot_time
from codemill.envs.builder.reasons import install_failure, telling_line

TOOLING_CORE = ("pytest", "pluggy", "py", "iniconfig")
MIN_AGE_DAYS = 30
"""A snapshot younger than this has the same test tooling as today: nothing to retry."""

_BROKEN = re.compile(
    r"INTERNALERROR>|PluginValidationError|PytestRemovedIn\d+Warning|unknown hook|"
    r"No module named '(?:py|_pytest)(?:[.'])|module '(?:py|pytest|_pytest[\w.]*)' has no "
    r"attribute")


def pytest_broken(res: ExecResult) -> bool:
    """Did collection fail because of pytest itself (exit 3, an internal error, a plugin
    or conftest it refused, an API of pytest's gone), as opposed to the project's code?
    A collection that succeeded (exit 0, or 5: nothing collected) never counts."""
    if res.exit_code in (0, 5) or res.timed_out:
        return False
    return res.exit_code == 3 or bool(_BROKEN.search(res.stdout + "\n" + res.stderr))


def tooling_cutoff(created_at: str, config: BuildConfig, now: datetime | None = None
                   ) -> str | None:
    """The date to resolve test tooling by: the snapshot's (plus the era's grace), never
    before ``pytest_floor``; None when the snapshot has no date or is recent."""
    stamp = snapshot_time(created_at)
    if stamp is None:
        return None
    if (now or datetime.now(UTC)) - stamp < timedelta(days=MIN_AGE_DAYS):
        return None
    date = (stamp + timedelta(days=config.era_grace_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return later_of(date, config.pytest_floor)


def tooling_names(freeze_output: str) -> list[str]:
    """The test tooling among the installed distributions (``uv pip freeze`` lines)."""
    names = [line.split("==")[0].split(" @ ")[0].strip().lower().replace("_", "-")
             for line in freeze_output.splitlines() if line and not line.startswith("#")]
    return list(dict.fromkeys([*TOOLING_CORE, *(n for n in names if n.startswith("pytest-"))]))


def tooling_argv(install_argv: list[str], names: list[str], cutoff: str) -> list[str]:
    """``install_argv`` again, with ``names`` re-resolved as of ``cutoff`` (reinstalled,
    so that releases newer than the cutoff give way)."""
    argv = list(install_argv)
    for name in names:
        argv += ["--exclude-newer-package", f"{name}={cutoff}", "--reinstall-package", name]
    return argv


def freeze_argv() -> list[str]:
    return [UV_INSIDE, "pip", "freeze", "--python", PYTHON]


def retry_tooling(run: Callable[..., ExecResult], collect: Callable[[], ExecResult],
                  install_argv: list[str], created_at: str, config: BuildConfig,
                  say: Callable[[str], None], collected: ExecResult | None = None
                  ) -> list[str]:
    """When pytest breaks on the suite (``collected``, else a fresh ``collect()``),
    reinstall the test tooling as of the snapshot's date with ``run(name, argv)`` in the
    build sandbox, in place: a reinstall that does not resolve leaves the venv as it was.
    Notes for people on what happened ([] when pytest did not break)."""
    res = collected or collect()
    if not pytest_broken(res):
        return []
    broke = telling_line(res.stdout + "\n" + res.stderr) or f"exit {res.exit_code}"
    cutoff = tooling_cutoff(created_at, config)
    if cutoff is None:
        return [f"pytest breaks on the suite ({broke}); the snapshot is too recent (or has "
                "no date) for older test tooling"]
    day = cutoff[:10]
    say(f"pytest breaks on the suite; test tooling as of {day}")
    names = tooling_names(run("list test tooling", freeze_argv(), 120).stdout)
    res = run(f"test tooling as of {day}", tooling_argv(install_argv, names, cutoff))
    if not res.ok:
        return [f"pytest breaks on the suite ({broke}); test tooling as of {day} did not "
                f"install: {install_failure(res)}"]
    again = collect()
    if pytest_broken(again):
        return [f"pytest breaks on the suite with the newest test tooling ({broke}) and "
                f"with the tooling as of {day} "
                f"({telling_line(again.stdout + chr(10) + again.stderr)})"]
    return [f"test tooling as of {day} (the newest pytest broke on the suite: {broke})"]
