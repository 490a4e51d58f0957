"""Patch mode: one model turn, from a numbered listing to a graded diff.

    messages = patch_messages(task.problem_statement, context)
    answer = read_answer(reply_text, context)     # Answer(diff, error)

The prompt (``patch_messages``) holds the problem statement, the failing tests' output and
the code they reach in the broken state (``codemill.tasks.patch_context``), each function
as its file path then numbered lines ``N: text``, then the most suspicious lines when the
context marks any, repeated with their text (``Most suspicious lines:``, the path, ``N:
text``): the answer for a one-line fix is then a near-copy of a line just above it, which a
135M model can write where it cannot find line N's text in a long listing. The model
answers with edits a 135M model can produce:

- **line edits** (the default format): ``N: new text`` replaces line N of the listing; the
  same N given again adds lines after it; ``N:`` with nothing after deletes it (so a blank
  line cannot be written). A line that names a listed path switches the file (needed only
  when two listed files share a line number). A replacement without indentation keeps the
  replaced line's indentation (small models drop it); added lines are taken as written.
  Other lines of the reply (prose, code fences) are ignored.
- **search/replace blocks**: ``<<<<<<< SEARCH`` / old text / ``=======`` / new text /
  ``>>>>>>> REPLACE``, optionally after a line naming the file; the old text must occur
  exactly once in one listed file.

A reply with neither, or with an edit that cannot apply (a line not in the listing, search
text not found, an edit that changes nothing or nothing but comments and whitespace), gives
an empty diff and the reason: the caller records the reason and the grader scores the empty
diff 0, so a malformed answer is a graded attempt, never a crash or a dropped row. Diffs are
written by ``codemill.core.diffs.file_diff`` (the one home of diffs).
"""

from __future__ import annotations

import io
import re
import time
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from codemill.agent.tokens import token_trace
from codemill.core.boundary import boundary
from codemill.core.diffs import file_diff, split_lines
from codemill.core.protocols import ModelBackend
from codemill.core.records import Message, SamplingConfig, Step, StopReason, Trajectory

if TYPE_CHECKING:
    from codemill.tasks.patch_context import PatchContext

AnswerFormat = Literal["lines", "search_replace"]
PATCH_MODE_VERSION = "3"
"""Version of the prompt and the answer reader (part of patch-mode rollout ids)."""

SYSTEM = "You fix bugs in Python code. Answer with the edit only, in the format asked."
ASK = {
    "lines": ("Fix the bug. Answer only with the corrected lines, one per line, as "
              "`N: new text` where N is the line number in the listing."),
    "search_replace": ("Fix the bug. Answer only with the file path, then\n<<<<<<< SEARCH\n"
                       "the exact lines to change\n=======\nthe new lines\n>>>>>>> REPLACE"),
}
_LINE_EDIT = re.compile(r"^\s*(?:line\s+)?(\d+)\s*:(?: ?(.*))?$", re.IGNORECASE)
_BLOCK = re.compile(r"^<{5,9} ?SEARCH[^\n]*\n(.*?)^={5,9}[ \t]*\n(.*?)^>{5,9} ?REPLACE[^\n]*$",
                    re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Answer:
    """A reply read as an edit: its diff (empty when malformed) and why it is malformed."""

    diff: str
    error: str | None = None
    format: str = ""
    """``lines`` or ``search_replace``: which form the reply used (empty: neither)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def listing(context: PatchContext) -> str:
    """Each snippet as its path, then ``N: text`` lines; snippets of one file share one
    path line."""
    parts: list[str] = []
    last = None
    for s in context.snippets:
        if s.path != last:
            parts.append(s.path)
            last = s.path
        elif parts:
            parts.append("...")
        parts += [f"{s.start + i}: {line}" for i, line in enumerate(s.lines)]
    return "\n".join(parts)


def patch_prompt(problem: str, context: PatchContext, fmt: AnswerFormat = "lines") -> str:
    """The user turn: problem statement, failing output (left out when the statement
    already names every failing test it shows, as synthesized tasks' statements do),
    listing, the marked lines, the answer format."""
    parts = [problem.strip()]
    output = context.failing_output.strip()
    shown = re.findall(r"^FAILED (\S+)", output, re.MULTILINE)
    if output and not all(t in problem for t in shown):  # else the statement already says it
        parts.append("Failing tests:\n" + output)
    parts.append("Code the failing tests run:\n" + listing(context))
    if context.marked:
        parts.append(marked_lines(context))
    parts.append(ASK[fmt])
    return "\n\n".join(parts) + "\n"


def marked_lines(context: PatchContext) -> str:
    """``Most suspicious lines:``, the path, then each marked line as ``N: text`` (marked
    lines are always in the listing: ``patch_context`` marks none otherwise)."""
    path = context.marked[0][0]
    text = {s.start + i: line for s in context.snippets if s.path == path
            for i, line in enumerate(s.lines)}
    return "\n".join(["Most suspicious lines:", path]
                     + [f"{n}: {text[n]}" for _, n in context.marked if n in text])


def patch_messages(problem: str, context: PatchContext, fmt: AnswerFormat = "lines"
                   ) -> list[Message]:
    return [Message(role="system", content=SYSTEM),
            Message(role="user", content=patch_prompt(problem, context, fmt))]


def read_answer(text: str, context: PatchContext) -> Answer:
    """The diff a reply asks for (search/replace blocks when it has any, else line
    edits), or an empty diff with the reason it cannot be used."""
    if _BLOCK.search(text):
        return _search_replace(text, context)
    return _line_edits(text, context)


def _shown(context: PatchContext) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for s in context.snippets:
        out.setdefault(s.path, set()).update(range(s.start, s.start + len(s.lines)))
    return out


def _path_named(line: str, paths: list[str]) -> str | None:
    bare = line.strip().strip("`*#:").strip()
    bare = bare.removeprefix("File").strip().strip(":").strip()
    for p in paths:
        if bare == p or (bare.endswith(p) and bare[: -len(p)].endswith(("/", " "))):
            return p
    return None


def _line_edits(text: str, context: PatchContext) -> Answer:
    shown = _shown(context)
    paths = list(shown)
    current: str | None = None
    edits: dict[str, dict[int, list[str | None]]] = {}
    for raw in text.splitlines():
        named = _path_named(raw, paths)
        if named is not None:
            current = named
            continue
        m = _LINE_EDIT.match(raw)
        if m is None:
            continue
        n, new = int(m.group(1)), m.group(2)
        owners = [p for p in paths if n in shown[p]]
        if current is not None and current in owners:
            path = current
        elif len(owners) == 1:
            path = owners[0]
        elif not owners:
            return Answer("", f"line {n} is not in the listing", "lines")
        else:
            return Answer("", f"line {n} is in several listed files; name the file first",
                          "lines")
        edits.setdefault(path, {}).setdefault(n, []).append(new)
    if not edits:
        return Answer("", "no `N: text` line and no SEARCH/REPLACE block in the answer", "")
    new_files: dict[str, str] = {}
    for path, by_line in edits.items():
        old_lines = split_lines(context.files[path])
        new_lines: list[str] = []
        for i, line in enumerate(old_lines, 1):
            if i not in by_line:
                new_lines.append(line)
                continue
            eol = "\n" if line.endswith("\n") else ""
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            for k, new in enumerate(by_line[i]):
                if new is None or not new.strip():
                    continue  # ``N:`` alone deletes line N
                if k == 0 and not new[:1].isspace():
                    new = indent + new  # a replacement keeps the line's indentation
                new_lines.append(new.rstrip("\r\n") + (eol or "\n"))
            if new_lines and not eol and new_lines[-1].endswith("\n") and i == len(old_lines):
                new_lines[-1] = new_lines[-1][:-1]
        new_files[path] = "".join(new_lines)
    return _answer(context.files, new_files, "lines")


def _search_replace(text: str, context: PatchContext) -> Answer:
    files = dict(context.files)
    paths = list(files)
    for m in _BLOCK.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        named = _path_named(before, paths)
        old, new = m.group(1), m.group(2)
        holders = [named] if named else [p for p in paths if old and old in files[p]]
        if not old.strip():
            return Answer("", "a SEARCH block is empty", "search_replace")
        if not holders or old not in files[holders[0]]:
            return Answer("", "SEARCH text not found in the listed files", "search_replace")
        if len(holders) > 1 or files[holders[0]].count(old) > 1:
            return Answer("", "SEARCH text occurs more than once", "search_replace")
        files[holders[0]] = files[holders[0]].replace(old, new, 1)
    return _answer(context.files, files, "search_replace")


def _answer(old: Mapping[str, str], new: Mapping[str, str], fmt: str) -> Answer:
    """The diff from ``old`` to ``new`` files, or why it is no usable edit: it changes
    nothing, or nothing but comments and whitespace (``_same_code``). The second is
    malformed too, so an answer cannot escape a penalty on unusable answers (GRPO's
    ``format_reward``) by touching a comment or a line's end; no test could tell."""
    changed = [p for p in new if new[p] != old[p]]
    if not changed:
        return Answer("", "the edit changes nothing", fmt)
    if all(_same_code(p, old[p], new[p]) for p in changed):
        return Answer("", "the edit changes nothing but comments or whitespace", fmt)
    return Answer("".join(file_diff(p, old[p].encode(), new[p].encode()) for p in changed),
                  None, fmt)


def _same_code(path: str, old: str, new: str) -> bool:
    """Whether two texts of ``path`` differ at most in comments and whitespace: a Python
    file's tokens without comments and blank lines, any other file's lines without their
    trailing whitespace. A Python text that does not tokenize is a change (the tests will
    see it)."""
    if not path.endswith(".py"):
        return ([x.rstrip() for x in old.splitlines()]
                == [x.rstrip() for x in new.splitlines()])
    try:
        return _code_tokens(old) == _code_tokens(new)
    except (tokenize.TokenError, SyntaxError):
        return False


def _code_tokens(source: str) -> list[tuple[int, str]]:
    skip = (tokenize.COMMENT, tokenize.NL)
    return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in skip]


def run_patch(model: ModelBackend, problem: str, context: PatchContext, *, rollout_id: str,
              task_id: str = "", policy: str = "", sample_index: int = 0,
              sampling: SamplingConfig | None = None, fmt: AnswerFormat = "lines"
              ) -> Trajectory:
    """One patch-mode attempt: one model call, its answer read as a diff.

    The trajectory has one step (the reply, with its token ids and log-probs when the
    backend is token-exact, so ``tokens`` is the one-turn ``TokenTrace``). Stops:
    ``submitted`` (the answer is a usable edit), ``format_error`` with ``error`` saying
    why (empty diff: the grader scores it 0), ``model_error`` when the call failed (the
    caller masks it) or the reply is not token-exact where it claimed to be.
    ``sampling`` is this sample's own (its seed already derived from the index)."""
    sampling = sampling or SamplingConfig()
    started = time.monotonic()
    messages = patch_messages(problem, context, fmt)
    base = dict(rollout_id=rollout_id, task_id=task_id, policy=policy or model.name,
                sample_index=sample_index, system_prompt=messages[0].content,
                task_prompt=messages[1].content)
    with boundary("model", "patch-mode answer") as seam:
        reply = model.complete(messages, sampling=sampling)
    if seam.failed:
        return Trajectory(**base, stop_reason=StopReason.MODEL_ERROR, error=seam.message,
                          wall_seconds=time.monotonic() - started)
    if not reply.latency_s:
        reply = reply.model_copy(update={"latency_s": time.monotonic() - started})
    steps = (Step(index=0, reply=reply),)
    answer = read_answer(reply.message.content or "", context)
    stop = StopReason.SUBMITTED if answer.ok else StopReason.FORMAT_ERROR
    error = None if answer.ok else f"malformed answer: {answer.error}"
    trace = None
    with boundary("model", "token trace") as seam:
        trace = token_trace(steps, sampling)
    if seam.failed:
        stop, error = StopReason.MODEL_ERROR, seam.message
    return Trajectory(**base, steps=steps, stop_reason=stop, diff=answer.diff, error=error,
                      wall_seconds=time.monotonic() - started, tokens=trace)


def expert_answer(context: PatchContext, gold_patch: str) -> str | None:
    """The gold patch written as line edits of ``context``'s listing: the target an SFT
    step trains on (never part of a prompt). None when the gold change touches a line the
    listing does not show, or a file it does not list.

    A run of removed lines followed by added ones becomes ``N: new`` lines (extra added
    lines repeat the last N, leftover removed lines become ``N:``); an insertion is
    anchored on the line before it, repeated with its own text."""
    from codemill.core.diffs import parse_diff, repo_path, strip_level

    changes = parse_diff(gold_patch)
    strip = strip_level(changes)
    shown = _shown(context)
    out: list[str] = []
    several = len(shown) > 1
    for change in changes:
        path = repo_path(change.old_path or "", strip) if change.old_path else None
        if path is None or path not in shown or path not in context.files:
            return None
        old = split_lines(context.files[path])
        edits: list[str] = []
        for hunk in change.hunks:
            n = hunk.old_start
            minus: list[int] = []
            plus: list[str] = []
            for raw in [*hunk.lines, " "]:
                mark, text = raw[:1], raw[1:].rstrip("\n")
                if mark == "-":
                    minus.append(n)
                    n += 1
                elif mark == "+":
                    plus.append(text)
                elif mark in (" ", ""):
                    if minus or plus:
                        if not minus:  # an insertion: anchor on the line before it
                            if n - 1 < 1:
                                return None
                            minus, plus = [n - 1], [old[n - 2].rstrip("\n"), *plus]
                            edits += _runs(minus, plus)
                        else:
                            edits += _runs(minus, plus)
                        minus, plus = [], []
                    n += 1
        if any(int(e.split(":", 1)[0]) not in shown[path] for e in edits):
            return None
        out += ([path] if several else []) + edits
    return "\n".join(out) if out else None


def _runs(minus: list[int], plus: list[str]) -> list[str]:
    plus = [p for p in plus if p.strip()]  # blank lines cannot be written (module doc)
    lines = [f"{n}: {text}" for n, text in zip(minus, plus, strict=False)]
    lines += [f"{minus[-1]}: {text}" for text in plus[len(minus):]]
    lines += [f"{n}:" for n in minus[len(plus):]]
    return lines
