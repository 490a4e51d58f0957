"""Degrade an install one requirement at a time, never all at once.

When ``uv pip install`` fails, its output says why. The ways out, in order:

- a build failure of one distribution (``Failed to build `X==1.2```): try ``X`` once at
  another version (an era attempt: ``X``'s newest release, since an old release that does
  not build on a current interpreter is the usual cause; today's index: ``X`` as of the
  snapshot's date, when the snapshot is old enough to have an era; else any release but
  the one that failed); when ``X`` fails again, drop ``X`` alone, recording which release
  failed and why;
- a resolution failure that names a requirement this module relaxed (its constraint left
  no release) or an outside test requirement (requirements files, tox deps: less
  authoritative than the project's own metadata): drop that one;
- anything else (the project itself does not build, the index is unreachable, a conflict
  inside the project's own dependencies): give up on this attempt (the caller tries the
  next one, and says which attempts were tried).

Every step is bounded (``BuildConfig.max_requirement_retries`` per attempt).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from packaging.utils import canonicalize_name

from codemill.envs.builder.plan import Attempt
from codemill.envs.builder.reasons import failed_distribution
from codemill.envs.builder.requirements import requirement_key
from codemill.repos.detect.project import ProjectInfo

_NAMES = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?:[<>=!~]=?|\b)")


@dataclass(frozen=True)
class Step:
    """What to try next after a failed install, and why."""

    attempt: Attempt
    note: str
    """One line for the log: ``retrying x at its newest release (x==1.0 failed to build)``."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _touched(attempt: Attempt) -> set[str]:
    """Packages this module already relaxed in ``attempt``."""
    names = {canonicalize_name(n) for n, _ in attempt.exempt}
    names |= {requirement_key(c) for c in attempt.excluded}
    return names


def _relax(attempt: Attempt, name: str, version: str, era: str | None) -> Step:
    if attempt.exclude_newer:
        exempt = dict(attempt.exempt) | {name: _now()}
        return Step(replace(attempt, exempt=tuple(sorted(exempt.items()))),
                    f"retrying {name} at its newest release ({name}=={version} of the era "
                    "failed to build)")
    if era and name not in dict(attempt.exempt):
        exempt = dict(attempt.exempt) | {name: era}
        return Step(replace(attempt, exempt=tuple(sorted(exempt.items()))),
                    f"retrying {name} as of {era[:10]} ({name}=={version} failed to build)")
    return Step(replace(attempt, excluded=(*attempt.excluded, f"{name}!={version}")),
                f"retrying {name} at another release than {version}, which failed to build")


def _drop(attempt: Attempt, name: str, why: str) -> Step:
    """``attempt`` without ``name`` (its relaxations go: the override removes it)."""
    excluded = tuple(c for c in attempt.excluded if requirement_key(c) != name)
    return Step(replace(attempt, dropped=(*attempt.dropped, (name, why)), excluded=excluded),
                f"dropping {name}: {why}")


def degrade(attempt: Attempt, output: str, why: str, project: ProjectInfo,
            era: str | None, first_failures: dict[str, str] | None = None) -> Step | None:
    """The next attempt after ``attempt`` failed with ``output`` (``why``: its reason in
    words), relaxing or dropping one requirement; None when no single requirement is at
    fault. ``era`` is the snapshot's ``--exclude-newer`` date (None when it has none);
    ``first_failures`` (package -> reason) the first build failure of each package, which
    a drop records rather than the resolver's complaint about a relaxed pin."""
    first = first_failures or {}
    own = canonicalize_name(project.name) if project.name else ""
    gone = {n for n, _ in attempt.dropped}
    failed = failed_distribution(output)
    if failed is not None:
        name, version = failed
        if name == own or not version or name in gone:
            return None  # the project itself, or a local or URL build: nothing to relax
        if name in _touched(attempt):
            return _drop(attempt, name, first.get(name, why))
        return _relax(attempt, name, version, era)
    if "No solution found" not in output:
        return None
    named = [canonicalize_name(m.group(1)) for m in _NAMES.finditer(_conflict_text(output))]
    relaxed = [n for n in named if n in _touched(attempt) and n not in gone]
    if relaxed:
        return _drop(attempt, relaxed[0], first.get(relaxed[0], why))
    outside = {requirement_key(r) for r in project.test_requirements} - gone - {own}
    blamed = [n for n in named if n in outside]
    if blamed and not attempt.lean:
        return _drop(attempt, blamed[0], why)
    return None


def _conflict_text(output: str) -> str:
    """The resolver's explanation (from ``No solution found`` on), where package names
    appear; the lines before it are progress."""
    at = output.find("No solution found")
    return output[at:] if at >= 0 else ""


def notes(attempt: Attempt, first_failures: dict[str, str]) -> list[str]:
    """For people: each requirement the successful ``attempt`` left out or installed at
    another release than first chosen, and why."""
    out = [f"without {name} ({why})" for name, why in attempt.dropped]
    out += [f"{c} ({first_failures[requirement_key(c)]})" for c in attempt.excluded
            if requirement_key(c) in first_failures]
    out += [f"{name} as of {date[:10]} ({first_failures[name]})" for name, date in attempt.exempt
            if name in first_failures]
    return out


def summary(attempt: Attempt) -> str:
    """``attempt``'s label with what was relaxed and dropped, for people."""
    parts = [attempt.label]
    if attempt.dropped:
        parts.append("without " + ", ".join(n for n, _ in attempt.dropped))
    if attempt.excluded:
        parts.append(", ".join(attempt.excluded))
    return "; ".join(parts)
