"""Reasons a person can act on, from what a failed command printed.

An install failure becomes one line that says what kind of failure it was (dependency
resolution, building a package, the index unreachable, a timeout, memory) followed by what
explains it: for a build that raised, the exception type and message of the deepest frame
and where it was raised (never a ``~~~^^^`` caret line of the traceback), else the few
lines of the tool's own message. A test run that produced no results becomes its harness
error plus the most telling line of its output (the exception that ended it, an import
error, a usage error). ``failed_distribution`` names the requirement uv could not build,
so that the installer can relax or drop just that one. The output comes from untrusted code
and is only ever shown or used to choose the next install attempt, never parsed for
verdicts.
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from codemill.core.records import ExecResult, TestReport

MAX_REASON = 700
_BOX = re.compile(r"^[\s│├╰─▶×|]*(?:(?:cause|error):\s+)?")
"""The tree drawing (or, without colours, the ``error:``/``cause:`` labels) of uv's errors."""
_BUILD = re.compile(r"Failed to (?:build|prepare distributions|download and build)[^`]*`([^`]+)`")


def _clean(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        line = _BOX.sub("", line).strip()
        if line and not line.startswith(("hint: This usually indicates", "[stdout]")):
            out.append(line)
    return out


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def failed_distribution(output: str) -> tuple[str, str] | None:
    """``(canonical name, version)`` of the distribution uv says it failed to build
    (``Failed to build `X==1.2```); version is '' for a local or URL one (the project
    itself: ``X @ file:///repo``). None when no build failed."""
    m = _BUILD.search("\n".join(_clean(output.splitlines())))
    if not m:
        return None
    try:
        req = Requirement(m.group(1))
    except InvalidRequirement:
        return None
    pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
    return canonicalize_name(req.name), (pins[0] if pins and not req.url else "")


_PREFIX = re.compile(r"^(?:INTERNALERROR>|E\s{2,}|E$|[\s│├╰─▶×|]*)\s*")
_FRAME = re.compile(r'^File "([^"]+)", line (\d+)')
_CARETS = re.compile(r"^[\s~^]+$")
_RAISED = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Warning|Interrupt)(?::\s.*)?$"
    r"|^(?:[a-z_]\w*\.)+[A-Z]\w*:\s.+$")


def deepest_exception(output: str) -> str:
    """The exception that ended the last traceback in ``output``: ``Type: message`` (a
    message on up to three lines, joined) and ``at file:line`` of the frame that raised it,
    the deepest frame in the project (``/repo``) when there is one; '' when ``output`` holds
    no traceback. Caret and tilde lines (``~~~^^^``) are never taken for the message."""
    lines = [_PREFIX.sub("", ln).rstrip() for ln in output.splitlines()]
    start = max((i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent")),
                default=-1)
    if start < 0:
        return ""
    frames: list[tuple[str, str]] = []
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if m := _FRAME.match(line):
            frames.append((m.group(1), m.group(2)))
            continue
        if not _RAISED.match(line) or not frames:
            continue
        message = [line]
        for more in lines[i + 1:i + 3]:
            if not more or _CARETS.match(more) or more.startswith(("hint:", "[std", "Traceback",
                                                                   "During handling")):
                break
            message.append(more)
        # Where: the deepest frame in the project, else the deepest frame; code exec'd
        # from a string (setuptools runs setup.py so) has no file to name.
        own = [f for f in frames if f[0].startswith("/repo/")]
        where = (own or frames)[-1]
        at = "" if where[0].startswith("<") else f" (at {where[0]}:{where[1]})"
        return " ".join(message) + at
    return ""


def attempts_failure(reasons: list[tuple[str, str]]) -> str:
    """Why the install failed: the last attempt's reason, then the attempts tried."""
    if not reasons:
        return "no install attempt"
    label, last = reasons[-1]
    if all(why == last for _, why in reasons):
        tried = "; ".join(lbl for lbl, _ in reasons)
        return f"{last} [attempts, all failing so: {tried}]"
    tried = " | ".join(f"{lbl}: {why[:160]}" for lbl, why in reasons[:-1])
    return f"{last} [attempts: {tried} | {label}: as above]"


def install_failure(res: ExecResult) -> str:
    """The reason an install command failed."""
    if res.timed_out:
        return f"install timed out after {res.duration_s:.0f}s"
    if res.killed_reason == "memory":
        return "install ran out of memory (building a package needs more; raise memory_mb)"
    text = res.stderr or res.stdout
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if re.match(r"^\s*(×|error:)", line)), max(0, len(lines) - 8))
    block = _clean(lines[start:])
    joined = "\n".join(block)
    if "No solution found" in joined:
        body = [b for b in block if not b.startswith("No solution found")]
        return _clip("dependency resolution failed: " + " ".join(body[:6]))
    if m := _BUILD.search(joined):
        raised = deepest_exception(text)
        if raised:
            return _clip(f"building {m.group(1)} failed: {raised}")
        interesting = [b for b in block if re.search(
            r"error|Error|No module|not found|requires|unsupported|invalid", b)
            and not _CARETS.match(b)]
        tail = (interesting or block)[-6:]
        return _clip(f"building {m.group(1)} failed: " + " | ".join(tail))
    if "build backend returned an error" in joined and (raised := deepest_exception(text)):
        # uv names no distribution when the editable build of the project itself fails.
        what = "the project" if "build_editable" in joined else "a package"
        return _clip(f"building {what} failed: {raised}")
    if re.search(r"Failed to fetch|error sending request|dns error|Connect\b", joined):
        return _clip("package index unreachable: " + " ".join(block[:3]))
    if "not found in the package registry" in joined or "was not found in" in joined:
        return _clip("a requirement is not on the index: " + " ".join(block[:4]))
    return _clip(f"install failed (exit {res.exit_code}): " + " | ".join(block[-6:]))


_TELLING = re.compile(
    r"(ModuleNotFoundError|ImportError|SyntaxError|AttributeError|TypeError|NameError|"
    r"error: unrecognized arguments|ERROR: usage|INTERNALERROR|Error: |PytestUnknownMark|"
    r"PytestRemovedIn|DeprecationWarning|fixture '.*' not found)")


_EXCEPTION = re.compile(r"\b\w+(?:Error|Exception|Exit): ")


def telling_line(output: str) -> str:
    """The most informative line of a test run's output ('' when none stands out): when
    a traceback ended the run (a pytest internal error, a plugin pytest refused) the
    exception that ended it and where (``deepest_exception``), else the first import,
    syntax or usage error."""
    raised = deepest_exception(output)
    if raised:
        return raised[:400]
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    internal = [ln.removeprefix("INTERNALERROR>").strip() for ln in lines
                if ln.startswith("INTERNALERROR>") and _EXCEPTION.search(ln)]
    if internal:
        return internal[-1][:300]
    hits = [ln for ln in lines if _TELLING.search(ln) and not _CARETS.match(ln)]
    first = hits[0] if hits else ""
    # pytest puts the exception on an ``E`` line after the headline ("ImportError while
    # loading conftest ..."): name both.
    raised = [ln[1:].strip() for ln in lines if ln.startswith("E ")
              and _RAISED.match(ln[1:].strip())]
    if first and raised and raised[-1] not in first:
        first = f"{first} {raised[-1]}"
    return first[:300]


def run_failure(report: TestReport) -> str:
    """Why a test run gave no trustworthy results."""
    line = telling_line(report.output_tail)
    return _clip(f"{report.error}" + (f": {line}" if line else ""))
