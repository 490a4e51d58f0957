"""A git-style unified diff of a workspace against the layers it was forked from.

Computed on the host from the layers alone (no process runs): only paths that appear in the
workspace's own layers (the upper dir and any frozen layers above the base) can differ, plus
base files those layers hide (whiteouts, opaque directories, a file replacing a directory).
The output applies with ``git apply``: ``a/``/``b/`` prefixes, ``new file mode``,
``deleted file mode``, mode changes, symlinks as mode 120000, ``\\ No newline at end of
file``. Binary files are noted (``Binary files ... differ``) and carry no content.

Byte-code caches (``__pycache__``, ``*.pyc``, ``.pytest_cache``) are not part of the diff:
running tests writes them, and they are never part of a solution.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from codemill.envs.layers import Entry, MergedView, is_opaque, is_whiteout

EXCLUDED_NAMES = frozenset({"__pycache__", ".pytest_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
CONTEXT = 3


def excluded(rel: Sequence[str]) -> bool:
    return any(p in EXCLUDED_NAMES for p in rel) or (bool(rel) and
                                                      rel[-1].endswith(EXCLUDED_SUFFIXES))


def touched_paths(top_layers: Iterable[Path], base: MergedView) -> set[tuple[str, ...]]:
    """Every path whose content may differ between the full view and ``base``."""
    found: set[tuple[str, ...]] = set()

    def hidden(rel: tuple[str, ...]) -> None:
        found.update(e.rel for e in base.walk(rel))

    for layer in top_layers:
        for dirpath, dirnames, filenames in os.walk(layer):
            rel = Path(dirpath).relative_to(layer).parts
            for name in list(dirnames):
                path = Path(dirpath, name)
                if name in EXCLUDED_NAMES:
                    dirnames.remove(name)
                    continue
                if path.is_symlink():
                    filenames.append(name)
                    dirnames.remove(name)
                    continue
                if is_opaque(path):
                    hidden((*rel, name))
                base_entry = base.lookup((*rel, name))
                if base_entry is not None and not base_entry.is_dir:
                    found.add((*rel, name))  # a directory replaced a file
            for name in filenames:
                if name.endswith(EXCLUDED_SUFFIXES):
                    continue
                found.add((*rel, name))
                base_entry = base.lookup((*rel, name))
                if base_entry is not None and base_entry.is_dir:
                    hidden((*rel, name))
    return found


def _blob(entry: Entry | None) -> tuple[str, bytes] | None:
    if entry is None or entry.is_dir or is_whiteout(entry.st):
        return None
    if entry.is_link:
        return "120000", os.fsencode(os.readlink(entry.host))
    if not entry.is_file:
        return None
    fd = os.open(entry.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    return ("100755" if entry.st.st_mode & stat.S_IXUSR else "100644"), data


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _range(start: int, length: int) -> str:
    first = start + 1
    if length == 1:
        return str(first)
    if length == 0:
        first -= 1
    return f"{first},{length}"


def _hunks(a: list[str], b: list[str]) -> list[str]:
    out = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(CONTEXT):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += [_line(" ", x) for x in a[a1:a2]]
                continue
            out += [_line("-", x) for x in a[a1:a2]]
            out += [_line("+", x) for x in b[b1:b2]]
    return out


def _line(mark: str, text: str) -> str:
    if text.endswith("\n"):
        return mark + text
    return f"{mark}{text}\n\\ No newline at end of file\n"


def _text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def file_diff(path: str, old: tuple[str, bytes] | None, new: tuple[str, bytes] | None) -> str:
    """The diff of one path; empty when nothing changed."""
    if old == new:
        return ""
    if old is not None and new is not None and (old[0] == "120000") != (new[0] == "120000"):
        return file_diff(path, old, None) + file_diff(path, None, new)
    head = [f"diff --git a/{path} b/{path}\n"]
    if old is None and new is not None:
        head.append(f"new file mode {new[0]}\n")
    elif new is None and old is not None:
        head.append(f"deleted file mode {old[0]}\n")
    elif old is not None and new is not None and old[0] != new[0]:
        head += [f"old mode {old[0]}\n", f"new mode {new[0]}\n"]
    old_data = old[1] if old else b""
    new_data = new[1] if new else b""
    if old_data == new_data:  # a mode change, or an empty file added or deleted
        return "".join(head)
    a_name = f"a/{path}" if old else "/dev/null"
    b_name = f"b/{path}" if new else "/dev/null"
    a_text, b_text = _text(old_data), _text(new_data)
    if a_text is None or b_text is None:
        return "".join(head) + f"Binary files {a_name} and {b_name} differ\n"
    body = _hunks(_lines(a_text), _lines(b_text))
    return "".join([*head, f"--- {a_name}\n", f"+++ {b_name}\n", *body])


def workspace_diff(full: MergedView, base: MergedView, top_layers: Iterable[Path]) -> str:
    """Unified diff from ``base`` (the layers forked from) to ``full`` (the workspace)."""
    chunks = []
    for rel in sorted(touched_paths(top_layers, base)):
        if excluded(rel):
            continue
        chunks.append(file_diff("/".join(rel), _blob(base.lookup(rel)), _blob(full.lookup(rel))))
    return "".join(chunks)


def tree_diff(full: MergedView, base: MergedView) -> str:
    """Like ``workspace_diff`` but compares every path (for plain directory workspaces)."""
    paths = {e.rel for e in full.walk()} | {e.rel for e in base.walk()}
    chunks = []
    for rel in sorted(paths):
        if excluded(rel):
            continue
        chunks.append(file_diff("/".join(rel), _blob(base.lookup(rel)), _blob(full.lookup(rel))))
    return "".join(chunks)
