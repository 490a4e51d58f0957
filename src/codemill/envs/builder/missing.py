"""Tests that need files the snapshot does not have: a submodule that could not be fetched,
a data directory left out of a release, data a test meant to download.

``missing_inputs(report, tree)`` reads one baseline run: every failed or errored test (a
test module's collection error included) whose message names a path under a submodule that
is absent from ``tree`` (``repos.submodules.missing_submodules``), or a file that is absent
from ``tree`` (``No such file or directory: '...'``), is unusable for that reason. The
environment stays usable when the rest of the suite passes; the reason names the missing
input and the tests, so a person knows what to fetch. Messages come from the project's own
tests and are only matched against paths, never trusted for a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from codemill.core.records import Outcome, TestReport
from codemill.repos.submodules import missing_submodules

_NO_FILE = re.compile(r"No such file or directory: ['\"]([^'\"]+)['\"]")
REPO = "/repo/"


@dataclass(frozen=True)
class MissingInput:
    what: str
    """``submodule PATH (URL)`` or ``file PATH``."""
    tests: tuple[str, ...]
    """Node ids (a module's path for a collection error) that need it."""


def missing_inputs(report: TestReport, tree: Path) -> list[MissingInput]:
    """What the failing tests of ``report`` miss in ``tree``, most tests first."""
    subs = missing_submodules(tree)
    needs: dict[str, list[str]] = {}
    for res in report.results:
        if res.outcome not in (Outcome.FAILED, Outcome.ERROR) or not res.message:
            continue
        what = _submodule_named(res.message, subs) or _file_missing(res.message, tree, subs)
        if what:
            needs.setdefault(what, []).append(res.node_id)
    return sorted((MissingInput(w, tuple(sorted(t))) for w, t in needs.items()),
                  key=lambda m: (-len(m.tests), m.what))


def _submodule_named(message: str, subs: list) -> str | None:
    for sub in subs:
        if re.search(rf"(?<![\w.-]){re.escape(sub.path)}(?:/|['\"\s]|$)", message):
            return f"submodule {sub.path} ({sub.url or 'no URL'}, not fetched)"
    return None


def _file_missing(message: str, tree: Path, subs: list) -> str | None:
    for path in _NO_FILE.findall(message):
        rel = path.removeprefix(REPO) if path.startswith(REPO) else path
        if rel.startswith("/") or ".." in rel.split("/"):
            continue  # outside the workspace: not the snapshot's to have
        under = next((s for s in subs if rel == s.path or rel.startswith(s.path + "/")), None)
        if under is not None:
            return f"submodule {under.path} ({under.url or 'no URL'}, not fetched)"
        if not (tree / rel).exists():
            return f"file {rel} (not in the snapshot)"
    return None


def describe(missing: list[MissingInput], limit: int = 3) -> str:
    """One line: how many tests need what, with a few of them named."""
    parts = []
    for m in missing[:limit]:
        shown = ", ".join(m.tests[:3]) + (", ..." if len(m.tests) > 3 else "")
        many = len(m.tests) != 1
        parts.append(f"{len(m.tests)} test{'s need' if many else ' needs'} {m.what}: {shown}")
    return "; ".join(parts)
