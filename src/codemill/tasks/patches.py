"""Unified diffs between file states, and a strict pure-Python patch applier.

A *state change* is a mapping ``path -> bytes | None`` (None: the file is absent). Every
patch codemill stores (``broken_patch``, ``gold_patch``, ``test_patch``) is made here from
two such mappings, in git's format (``diff --git a/p b/p``), so ``git apply`` and SWE-bench
tooling accept it. A rename is written as a deletion plus an addition: simpler for every
consumer and lossless for text.

``apply_patch`` is the inverse: it applies a unified diff to files read through a callback
and returns the new contents. Context must match exactly (a hunk may move by an offset, as
with ``patch``); anything else raises ``TaskError`` naming the file and hunk. Binary files
are out of scope: ``make_diff`` refuses them (``BinaryChangeError``) so callers can skip the
candidate with a reason instead of storing a patch that cannot be applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from codemill.core.diffs import (
    BinaryChangeError,  # noqa: F401 (re-exported)
    split_lines,
    text_or_none,
)
from codemill.core.diffs import file_diff as core_file_diff
from codemill.core.errors import TaskError

Changes = dict[str, bytes | None]
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_EOL = "\\ No newline at end of file"


def _text(path: str, data: bytes | None) -> str | None:
    if data is None:
        return None
    text = text_or_none(data)
    if text is None:
        raise BinaryChangeError(f"{path}: binary file or not UTF-8 text")
    return text


def is_text(data: bytes | None) -> bool:
    """Whether a text patch can carry ``data`` (absent counts as text)."""
    return data is None or (b"\x00" not in data and _utf8(data))


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def file_diff(path: str, old: bytes | None, new: bytes | None, context: int = 3) -> str:
    """The git-style diff of one file; empty when nothing changed (``codemill.core.diffs``,
    the one writer). ``BinaryChangeError`` for content that is not UTF-8 text."""
    return core_file_diff(path, old, new, context=context, binary="raise")


def make_diff(before: Mapping[str, bytes | None], after: Mapping[str, bytes | None]) -> str:
    """Diff of every path in ``after`` against ``before`` (absent in ``before`` = new file)."""
    return "".join(file_diff(p, before.get(p), after[p]) for p in sorted(after))


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[str] = field(default_factory=list)
    """Body lines with their ``' '``/``'-'``/``'+'`` prefix and newline; a line that had
    no newline at end of file carries a trailing ``\\`` marker stripped off (see parser)."""


@dataclass
class FilePatch:
    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def _strip_prefix(name: str) -> str | None:
    name = name.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse_patch(patch: str) -> list[FilePatch]:
    """Parse a unified diff (git or plain) into files and hunks."""
    files: list[FilePatch] = []
    lines = split_lines(patch)  # on "\n" only, as git splits them
    i = 0
    current: FilePatch | None = None
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            empty = _headers_only(lines, i)
            if empty is not None:  # an empty file created or deleted: no ---/+++ lines
                files.append(empty)
                current = None
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            current = FilePatch(_strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:]))
            files.append(current)
            i += 2
            continue
        m = _HUNK.match(line)
        if m and current is not None:
            hunk = Hunk(int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1))
            i += 1
            old_left, new_left = hunk.old_len, hunk.new_len
            while i < len(lines) and (old_left > 0 or new_left > 0):
                body = lines[i]
                if body.startswith("\\"):
                    i += 1
                    continue
                tag = body[:1]
                if tag not in (" ", "-", "+"):
                    if body.strip() == "":  # some tools drop the space of empty context
                        body, tag = " " + body, " "
                    else:
                        raise TaskError(f"{current.path}: malformed hunk line {body!r}")
                if tag in (" ", "-"):
                    old_left -= 1
                if tag in (" ", "+"):
                    new_left -= 1
                if i + 1 < len(lines) and lines[i + 1].startswith(_NO_EOL[:2]):
                    body = body.rstrip("\n")
                hunk.lines.append(body)
                i += 1
            current.hunks.append(hunk)
            continue
        i += 1
    return files


def _headers_only(lines: list[str], i: int) -> FilePatch | None:
    """The ``diff --git`` section at ``i`` when it creates or deletes a file with no
    content lines (git writes only the header and the mode line then)."""
    parts = lines[i].split()
    if len(parts) != 4:
        return None
    j, created, deleted = i + 1, False, False
    while j < len(lines) and not lines[j].startswith(("diff --git ", "--- ", "@@")):
        created |= lines[j].startswith("new file mode ")
        deleted |= lines[j].startswith("deleted file mode ")
        j += 1
    if j < len(lines) and lines[j].startswith("--- "):
        return None
    if created:
        return FilePatch(None, _strip_prefix(parts[3]))
    if deleted:
        return FilePatch(_strip_prefix(parts[2]), None)
    return None


def _find(haystack: list[str], needle: list[str], around: int) -> int:
    if not needle:
        return max(0, min(around, len(haystack)))
    for delta in range(0, len(haystack) + 1):
        for pos in (around - delta, around + delta):
            fits = 0 <= pos <= len(haystack) - len(needle)
            if fits and haystack[pos : pos + len(needle)] == needle:
                return pos
    return -1


def _apply_file(fp: FilePatch, text: str | None) -> str | None:
    lines = split_lines(text or "")  # as the writer and git split them
    offset = 0
    for n, hunk in enumerate(fp.hunks, 1):
        old = [h[1:] for h in hunk.lines if h[:1] in (" ", "-")]
        new = [h[1:] for h in hunk.lines if h[:1] in (" ", "+")]
        want = max(hunk.old_start - 1, 0) + offset
        pos = _find(lines, old, want)
        if pos < 0:
            raise TaskError(f"{fp.path}: hunk {n} does not apply")
        lines[pos : pos + len(old)] = new
        offset = pos - max(hunk.old_start - 1, 0) + len(new) - len(old)
    if fp.new_path is None:
        return None
    return "".join(lines)


def apply_patch(patch: str, read: Callable[[str], bytes | None]) -> Changes:
    """Apply ``patch`` to files obtained with ``read(path)`` (None: absent); return the
    changed files' new contents (None: deleted). Files are processed in patch order, so a
    later hunk on the same file sees the earlier result."""
    out: Changes = {}
    for fp in parse_patch(patch):
        src = fp.old_path
        if src is None:
            current: bytes | None = None
        else:
            current = out[src] if src in out else read(src)
            if current is None:
                raise TaskError(f"{src}: patched file does not exist")
        if fp.old_path is None and fp.new_path is not None:
            existing = out[fp.new_path] if fp.new_path in out else read(fp.new_path)
            if existing:
                raise TaskError(f"{fp.new_path}: file to create already exists")
        result = _apply_file(fp, _text(fp.path, current))
        if fp.old_path and fp.old_path != fp.new_path:
            out[fp.old_path] = None
        if fp.new_path is not None:
            out[fp.new_path] = None if result is None else result.encode("utf-8")
    return out


def patch_paths(patch: str) -> list[str]:
    """Every path a patch touches (old and new names), in order, without duplicates."""
    seen: dict[str, None] = {}
    for fp in parse_patch(patch):
        for p in (fp.old_path, fp.new_path):
            if p:
                seen.setdefault(p, None)
    return list(seen)


def changed_lines(patch: str) -> dict[str, set[int]]:
    """Per new path, the line numbers (1-based, in the patched file) that the patch adds."""
    out: dict[str, set[int]] = {}
    for fp in parse_patch(patch):
        if fp.new_path is None:
            continue
        lines = out.setdefault(fp.new_path, set())
        for hunk in fp.hunks:
            no = hunk.new_start
            for h in hunk.lines:
                if h[:1] == "+":
                    lines.add(no)
                if h[:1] in (" ", "+"):
                    no += 1
    return out


def diff_stats(patch: str) -> tuple[int, int, int]:
    """(files, added lines, removed lines) of a patch."""
    files = parse_patch(patch)
    added = sum(1 for f in files for h in f.hunks for x in h.lines if x[:1] == "+")
    removed = sum(1 for f in files for h in f.hunks for x in h.lines if x[:1] == "-")
    return len(files), added, removed


def code_lines(patch: str, signs: str = "+-") -> list[str]:
    """Stripped added/removed lines of a patch (those with a sign in ``signs``)."""
    return [
        x[1:].strip()
        for f in parse_patch(patch)
        for h in f.hunks
        for x in h.lines
        if x[:1] in signs and x[1:].strip()
    ]
