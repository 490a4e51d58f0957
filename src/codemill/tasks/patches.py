"""Task patches: unified diffs between file states, and applying them to file states.

A *state change* is a mapping ``path -> bytes | None`` (None: the file is absent). Every
patch codemill stores (``broken_patch``, ``gold_patch``, ``test_patch``) is made here from
two such mappings, in git's format (``diff --git a/p b/p``), so ``git apply`` and SWE-bench
tooling accept it. A rename is written as a deletion plus an addition: simpler for every
consumer and lossless for text. Binary files are out of scope: ``make_diff`` refuses them
(``BinaryChangeError``) so callers can skip the candidate with a reason instead of storing
a patch that cannot be applied.

``apply_patch`` is the inverse, done by ``git apply`` (``codemill.core.diffs``, the one
applier) in a scratch directory holding only the files the patch touches: context must
match (a hunk may move by an offset, no fuzz); anything else raises ``TaskError`` with
git's reason. Reading and writing diffs is ``codemill.core.diffs`` too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from codemill.core.diffs import (
    BinaryChangeError,  # noqa: F401 (re-exported)
    git_apply_on_host,
    new_path,
    parse_diff,
    repo_path,
    strip_level,
    text_or_none,
    touched_paths,
)
from codemill.core.diffs import file_diff as core_file_diff
from codemill.core.errors import TaskError

Changes = dict[str, bytes | None]


def is_text(data: bytes | None) -> bool:
    """Whether a text patch can carry ``data`` (absent counts as text)."""
    return data is None or text_or_none(data) is not None


def file_diff(path: str, old: bytes | None, new: bytes | None, context: int = 3) -> str:
    """The git-style diff of one file; empty when nothing changed (``codemill.core.diffs``,
    the one writer). ``BinaryChangeError`` for content that is not UTF-8 text."""
    return core_file_diff(path, old, new, context=context, binary="raise")


def make_diff(before: Mapping[str, bytes | None], after: Mapping[str, bytes | None]) -> str:
    """Diff of every path in ``after`` against ``before`` (absent in ``before`` = new file)."""
    return "".join(file_diff(p, before.get(p), after[p]) for p in sorted(after))


def _scratch_path(root: Path, path: str) -> Path:
    """``root / path`` for a repo-relative ``path``; a path that could leave ``root`` (absolute,
    ``..``) is refused, since the scratch directory is on the host."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts:
        raise TaskError(f"{path!r}: not a path inside the repository")
    return root.joinpath(*parts)


def apply_patch(patch: str, read: Callable[[str], bytes | None]) -> Changes:
    """Apply ``patch`` to files obtained with ``read(path)`` (None: absent); return the new
    contents of every path the patch touches (None: deleted or renamed away). ``TaskError``
    when it does not apply."""
    changes = parse_diff(patch)
    strip = strip_level(changes)
    before = {path: read(path) for path in touched_paths(changes, strip)}
    for change in changes:
        old = change.old_path and repo_path(change.old_path, strip)
        if old and before[old] is None:
            raise TaskError(f"{old}: patched file does not exist")
    with tempfile.TemporaryDirectory(prefix="codemill-apply-") as tmp:
        root = Path(tmp)
        for path, data in before.items():
            if data is not None:
                target = _scratch_path(root, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        proc = git_apply_on_host(root, patch, strip)
        if proc.returncode != 0:
            why = proc.stderr.decode(errors="replace").strip().splitlines()
            raise TaskError(f"the patch does not apply: {'; '.join(why[:3])}")
        out: Changes = {}
        for path in before:
            target = _scratch_path(root, path)
            out[path] = target.read_bytes() if target.is_file() else None
        return out


def patch_paths(patch: str) -> list[str]:
    """Every path a patch touches (old and new names), in order, without duplicates."""
    return touched_paths(parse_diff(patch))


def changed_lines(patch: str) -> dict[str, set[int]]:
    """Per new path, the line numbers (1-based, in the patched file) that the patch adds."""
    out: dict[str, set[int]] = {}
    changes = parse_diff(patch)
    strip = strip_level(changes)
    for change in changes:
        path = new_path(change, strip)
        if path is None:
            continue
        lines = out.setdefault(path, set())
        for hunk in change.hunks:
            no = hunk.new_start
            for h in hunk.lines:
                if h[:1] == "+":
                    lines.add(no)
                if h[:1] in (" ", "+"):
                    no += 1
    return out


def diff_stats(patch: str) -> tuple[int, int, int]:
    """(files, added lines, removed lines) of a patch."""
    changes = parse_diff(patch)
    return (len(changes), sum(len(c.added_lines) for c in changes),
            sum(len(c.removed_lines) for c in changes))


def code_lines(patch: str, signs: str = "+-") -> list[str]:
    """Stripped added/removed lines of a patch (those with a sign in ``signs``)."""
    out: list[str] = []
    for change in parse_diff(patch):
        for hunk in change.hunks:
            out += [x[1:].strip() for x in hunk.lines if x[:1] in signs and x[1:].strip()]
    return out
