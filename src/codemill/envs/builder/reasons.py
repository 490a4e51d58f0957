"""Reasons a person can act on, from what a failed command printed.

An install failure becomes one line that says what kind of failure it was (dependency
resolution, building a package, the index unreachable, a timeout, memory) followed by the
few lines of the tool's own message that explain it. A test run that produced no results
becomes its harness error plus the most telling line of its output (an import error, a
usage error). The output comes from untrusted code and is only ever shown, never parsed for
verdicts.
"""

from __future__ import annotations

import re

from codemill.core.records import ExecResult, TestReport

MAX_REASON = 700
_BOX = re.compile(r"^[\s│├╰─▶×|]+")
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
        interesting = [b for b in block if re.search(
            r"error|Error|No module|not found|requires|unsupported|invalid", b)]
        tail = (interesting or block)[-6:]
        return _clip(f"building {m.group(1)} failed: " + " | ".join(tail))
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
    """The most informative line of a test run's output ('' when none stands out): for a
    pytest internal error the exception that ended it (the last one), else the first
    import, syntax or usage error."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    internal = [ln.removeprefix("INTERNALERROR>").strip() for ln in lines
                if ln.startswith("INTERNALERROR>") and _EXCEPTION.search(ln)]
    if internal:
        return internal[-1][:300]
    hits = [ln for ln in lines if _TELLING.search(ln)]
    return (hits[0] if hits else "")[:300]


def run_failure(report: TestReport) -> str:
    """Why a test run gave no trustworthy results."""
    line = telling_line(report.output_tail)
    return _clip(f"{report.error}" + (f": {line}" if line else ""))
