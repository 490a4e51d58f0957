"""Where an answer edited, against where the fix is: the localization half of a repair.

    where_edited(candidate_diff, gold_diff)   # "fix line", "near", "elsewhere" or "no edit"

A wrong answer is wrong either because it edited the wrong place or because it edited the
right place wrongly; pass@1 cannot tell the two apart, and for a small model they call for
different remedies (a shorter listing, or more examples of the fix). This is an analysis of
recorded attempts, after grading: the gold patch is read here, never shown to a model.

A line is named by its file and its line number in the *old* (broken) file, so both diffs
must be made against the same broken state, as every attempt and its task's gold patch are.
A pure insertion names the old line it follows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Literal

from codemill.core.diffs import parse_diff, repo_path, strip_level

Where = Literal["fix line", "near", "elsewhere", "no edit"]
NEAR_LINES = 2
"""An edit at most this many lines from a gold line counts as ``near``."""


def edited_lines(diff: str) -> set[tuple[str, int]]:
    """``(path, old line number)`` of every line ``diff`` removes or inserts after."""
    changes = parse_diff(diff)
    strip = strip_level(changes)
    out: set[tuple[str, int]] = set()
    for change in changes:
        path = change.old_path or change.new_path
        if path is None:
            continue
        path = repo_path(path, strip)
        for hunk in change.hunks:
            line = hunk.old_start
            for body in hunk.lines:
                mark = body[:1]
                if mark == "-":
                    out.add((path, line))
                    line += 1
                elif mark == "+":
                    out.add((path, max(line - 1, 0)))
                elif mark == " ":
                    line += 1
    return out


def where_edited(candidate: str | None, gold: str) -> Where:
    """How ``candidate``'s edits sit against ``gold``'s (see the module docstring)."""
    mine = edited_lines(candidate or "")
    if not mine:
        return "no edit"
    fix = edited_lines(gold)
    if mine & fix:
        return "fix line"
    if any(p == q and abs(a - b) <= NEAR_LINES for p, a in mine for q, b in fix):
        return "near"
    return "elsewhere"


def tally(pairs: Iterable[tuple[str | None, str]]) -> dict[str, int]:
    """Counts of ``where_edited`` over ``(candidate, gold)`` pairs, every key present."""
    counts = Counter(where_edited(c, g) for c, g in pairs)
    return {k: counts.get(k, 0) for k in ("fix line", "near", "elsewhere", "no edit")}
