"""Problem statements written like the issue a user would file.

A statement says what is observed (which tests fail, with their assertion messages and a
trimmed traceback) and never how to fix it: no line of the gold patch, and no line of the
hidden tests' code. ``redact`` enforces that on any text, including a mined commit's
message (used only when it reveals no code of the diff) and a model's rewrite (kept only
when it passes the same check; otherwise the deterministic draft stands).

Scope: prose for the agent. The grader never reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from codemill.core.protocols import ModelBackend
from codemill.core.records import Message, SamplingConfig
from codemill.tasks.patches import code_lines

MAX_FAILURES = 5
MAX_MESSAGE_LINES = 6
MAX_CHARS = 240
"""Longest test id or message line quoted: a parametrized test's id can hold a whole
generated regex (tens of thousands of characters), more than a small model's context."""
_MIN_CODE = 6  # shorter lines (`)`, `else:`, `pass`) carry no information about a fix


def _norm(line: str) -> str:
    return re.sub(r"\s+", " ", line.strip())


def forbidden_lines(gold_patch: str, hidden_sources: Iterable[str] = ()) -> set[str]:
    """Code a statement must not contain: the gold patch's added lines and the hidden
    tests' lines (normalized; trivial short lines excluded)."""
    out = {_norm(x) for x in code_lines(gold_patch, "+")}
    for src in hidden_sources:
        out.update(_norm(x) for x in src.splitlines())
    return {x for x in out if len(x) >= _MIN_CODE and not x.startswith("#")}


def leaks(text: str, forbidden: set[str]) -> list[str]:
    """The forbidden lines that appear in ``text`` (as a substring of one of its lines)."""
    lines = [_norm(x) for x in text.splitlines()]
    return sorted({f for f in forbidden for line in lines if f in line})


def redact(text: str, forbidden: set[str]) -> str:
    """``text`` without the lines that contain forbidden code."""
    kept = [x for x in text.splitlines() if not any(f in _norm(x) for f in forbidden)]
    return "\n".join(kept)


def _trim_message(message: str, forbidden: set[str]) -> list[str]:
    lines = [x.rstrip() for x in redact(message, forbidden).splitlines() if x.strip()]
    # pytest's assertion introspection ("+  where 3 = f(1)") echoes test code; drop it
    lines = [x for x in lines if not x.lstrip().startswith(("+", "where "))]
    return [_clip(x) for x in lines[:MAX_MESSAGE_LINES]]


def _clip(text: str) -> str:
    """``text`` cut to ``MAX_CHARS``, saying how much was left out."""
    if len(text) <= MAX_CHARS:
        return text
    return f"{text[:MAX_CHARS]}... ({len(text) - MAX_CHARS} more characters)"


def failure_statement(
    failures: Mapping[str, str],
    *,
    forbidden: set[str],
    subject: str = "",
    commit_message: str = "",
) -> str:
    """An issue text from ``{test node id: failure message}`` of the broken state.

    ``subject`` names what misbehaves (``the function `pkg.mod.f```), when known.
    ``commit_message`` is included only when it leaks none of ``forbidden``.
    """
    names = sorted(failures)
    what = f" in {subject}" if subject else ""
    parts = [f"Something is wrong{what}: {len(names)} test(s) fail that should pass.", ""]
    if commit_message and not leaks(commit_message, forbidden):
        first = commit_message.strip().splitlines()[0]
        parts[0] = f"{first}\n\n{parts[0]}"
    for name in names[:MAX_FAILURES]:
        parts.append(f"* `{_clip(name)}`")
        msg = _trim_message(failures[name], forbidden)
        if msg:
            parts.append("  ```")
            parts.extend(f"  {x}" for x in msg)
            parts.append("  ```")
    if len(names) > MAX_FAILURES:
        parts.append(f"* ... and {len(names) - MAX_FAILURES} more")
    parts += ["", "Expected: these tests pass, and the rest of the test suite keeps passing."]
    return "\n".join(parts).strip() + "\n"


def feature_statement(
    *,
    module: str,
    qualname: str,
    signature: str,
    docstring: str,
    call_sites: Sequence[str],
    removed_whole: bool,
) -> str:
    """Ask for a missing or stubbed function, from its signature, docstring and callers."""
    verb = "is missing" if removed_whole else "is not implemented (it raises NotImplementedError)"
    parts = [f"`{module}.{qualname}` {verb}.", "", "Please implement it:", "",
             "```python", signature + ":"]
    if docstring:
        parts.append('    """' + docstring.strip() + '"""')
    parts.append("```")
    if call_sites:
        parts += ["", "It is used here:", ""]
        parts += [f"* `{c}`" for c in call_sites]
    parts += ["", "Expected: code that uses it works and the test suite passes."]
    return "\n".join(parts) + "\n"


_REWRITE = (
    "Rewrite the following bug report so it reads like an issue a user of the library "
    "would file. Keep every test name and error message. Do not propose a fix, do not "
    "guess at code, do not add information. Answer with the issue text only.\n\n"
)


def rewrite(draft: str, model: ModelBackend, forbidden: set[str]) -> str:
    """A model's rewrite of ``draft``, or the draft itself when the rewrite is empty, too
    long, or leaks forbidden code."""
    reply = model.complete(
        [Message(role="user", content=_REWRITE + draft)],
        sampling=SamplingConfig(temperature=0.0, max_tokens=768),
    )
    text = (reply.message.content or "").strip()
    if not text or len(text) > 4 * len(draft) + 500 or leaks(text, forbidden):
        return draft
    return text + "\n"
