"""From a finished test command and its harness result file to a ``TestReport``.

Shared by the runners, so "what counts as a trustworthy run" is decided in one place:
a run has results only when it finished in time, its result file exists and parses, its
exit code is one the harness uses for a completed run (0 or 1), and the file lists at least
one test. Otherwise ``error`` says why, in words a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from codemill.core.errors import TestRunError
from codemill.core.records import ExecResult, TestCaseResult, TestReport
from codemill.testing.resultfile import output_tail, read_result_file

Parser = Callable[[bytes], tuple[TestCaseResult, ...]]


def make_report(
    argv: Sequence[str],
    res: ExecResult,
    result_path: Path,
    parse: Parser,
    *,
    parser_version: str,
    max_bytes: int,
    exit_errors: Mapping[int, str] | None = None,
) -> TestReport:
    """Read ``result_path`` (host side) with ``parse`` and build the report of ``res``."""
    base = {"command": tuple(argv), "exit_code": res.exit_code,
            "duration_s": res.duration_s, "timed_out": res.timed_out,
            "parser_version": parser_version, "output_tail": output_tail(res)}
    if res.timed_out:
        why = res.killed_reason or "wall clock"
        return TestReport(**base, error=f"timeout after {res.duration_s:.0f}s ({why})")
    if res.exit_code is None:
        return TestReport(**base, error="the test command did not start")
    try:
        data = read_result_file(result_path, max_bytes)
        if data is None:
            return TestReport(**base, error="no result file: collection crashed or the "
                              f"process exited early (exit code {res.exit_code})")
        results = parse(data)
    except TestRunError as exc:
        return TestReport(**base, error=f"result file unusable: {exc}")
    known = exit_errors or {}
    if res.exit_code in known:
        return TestReport(**base, results=results, error=known[res.exit_code])
    if res.exit_code not in (0, 1):
        why = f" ({res.killed_reason})" if res.killed_reason else ""
        return TestReport(**base, results=results,
                          error=f"the test command exited with code {res.exit_code}{why}")
    if not results:
        return TestReport(**base, error="result file lists no tests")
    return TestReport(**base, results=results)
