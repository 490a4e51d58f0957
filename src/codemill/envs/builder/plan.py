"""What to install, and in which order to fall back: the install attempts of a build.

A build tries, richest first, until one installs:

1. the project (editable) with its test extras and the optional ``all``-like extras, the
   test requirements found elsewhere (requirements files, tox, nox, Poetry dev groups),
   PEP 735 test groups and the harness (pytest, coverage, plugins the config needs);
2. the same without the optional extras and the outside requirements ("lean").

Within an attempt, installation degrades one requirement at a time
(``codemill.envs.builder.degrade``): a distribution that fails to build is tried at
another version, then dropped alone (an override removes it wherever it comes from) and
recorded; the attempt carries those changes (``exempt``, ``excluded``, ``dropped``). Only
when that cannot help (the project itself does not build, a conflict nothing of ours
causes) does the next attempt start.

When the snapshot is older than ``era_after_days``, both are tried first resolved as of
its date (``--exclude-newer``: the test tools and libraries of its day), then without the
date. pytest and its own dependencies get a floor date (the harness needs pytest >= 6).
In an era attempt the project itself is built without build isolation, against build
requirements installed into the venv first with a floor date (``build_tools_floor``):
setuptools, flit and poetry of 2018 cannot make editable installs, while the era's own
dependencies that come as sdists still build in isolation with the tools of their day
(``markupsafe 1.0`` does not build with a 2023 setuptools).

Every command runs in the build sandbox, where ``/repo`` is the snapshot, ``/env`` the
venv being built and ``UV`` the uv binary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from codemill.core.config import BaselineConfig
from codemill.core.dates import parse_iso
from codemill.envs.builder.requirements import without
from codemill.repos.detect.project import ProjectInfo

UV_INSIDE = "/opt/codemill/uv"
UV_CACHE_INSIDE = "/opt/codemill/uv-cache"
INPUTS_INSIDE = "/opt/codemill/inputs"
"""Where an attempt's constraints and overrides files are bound (read-only)."""
FIND_LINKS_INSIDE = "/opt/codemill/find-links"
REPO = "/repo"
PYTHON = "/env/bin/python"


class BuildConfig(BaseModel):
    """How environments are built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline_runs: int = 1
    """Full runs of the suite, each in a fresh fork (outcomes, durations; with 2 or more,
    flakiness over the whole suite)."""
    baseline_repeat: BaselineConfig | None = BaselineConfig()
    """After the full runs, a sample of the tests once more within a time budget, to look
    for flaky tests at a fraction of a suite's cost (None: no repeat)."""
    install_timeout_s: float = 1200.0
    """Wall-clock limit of one install command (resolution and builds of sdists)."""
    test_timeout_s: float = 900.0
    """Wall-clock limit of one run of the suite."""
    memory_mb: int = 6144
    """Memory of the build sandbox (compiling extensions needs more than tests)."""
    era_after_days: int = 365
    """Resolve as of the snapshot's date when it is older than this."""
    era_grace_days: int = 1
    """Releases up to this many days after the snapshot date still count as its era."""
    build_tools_floor: str = "2023-06-01"
    """Cutoff never older than this for the project's own build requirements in an era
    attempt: older setuptools, flit and poetry-core cannot do editable installs."""
    pytest_floor: str = "2021-01-01"
    """Newest-release cutoff never older than this for pytest and its own dependencies
    (the harness needs pytest >= 6)."""
    fix_missing_imports: bool = True
    """After installing, collect the tests once and install distributions for modules that
    fail to import (a generic name map; never per-project rules)."""
    max_import_rounds: int = 2
    max_era_exemptions: int = 6
    """Retries of an era attempt, each exempting from the date the packages the resolver
    names as having no release in the era."""
    max_requirement_retries: int = 6
    """Retries of one attempt that relax or drop a single failing requirement."""
    tooling_retry: bool = True
    """When the installed pytest cannot run the suite (an internal error, a plugin or
    conftest it refuses), reinstall pytest and its plugins as of the snapshot's date."""
    find_links: tuple[str, ...] = ()
    """Local directories of wheels and sdists offered next to the index (``--find-links``),
    bound read-only into the build sandbox; they must be readable by the sandbox's uid."""


FLOORED_PYTEST = ("pytest", "pluggy", "py", "iniconfig", "attrs", "toml", "importlib-metadata",
                  "zipp")
"""pytest 6 and what it needs (``iniconfig`` did not exist before late 2020): without their
floor, an era before 2021 has no pytest the harness can drive and the era is abandoned."""


@dataclass(frozen=True)
class Attempt:
    """One way to install the project."""

    label: str
    lean: bool
    exclude_newer: str | None
    """ISO date: only releases uploaded before it; None for today's index."""
    exempt: tuple[tuple[str, str], ...] = ()
    """(package, other cutoff): packages the resolver said the era has no fitting release
    of, given a later date one rung at a time (see ``widen``), or a package that failed to
    build, given another date (``degrade``)."""
    excluded: tuple[str, ...] = ()
    """Constraints (``x!=1.2``) keeping a release that failed to build out."""
    dropped: tuple[tuple[str, str], ...] = ()
    """(package, why): requirements left out because no release of them would install;
    an override removes each wherever it comes from (an extra, a dependency)."""


def snapshot_time(created_at: str) -> datetime | None:
    """A snapshot's ISO 8601 date as an aware datetime (UTC when it names no zone); None
    when it is empty or unreadable (``codemill.core.dates.parse_iso``)."""
    return parse_iso(created_at)


def era_cutoff(created_at: str, config: BuildConfig, now: datetime | None = None) -> str | None:
    """The ``--exclude-newer`` date for a snapshot made at ``created_at``, or None when it
    is recent (or unknown)."""
    stamp = snapshot_time(created_at)
    if stamp is None:
        return None
    now = now or datetime.now(UTC)
    if now - stamp < timedelta(days=config.era_after_days):
        return None
    return (stamp + timedelta(days=config.era_grace_days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def attempts(info: ProjectInfo, created_at: str, config: BuildConfig) -> list[Attempt]:
    cutoff = era_cutoff(created_at, config)
    rich = bool(info.optional_extras or info.test_requirements or info.dependency_groups)
    out = []
    for date in ([cutoff, None] if cutoff else [None]):
        tag = f"as of {date[:10]}" if date else "latest"
        out.append(Attempt(f"full, {tag}", False, date))
        if rich:
            out.append(Attempt(f"lean, {tag}", True, date))
    return out


def input_files(attempt: Attempt) -> dict[str, str]:
    """The files ``attempt`` hands uv (bound at ``INPUTS_INSIDE``): constraints keeping
    failed releases out, overrides removing dropped requirements (a marker that never
    holds is how uv leaves a dependency out wherever it is declared)."""
    files = {}
    if attempt.excluded:
        files["constraints.txt"] = "\n".join(attempt.excluded) + "\n"
    if attempt.dropped:
        files["overrides.txt"] = "".join(f'{name} ; python_version < "0"\n'
                                         for name, _ in attempt.dropped)
    return files


def input_flags(attempt: Attempt) -> list[str]:
    files = input_files(attempt)
    flags = []
    if "constraints.txt" in files:
        flags += ["--constraints", f"{INPUTS_INSIDE}/constraints.txt"]
    if "overrides.txt" in files:
        flags += ["--overrides", f"{INPUTS_INSIDE}/overrides.txt"]
    return flags


def find_links_flags(config: BuildConfig) -> list[str]:
    return [arg for i in range(len(config.find_links))
            for arg in ("--find-links", f"{FIND_LINKS_INSIDE}/{i}")]


def later_of(a: str, b: str) -> str:
    return max(a, b if "T" in b else f"{b}T00:00:00Z")


def install_argv(info: ProjectInfo, attempt: Attempt, config: BuildConfig,
                 extra: tuple[str, ...] = ()) -> list[str]:
    """The ``uv pip install`` command of ``attempt`` (plus ``extra`` requirements)."""
    argv = [UV_INSIDE, "pip", "install", "--python", PYTHON]
    if info.installable:
        extras = list(info.test_extras) + ([] if attempt.lean else list(info.optional_extras))
        target = REPO + (f"[{','.join(extras)}]" if extras else "")
        argv += ["-e", target]
        if not attempt.lean:
            for group in info.dependency_groups:
                argv += ["--group", f"{REPO}/pyproject.toml:{group}"]
    gone = {name for name, _ in attempt.dropped}
    argv += without(info.harness_requirements, gone)
    if not attempt.lean or not info.installable:
        argv += without(info.test_requirements, gone)
    argv += list(extra)
    argv += input_flags(attempt) + find_links_flags(config)
    if attempt.exclude_newer:
        argv += ["--exclude-newer", attempt.exclude_newer]
        if prebuild_argv(info, attempt, config):
            argv += ["--no-build-isolation-package", info.name]
        for name in FLOORED_PYTEST:
            argv += ["--exclude-newer-package",
                     f"{name}={later_of(attempt.exclude_newer, config.pytest_floor)}"]
        for name, cutoff in attempt.exempt:
            argv += ["--exclude-newer-package", f"{name}={cutoff}"]
    return argv


SETUPTOOLS_BACKENDS = ("", "setuptools.build_meta", "setuptools.build_meta:__legacy__")


def prebuild_argv(info: ProjectInfo, attempt: Attempt, config: BuildConfig) -> list[str]:
    """For an era attempt: install the project's build requirements into the venv, as of
    ``max(era, build_tools_floor)`` (so that the project can be built editable without
    isolation); [] when not needed or not possible (no era, or the name is unknown)."""
    if not (attempt.exclude_newer and info.installable and info.name
            and info.build_requirements):
        return []
    reqs = list(info.build_requirements)
    if info.build_backend in SETUPTOOLS_BACKENDS:
        reqs.append("setuptools>=64")  # the first with editable installs (PEP 660)
    cutoff = later_of(attempt.exclude_newer, config.build_tools_floor)
    return [UV_INSIDE, "pip", "install", "--python", PYTHON, *reqs, "--exclude-newer", cutoff,
            *find_links_flags(config)]


_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]*)"
_BLOCKED = (
    re.compile(rf"`{_NAME}` was filtered by `exclude-newer`"),
    re.compile(rf"Because all versions of {_NAME}(?:\{{[^}}]*\}})? have"),
    re.compile(rf"Because there are no (?:usable )?versions of {_NAME}(?:\{{[^}}]*\}})?"),
)
RUNGS_DAYS = (365, 730, 1460)
"""How far past the era an exempted package's cutoff moves, one rung per retry (then
today): as little newer as resolves, since a much newer release (setuptools 80 for a
2018 sdist) breaks what the era's own packages expect."""


def era_blockers(output: str) -> tuple[str, ...]:
    """Packages the resolver says have no fitting release before the era's date: uv's
    ``hint: `X` was filtered by `exclude-newer```, or no version at all that it can use
    (``all versions of X have a non-PEP 625-compliant source distribution filename``:
    old sdists in ``.tar.bz2`` form)."""
    found = [m.group(1) for rx in _BLOCKED for m in rx.finditer(output)]
    return tuple(dict.fromkeys(found))


def widen(attempt: Attempt, blockers: tuple[str, ...], now: datetime | None = None
          ) -> Attempt | None:
    """``attempt`` with each blocker's cutoff one rung later; None when every blocker is
    already at today (nothing left to try)."""
    if not attempt.exclude_newer or not blockers:
        return None
    era = parse_iso(attempt.exclude_newer)
    if era is None:
        return None
    now = now or datetime.now(UTC)
    rungs = [era + timedelta(days=d) for d in RUNGS_DAYS if era + timedelta(days=d) < now]
    rungs = [r.strftime("%Y-%m-%dT%H:%M:%SZ") for r in [*rungs, now]]
    current = dict(attempt.exempt)
    changed = False
    for name in blockers:
        later = [r for r in rungs if r > current.get(name, "")]
        if later:
            current[name] = later[0]
            changed = True
    if not changed:
        return None
    base = attempt.label.split(" +")[0]
    return replace(attempt, label=f"{base} +{len(current)} exempt",
                   exempt=tuple(sorted(current.items())))


def venv_argv(python_path: str) -> list[str]:
    return [UV_INSIDE, "venv", "--relocatable", "--python", python_path, "--no-config",
            "/env"]


def repo_path_argv() -> list[str]:
    """For a tree that cannot be installed: a ``.pth`` file putting /repo and /repo/src on
    the path (site skips the one that does not exist), written inside the sandbox."""
    script = (f'sp=$({PYTHON} -c "import sysconfig; print(sysconfig.get_paths()[\'purelib\'])")'
              ' && printf "/repo\\n/repo/src\\n" > "$sp/_codemill_repo.pth"')
    return ["/bin/sh", "-c", script]


def uv_env(info: ProjectInfo, cert_file: str | None) -> dict[str, str]:
    """Variables of every install command: the cache inside the sandbox, no user config,
    no interpreter downloads, copies not links (the cache is another mount), the
    system's certificates (corporate proxies), and the project's pretend versions."""
    env = {"UV_CACHE_DIR": UV_CACHE_INSIDE, "UV_NO_CONFIG": "1",
           "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy", "UV_SYSTEM_CERTS": "1",
           "UV_NO_PROGRESS": "1", "NO_COLOR": "1", "UV_HTTP_TIMEOUT": "120",
           "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    if cert_file:
        env["SSL_CERT_FILE"] = cert_file
    env.update(dict(info.env_vars))
    return env
