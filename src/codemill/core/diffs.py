"""Unified diffs: the one home of writing, reading and applying them.

Reading: ``parse_diff`` understands git diffs (``diff --git`` headers, new/deleted/renamed
files, mode changes, binary patches, quoted paths) and plain unified diffs with or without
``a/``/``b/`` prefixes, down to each hunk's lines. ``strip_level`` picks the ``git apply
-p`` level, so the paths this module reports are the paths ``git apply`` writes.

Writing: ``file_diff`` (task patches and workspace diffs both come from it).

Applying: ``git apply`` is the one applier; ``git_apply_argv`` and ``GIT_APPLY_ENV`` are
how every caller invokes it (the grader inside its sandbox, test beds in a scratch
directory, ``solve --apply`` in the user's tree), so a diff applies, or fails, the same way
everywhere. ``parse_diff`` never validates hunks: ``git apply`` is the authority.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from dataclasses import dataclass, field

from codemill.core.errors import TaskError

_GIT_HEADER = re.compile(r'^diff --git (?P<a>"(?:[^"\\]|\\.)*"|\S+) (?P<b>"(?:[^"\\]|\\.)*"|\S+)$')
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f",
            "r": "\r", "v": "\v"}


@dataclass
class Hunk:
    """One ``@@`` hunk: its ranges and body lines, each with its ``' '``/``'-'``/``'+'``
    mark and newline (a line marked "No newline at end of file" has none)."""

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[str] = field(default_factory=list)

    def old_text(self) -> str:
        return "".join(x[1:] for x in self.lines if x[:1] in (" ", "-"))

    def new_text(self) -> str:
        return "".join(x[1:] for x in self.lines if x[:1] in (" ", "+"))


@dataclass
class FileChange:
    """One file a diff touches. Paths are as written (prefixes not yet stripped)."""

    old_path: str | None
    """None for a file the diff creates."""
    new_path: str | None
    """None for a file the diff deletes."""
    binary: bool = False
    binary_content: bool = False
    """A ``GIT binary patch`` carrying the bytes; a bare ``Binary files ... differ`` line
    (what most tools write) carries none and cannot be applied by anyone."""
    new_mode: str | None = None
    added_lines: list[str] = field(default_factory=list)
    removed_lines: list[str] = field(default_factory=list)
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def created(self) -> bool:
        return self.old_path is None

    @property
    def deleted(self) -> bool:
        return self.new_path is None

    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in (self.old_path, self.new_path) if p))


def _unquote(token: str) -> str:
    """Undo git's C-style quoting of a path (``"a/sp ace\\303\\251"``)."""
    if not (token.startswith('"') and token.endswith('"') and len(token) >= 2):
        return token
    body, out, i = token[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if re.fullmatch(r"[0-7]{3}", body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8) & 0xFF)
                i += 4
                continue
            out.extend(text_bytes(_ESCAPES.get(nxt, nxt)))
            i += 2
            continue
        out.extend(text_bytes(ch))
        i += 1
    # surrogateescape: a name that is not UTF-8 keeps its bytes (``os.fsencode`` gives them
    # back), so the grader removes and restores the very file the diff names.
    return out.decode("utf-8", errors="surrogateescape")


def _header_path(line: str) -> str | None:
    """The path on a ``---``/``+++`` line; None for ``/dev/null``. Drops a trailing
    tab-separated timestamp (plain ``diff -u`` output)."""
    raw = line[4:].rstrip("\n")
    if not raw.startswith('"'):
        raw = raw.split("\t", 1)[0]
    path = _unquote(raw.strip())
    return None if path == "/dev/null" else path


def parse_diff(text: str) -> list[FileChange]:
    """The files ``text`` touches, in order, with their hunks. Lines split on ``\\n`` only,
    as git splits them. Never raises on malformed input: what it cannot read it skips
    (``git apply`` will reject it later)."""
    changes: list[FileChange] = []
    cur: FileChange | None = None
    hunk: Hunk | None = None
    left = (0, 0)  # lines the open hunk still expects (old side, new side)
    in_git_header = False
    raw_lines = split_lines(text)
    lines = [x.rstrip("\n").removesuffix("\r") for x in raw_lines]
    i = 0
    while i < len(lines):
        line = lines[i]
        if hunk is not None and cur is not None and (left[0] > 0 or left[1] > 0):
            body = raw_lines[i]
            mark = body[:1] if line else " "  # some tools drop the space of empty context
            if line.startswith("\\"):
                i += 1
                continue
            if mark in (" ", "-", "+"):
                if not line:
                    body = " " + body
                if i + 1 < len(lines) and lines[i + 1].startswith("\\"):
                    body = body.rstrip("\n")  # "\\ No newline at end of file"
                hunk.lines.append(body)
                left = (left[0] - (mark != "+"), left[1] - (mark != "-"))
                if mark == "+":
                    cur.added_lines.append(line[1:])
                elif mark == "-":
                    cur.removed_lines.append(line[1:])
                i += 1
                continue
            hunk = None  # a short hunk: read on as headers
        m = _GIT_HEADER.match(line)
        if m:
            cur, hunk = FileChange(_unquote(m["a"]), _unquote(m["b"])), None
            changes.append(cur)
            in_git_header = True
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _header_path(line), _header_path(lines[i + 1])
            if cur is None or not in_git_header:
                cur = FileChange(old, new)
                changes.append(cur)
            else:
                cur.old_path, cur.new_path = old, new
            in_git_header, hunk = False, None
            i += 2
            continue
        elif cur is not None and (h := _HUNK.match(line)):
            hunk = Hunk(int(h[1]), int(h[2] or 1), int(h[3]), int(h[4] or 1))
            cur.hunks.append(hunk)
            left, in_git_header = (hunk.old_len, hunk.new_len), False
        elif cur is not None and in_git_header:
            if line.startswith("new file mode "):
                cur.old_path, cur.new_mode = None, line.split()[-1]
            elif line.startswith("deleted file mode "):
                cur.new_path = None
            elif line.startswith(("new mode ", "old mode ")):
                if line.startswith("new mode "):
                    cur.new_mode = line.split()[-1]
            # "rename from/to" lines carry no a/ b/ prefix; the header's paths, which do,
            # already name both ends.
            elif line.startswith(("Binary files ", "GIT binary patch")):
                cur.binary = True
                cur.binary_content = line.startswith("GIT binary patch")
                in_git_header = False
        elif cur is not None and line.startswith("+") and not line.startswith("+++ "):
            cur.added_lines.append(line[1:])  # outside a hunk: a diff with bad counts
        elif cur is not None and line.startswith("-") and not line.startswith("--- "):
            cur.removed_lines.append(line[1:])
        i += 1
    return changes


def strip_level(changes: list[FileChange]) -> int:
    """1 when every path carries a one-letter prefix directory (``a/``, ``b/``, ``i/``,
    ``w/``...), as git and most tools write them; else 0 (paths are repo-relative)."""
    paths = [p for c in changes for p in c.paths()]
    if paths and all(re.match(r"^[a-z]/", p) for p in paths):
        return 1
    return 0


def repo_path(path: str, strip: int) -> str:
    """``path`` relative to the repository root, as ``git apply -p<strip>`` sees it."""
    parts = path.split("/")
    return "/".join(parts[strip:]).lstrip("/") if strip else path.lstrip("/")


def new_path(change: FileChange, strip: int) -> str | None:
    """The repo-relative path ``change`` leaves behind (None: deleted)."""
    return None if change.new_path is None else repo_path(change.new_path, strip)


def touched_paths(changes: list[FileChange], strip: int | None = None) -> list[str]:
    """Every repo-relative path the diff creates, edits, deletes or renames (both ends)."""
    level = strip_level(changes) if strip is None else strip
    return list(dict.fromkeys(repo_path(p, level) for c in changes for p in c.paths()))


# --- writing ---------------------------------------------------------------------------------
# The one writer of unified diffs: task patches (``codemill.tasks.patches``) and workspace
# diffs (``codemill.sandbox.workspace_diff``) both come from ``file_diff``, so a file reads the
# same way in both (lines split on ``\n`` only, as git splits them; binary content decided
# once).

Blob = tuple[str, bytes]
"""(git mode, content): ``100644``, ``100755`` or ``120000`` (a symlink; the content is
its target)."""
CONTEXT = 3
NO_EOL = "\\ No newline at end of file"


class BinaryChangeError(TaskError):
    """A change to a file that is not UTF-8 text; a text patch cannot carry it."""


def _as_blob(value: Blob | bytes | None) -> Blob | None:
    if value is None or isinstance(value, tuple):
        return value
    return "100644", bytes(value)


def text_or_none(data: bytes) -> str | None:
    """``data`` as text, or None when it is binary (a NUL byte) or not UTF-8."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def split_lines(text: str) -> list[str]:
    """Lines as git sees them: split on ``\\n`` only, each keeping it (the last may not)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


_C_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}


def quote_path(path: str) -> str:
    """``path`` as a diff header writes it: as is when it is plain printable UTF-8 without
    spaces, quotes or backslashes; else C-quoted as git quotes it (``"sp ace\\303\\251"``),
    which ``git apply`` and ``parse_diff`` read back byte for byte. ``path`` may carry
    ``os.fsdecode``'s surrogate escapes (a file name that is not UTF-8): they are written
    as the original bytes in octal, so a header never carries a control character (a
    newline would start a forged header) nor text that cannot be encoded."""
    raw = text_bytes(path)
    if _encodes(path) and all(b >= 0x80 or (0x20 < b < 0x7F and b not in (34, 92))
                              for b in raw):
        return path
    out = []
    for b in raw:
        if b in _C_ESCAPES:
            out.append("\\" + _C_ESCAPES[b])
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_bytes(text: str) -> bytes:
    """``text`` as bytes, for any ``str`` whatever it holds: UTF-8, with ``os.fsdecode``'s
    surrogate escapes turned back into their bytes, and any other lone surrogate passed
    through. Never raises: the grader hashes and applies candidate diffs with it, and a
    diff it could not encode would end an attempt without a reward."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _range(start: int, length: int) -> str:
    first = start + 1
    if length == 1:
        return str(first)
    if length == 0:
        first -= 1
    return f"{first},{length}"


def _line(mark: str, text: str) -> str:
    return mark + text if text.endswith("\n") else f"{mark}{text}\n{NO_EOL}\n"


def hunks(a: list[str], b: list[str], context: int = CONTEXT) -> list[str]:
    """The ``@@`` hunks turning lines ``a`` into ``b``."""
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += [_line(" ", x) for x in a[a1:a2]]
                continue
            out += [_line("-", x) for x in a[a1:a2]]
            out += [_line("+", x) for x in b[b1:b2]]
    return out


def file_diff(path: str, old: Blob | bytes | None, new: Blob | bytes | None, *,
              context: int = CONTEXT, binary: str = "mark") -> str:
    """The git-style diff of one path (``None``: absent; bytes: a regular file); empty when
    nothing changed. A symlink turning into a file (or back) is a deletion plus a creation.
    Binary content: ``binary="mark"`` writes ``Binary files ... differ`` (no content, what
    git writes without ``--binary``: nobody can apply it, the grader drops it with a flag);
    ``"raise"`` raises ``BinaryChangeError`` (stored task patches must apply)."""
    a, b = _as_blob(old), _as_blob(new)
    if a == b:
        return ""
    if a is not None and b is not None and (a[0] == "120000") != (b[0] == "120000"):
        return (file_diff(path, a, None, context=context, binary=binary)
                + file_diff(path, None, b, context=context, binary=binary))
    a_path, b_path = quote_path(f"a/{path}"), quote_path(f"b/{path}")
    head = [f"diff --git {a_path} {b_path}\n"]
    if a is None and b is not None:
        head.append(f"new file mode {b[0]}\n")
    elif b is None and a is not None:
        head.append(f"deleted file mode {a[0]}\n")
    elif a is not None and b is not None and a[0] != b[0]:
        head += [f"old mode {a[0]}\n", f"new mode {b[0]}\n"]
    old_data, new_data = (a[1] if a else b""), (b[1] if b else b"")
    if old_data == new_data:  # a mode change, or an empty file added or deleted
        return "".join(head)
    a_name = a_path if a else "/dev/null"
    b_name = b_path if b else "/dev/null"
    a_text, b_text = text_or_none(old_data), text_or_none(new_data)
    if a_text is None or b_text is None:
        if binary == "raise":
            raise BinaryChangeError(f"{path}: binary file or not UTF-8 text")
        return "".join(head) + f"Binary files {a_name} and {b_name} differ\n"
    body = hunks(split_lines(a_text), split_lines(b_text), context)
    return "".join([*head, f"--- {a_name}\n", f"+++ {b_name}\n", *body])


# --- applying --------------------------------------------------------------------------------

GIT_APPLY_ENV = {
    # Not a repository: git apply works on plain files, reads no workspace config, runs no
    # hook and refuses paths under .git or beyond a symbolic link.
    "GIT_DIR": "/nonexistent/codemill",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "HOME": "/tmp",
}
GIT_APPLY_TIMEOUT_S = 60.0


def git_apply_argv(strip: int = 1, *extra: str) -> list[str]:
    """``git apply`` reading the diff on stdin, at ``-p<strip>`` (see ``strip_level``);
    ``extra``: ``--check``, ``--recount``, ``-R``..."""
    return ["git", "apply", f"-p{strip}", "--whitespace=nowarn", *extra, "-"]


def git_apply_on_host(cwd: str | os.PathLike[str], diff: str, strip: int,
                      *extra: str) -> subprocess.CompletedProcess[bytes]:
    """Run the one applier in ``cwd`` on this machine (plain files, no repository mode:
    ``git apply`` runs no code, so this is safe for untrusted diffs)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **GIT_APPLY_ENV}
    return subprocess.run(git_apply_argv(strip, *extra), cwd=cwd, input=text_bytes(diff),
                          env=env, capture_output=True, timeout=GIT_APPLY_TIMEOUT_S)
