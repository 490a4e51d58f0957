"""A git-style unified diff of a workspace against the layers it was forked from.

Computed on the host from the layers alone (no process runs): only paths that appear in the
workspace's own layers (the upper dir and any frozen layers above the base) can differ, plus
base files those layers hide (whiteouts, opaque directories, a file replacing a directory).
The output applies with ``git apply``: ``a/``/``b/`` prefixes, ``new file mode``,
``deleted file mode``, mode changes, symlinks as mode 120000, ``\\ No newline at end of
file``. Binary files are noted (``Binary files ... differ``) and carry no content. Paths
that are not plain printable text (not UTF-8, control characters, spaces) are C-quoted as
git quotes them (``codemill.core.diffs.quote_path``), so the diff is always encodable text.

Reads are bounded: a file over ``MAX_FILE_BYTES``, or any file once the diff has carried
``MAX_DIFF_BYTES`` of content, is compared by a digest read in chunks and noted like a
binary file (its content is not carried; the grader drops such sections). So a candidate
that writes a huge file costs the host a bounded amount of memory, never the file's size.

Run artefacts are not part of the diff: byte-code and tool caches (``__pycache__``,
``*.pyc``, ``.pytest_cache``, ``.mypy_cache``, ``.ruff_cache``, ``.hypothesis``) and coverage
data (``.coverage``, ``.coverage.*`` of parallel runs, which a project's test config may
write on every run). Running tests writes them, and they are never part of a solution.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from codemill.core.diffs import file_diff as core_file_diff
from codemill.sandbox.layers import Entry, MergedView, is_opaque, is_whiteout

EXCLUDED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                            ".hypothesis", ".coverage"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
EXCLUDED_PREFIXES = (".coverage.",)
MAX_FILE_BYTES = 4 << 20
"""Larger files are compared by digest, not carried (no source file of a fix is this big)."""
MAX_DIFF_BYTES = 64 << 20
"""Content the diff reads into memory in all; files after that are compared by digest."""
_CHUNK = 1 << 20


def excluded(rel: Sequence[str]) -> bool:
    return any(p in EXCLUDED_NAMES for p in rel) or (bool(rel) and (
        rel[-1].endswith(EXCLUDED_SUFFIXES) or rel[-1].startswith(EXCLUDED_PREFIXES)))


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


class _Budget:
    """What one diff may still read into memory."""

    def __init__(self, total: int = MAX_DIFF_BYTES, per_file: int = MAX_FILE_BYTES) -> None:
        self.left, self.per_file = total, per_file

    def pair(self, old: Entry | None, new: Entry | None
             ) -> tuple[tuple[str, bytes] | None, tuple[str, bytes] | None]:
        """Both sides of one path, read under the same cap (so an unchanged file compares
        equal however much budget is left)."""
        cap = max(0, min(self.per_file, self.left))
        a, b = _blob(old, cap), _blob(new, cap)
        self.left -= sum(len(x[1]) for x in (a, b) if x is not None)
        return a, b


def _blob(entry: Entry | None, cap: int) -> tuple[str, bytes] | None:
    """``(git mode, content)`` of ``entry``. A file over ``cap`` bytes gets a stand-in with a
    NUL byte (so it reads as binary) and its size and digest, read in chunks (so an
    unchanged one still equals itself)."""
    if entry is None or entry.is_dir or is_whiteout(entry.st):
        return None
    if entry.is_link:
        return "120000", os.fsencode(os.readlink(entry.host))
    if not entry.is_file:
        return None
    mode = "100755" if entry.st.st_mode & stat.S_IXUSR else "100644"
    fd = os.open(entry.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(cap + 1)
        if len(data) <= cap:
            return mode, data
        digest, size = hashlib.sha256(data), len(data)
        del data
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return mode, f"\0not read: {size} bytes, sha256 {digest.hexdigest()}".encode()


def file_diff(path: str, old: tuple[str, bytes] | None, new: tuple[str, bytes] | None) -> str:
    """The diff of one path; empty when nothing changed (``codemill.core.diffs``, the one
    writer; binary content is marked, not carried)."""
    return core_file_diff(path, old, new)


def workspace_diff(full: MergedView, base: MergedView, top_layers: Iterable[Path]) -> str:
    """Unified diff from ``base`` (the layers forked from) to ``full`` (the workspace)."""
    chunks, budget = [], _Budget()
    for rel in sorted(touched_paths(top_layers, base)):
        if excluded(rel):
            continue
        chunks.append(file_diff("/".join(rel), *budget.pair(base.lookup(rel), full.lookup(rel))))
    return "".join(chunks)


def tree_diff(full: MergedView, base: MergedView) -> str:
    """Like ``workspace_diff`` but compares every path (for plain directory workspaces)."""
    paths = {e.rel for e in full.walk()} | {e.rel for e in base.walk()}
    chunks, budget = [], _Budget()
    for rel in sorted(paths):
        if excluded(rel):
            continue
        chunks.append(file_diff("/".join(rel), *budget.pair(base.lookup(rel), full.lookup(rel))))
    return "".join(chunks)
