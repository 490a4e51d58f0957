"""Find the Python interpreters on this machine and pick one for a project.

Discovery looks where interpreters live in practice: ``/usr/bin`` and ``/usr/local/bin``,
pyenv (``$PYENV_ROOT/versions/*``), uv-managed Pythons and every ``python3*`` on ``PATH``
(virtualenvs resolve to their base interpreter; pyenv shims are skipped). Each candidate is
asked for its version and install prefix once per process. These are the machine's own
interpreters, trusted like the rest of the host; no project code runs here.

The install prefix matters for sandboxing: ``/root`` is mode 0700, so an interpreter under
``/root/.pyenv`` is invisible to an unprivileged sandbox unless its prefix is exposed
(``SandboxSpec.python_home``).

Choice (``choose_interpreter``): ``requires-python`` is a hard constraint; then, as soft
preferences that apply only when something is left: no newer than the newest version the
project declares (classifiers, CI matrix, tox/nox), no newer than its era (the newest
Python released before the snapshot date plus a grace period), and the newest of what
remains.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from pydantic import BaseModel, ConfigDict

from codemill.core.errors import BuildError

MIN_MINOR = 7
"""Oldest Python 3 minor the builder uses (uv and today's pip tooling need 3.7+)."""

RELEASES = {6: date(2016, 12, 23), 7: date(2018, 6, 27), 8: date(2019, 10, 14),
            9: date(2020, 10, 5), 10: date(2021, 10, 4), 11: date(2022, 10, 24),
            12: date(2023, 10, 2), 13: date(2024, 10, 7), 14: date(2025, 10, 7)}
"""First release date of each Python 3 minor version."""

ERA_GRACE = timedelta(days=30)
"""A project of date D is assumed to work on Pythons released up to D + this. Kept short:
dependencies resolved as of D rarely support (or ship wheels for) a later Python."""

_PROBE = ("import json, sys, platform; print(json.dumps({'v': platform.python_version(), "
          "'impl': sys.implementation.name, 'base': sys.base_prefix, "
          "'prefix': sys.prefix, 'exe': sys.executable}))")


class Interpreter(BaseModel):
    """One Python installation on the host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    """The executable to hand to ``uv venv --python``."""
    version: str
    """Full version, e.g. ``3.9.18``."""
    prefix: str
    """Install prefix (``sys.base_prefix``); exposed read-only inside sandboxes."""

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @property
    def short(self) -> str:
        return "{}.{}".format(*self.minor)


class InterpreterChoice(BaseModel):
    """The interpreter picked for a project and why, in words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interpreter: Interpreter
    reason: str


def _candidate_paths() -> list[str]:
    home = Path.home()
    pyenv = Path(os.environ.get("PYENV_ROOT", home / ".pyenv"))
    uv_dir = Path(os.environ.get("UV_PYTHON_INSTALL_DIR", home / ".local/share/uv/python"))
    patterns = ["/usr/bin/python3*", "/usr/local/bin/python3*",
                f"{pyenv}/versions/*/bin/python3", f"{uv_dir}/*/bin/python3"]
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and "shims" not in entry:
            patterns.append(os.path.join(entry, "python3*"))
    paths: list[str] = []
    for pattern in patterns:
        for p in sorted(glob.glob(pattern)):
            name = os.path.basename(p)
            if name.endswith(("-config", "m-config")) or not os.access(p, os.X_OK):
                continue
            if name == "python3" or name[len("python3"):].lstrip(".").replace(".", "").isdigit():
                paths.append(p)
    return list(dict.fromkeys(paths))


def _probe(path: str) -> Interpreter | None:
    try:
        out = subprocess.run([path, "-I", "-S", "-c", _PROBE], capture_output=True, text=True,
                             timeout=15, check=True).stdout
        data = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if data.get("impl") != "cpython":
        return None
    exe = path
    if data["prefix"] != data["base"]:  # a virtualenv: use the interpreter underneath
        exe = os.path.join(data["base"], "bin", os.path.basename(os.path.realpath(path)))
        if not os.access(exe, os.X_OK):
            return None
    return Interpreter(path=exe, version=data["v"], prefix=data["base"])


@functools.cache
def find_interpreters() -> tuple[Interpreter, ...]:
    """Every usable CPython 3.7+ on the machine, one per (version, prefix), oldest first."""
    found: dict[tuple[str, str], Interpreter] = {}
    for path in _candidate_paths():
        interp = _probe(path)
        if interp is None or interp.minor < (3, MIN_MINOR) or interp.minor[0] != 3:
            continue
        key = (interp.version, interp.prefix)
        found.setdefault(key, interp)  # the first place searched names it best
    return tuple(sorted(found.values(), key=lambda i: Version(i.version)))


def _specifier(requires_python: str) -> SpecifierSet | None:
    text = requires_python.strip().rstrip(",")
    for candidate in (text, text.replace(".*", ""), text.replace(" ", "")):
        try:
            return SpecifierSet(candidate)
        except InvalidSpecifier:
            continue
    return None


def _era(created_at: str) -> date | None:
    if not created_at:
        return None
    try:
        stamp = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).date()


def choose_interpreter(
    requires_python: str = "",
    declared: tuple[str, ...] = (),
    created_at: str = "",
    *,
    requested: str | None = None,
    available: tuple[Interpreter, ...] | None = None,
) -> InterpreterChoice:
    """Pick an interpreter (see the module docstring). ``requested`` is a version prefix
    (``3.9``) or a path and overrides the preferences but not existence. Raises
    ``BuildError`` when nothing fits."""
    pool = find_interpreters() if available is None else available
    if not pool:
        raise BuildError("no Python 3.7+ interpreter found on this machine")
    have = ", ".join(i.version for i in pool)
    if requested:
        for interp in reversed(pool):
            if requested in (interp.path, interp.version, interp.short) or \
                    interp.version.startswith(requested + "."):
                return InterpreterChoice(interpreter=interp, reason=f"requested {requested}")
        raise BuildError(f"requested Python {requested} not found", f"have {have}")
    spec = _specifier(requires_python) if requires_python else None
    allowed = [i for i in pool if spec is None or spec.contains(i.version, prereleases=True)]
    if not allowed:
        raise BuildError(f"no interpreter satisfies requires-python {requires_python!r}",
                         f"have {have}")
    why = [f"requires-python {requires_python!r}" if spec else "no requires-python"]
    declared_minors = [int(v.split(".")[1]) for v in declared]
    if declared_minors:
        newest = max(declared_minors)
        kept = [i for i in allowed if i.minor[1] <= newest]
        if kept:
            allowed = kept
            why.append(f"declared up to 3.{newest}")
    era = _era(created_at)
    if era is not None:
        kept = [i for i in allowed if RELEASES.get(i.minor[1], date.max) <= era + ERA_GRACE]
        allowed = kept or allowed[:1]
        why.append(f"era {era.isoformat()}" if kept else
                   f"era {era.isoformat()} predates every allowed interpreter: oldest taken")
    choice = allowed[-1]
    return InterpreterChoice(interpreter=choice, reason=f"{choice.version}: " + ", ".join(why))
