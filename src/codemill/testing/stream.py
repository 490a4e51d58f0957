"""The result stream: each test's outcome as the harness decides it, read on the host.

A result file lies in a directory the code under test can write, so it can be rewritten
after the tests ran (at exit, by a daemon). The stream cannot: the in-sandbox guard
(``harness/guard.py``) writes one line per decided outcome to the run's stderr, a pipe to
the host, and a line once written stays. Only lines carrying this run's token count; the
token reaches the harness on stdin (then erased) and lives only in the guard's closures.

Reading rules (``read_stream``):

- ``r`` records ``[node id, outcome, message, seconds]``; one node id may get several
  (setup, call, teardown, subtests): the worst outcome wins (failed, error, skipped,
  passed), so an extra forged record can only make a test worse;
- ``a`` records ``[class, detail]``: what the audit hook saw non-test workspace code do;
- ``end`` ``exit code``: the runner returned; records after the first ``end`` are
  ignored. No ``end``: the run did not finish (the process was killed or exited early),
  whatever its exit code says. A run that wrote past the disk limit has no verdict
  either (the sandbox empties its results dir; its stream counts no more), whatever it
  streamed before. Nor does a run whose stderr was cut at the sandbox's output limit:
  the records in the cut middle are lost, and a test without a record would read as a
  failure of the candidate. ``output_budget`` sizes that limit from the selection, so a
  run in which every selected test passes is never cut (a suite of 26,000 tests streams
  megabytes; the sandbox's default limit is 1 MB).

What it does not protect against: code in the test process that changes a report before
the harness streams it (the canaries, the runner check and the audit hook are the defences
there), or that finds the token in the process's memory without an audited step.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codemill.core.records import ExecResult, Outcome, TestCaseResult, TestReport
from codemill.testing.resultfile import output_tail

FORMAT = "codemill-stream/1"
MARK = "\x1ecm1 "
RECORD_BYTES = 96
"""A record's bytes beside its node id: the mark, the token, the JSON around the id, the
outcome and the seconds, the line breaks."""
_SEVERITY = {Outcome.FAILED: 3, Outcome.ERROR: 2, Outcome.SKIPPED: 1, Outcome.PASSED: 0}


def new_token() -> str:
    return secrets.token_hex(16)


def output_budget(selection: Sequence[str], base: int) -> int:
    """The output limit for a streamed run of ``selection``: ``base`` (what the project
    prints beside the stream) plus twice what one record for every selected test takes.
    Sized so a run in which every test passes fits with room to spare; a run that writes
    more than that (long failure messages for thousands of tests, a flood) is cut, and a
    cut stream has no verdict (``stream_report``)."""
    return base + 2 * sum(len(json.dumps(nid)) + RECORD_BYTES for nid in selection)


def stdin_text(token: str, ids: str | None) -> str:
    """What the runner sends on stdin: the stream line, then the node ids (if any)."""
    return f"codemill-stream {token}\n" + (ids or "")


@dataclass(frozen=True)
class Stream:
    results: tuple[TestCaseResult, ...]
    exit_code: int | None
    """The runner's own return value, from the ``end`` record; None: no ``end``."""
    audit: tuple[str, ...]
    """``class:detail`` of each audit record, in order of arrival."""


def _records(text: str, token: str) -> list[list[object]]:
    prefix = MARK + token + " "
    out: list[list[object]] = []
    for line in text.split("\n"):  # not splitlines(): it splits at the \x1e mark too
        if not line.startswith(prefix):
            continue
        try:
            doc = json.loads(line[len(prefix):])
        except ValueError:
            continue
        if isinstance(doc, list) and len(doc) == 2 and isinstance(doc[0], str):
            out.append(doc)
    return out


def read_stream(text: str, token: str) -> Stream:
    """The records of ``token`` in ``text`` (a run's stderr), merged (module docstring)."""
    merged: dict[str, TestCaseResult] = {}
    audit: list[str] = []
    end: int | None = None
    for kind, payload in _records(text, token):
        if kind == "end":
            end = payload if isinstance(payload, int) else -1
            break
        if kind == "a" and isinstance(payload, list) and len(payload) == 2:
            audit.append(f"{payload[0]}:{payload[1]}")
        elif kind == "r" and isinstance(payload, list) and len(payload) == 4:
            _merge(merged, payload)
    return Stream(tuple(merged[k] for k in sorted(merged)), end, tuple(dict.fromkeys(audit)))


def _merge(merged: dict[str, TestCaseResult], payload: list[object]) -> None:
    nid, outcome, message, seconds = payload
    try:
        result = TestCaseResult(node_id=str(nid), outcome=Outcome(str(outcome)),
                                duration_s=max(0.0, float(seconds)),  # type: ignore[arg-type]
                                message=str(message)[:2000])
    except ValueError:
        return
    old = merged.get(result.node_id)
    if old is None:
        merged[result.node_id] = result
        return
    worse = result if _SEVERITY[result.outcome] > _SEVERITY[old.outcome] else old
    merged[result.node_id] = worse.model_copy(
        update={"duration_s": old.duration_s + result.duration_s})


def stream_report(argv: Sequence[str], res: ExecResult, token: str, *, parser_version: str,
                  exit_errors: Mapping[int, str] | None = None) -> TestReport:
    """A finished command's report from its stream alone (never from a result file)."""
    shown = res.model_copy(update={"stderr": "\n".join(
        ln for ln in res.stderr.split("\n") if ln and not ln.startswith(MARK))})
    base = {"command": tuple(argv), "duration_s": res.duration_s,
            "timed_out": res.timed_out, "parser_version": parser_version,
            "output_tail": output_tail(shown)}
    stream = read_stream(res.stderr, token)
    if res.timed_out:
        why = res.killed_reason or "wall clock"
        return TestReport(**base, exit_code=res.exit_code, audit=stream.audit,
                          error=f"timeout after {res.duration_s:.0f}s ({why})")
    if res.exit_code is None:
        return TestReport(**base, exit_code=None, error="the test command did not start")
    if res.killed_reason == "disk":  # the sandbox threw the results away: so do we
        return TestReport(**base, exit_code=res.exit_code, audit=stream.audit,
                          error="the run wrote past the disk limit")
    if res.stderr_truncated:
        return TestReport(**base, exit_code=res.exit_code, audit=stream.audit,
                          error="the result stream was cut at the output limit: records "
                          "of some tests are lost")
    if stream.exit_code is None:
        cut = " (output cut)" if res.truncated else ""
        return TestReport(**base, exit_code=res.exit_code, audit=stream.audit,
                          error="no end record on the result stream: the run did not "
                          f"finish (exit code {res.exit_code}){cut}")
    code = stream.exit_code
    known = exit_errors or {}
    if code in known:
        return TestReport(**base, exit_code=code, results=stream.results, audit=stream.audit,
                          error=known[code])
    if code not in (0, 1):
        return TestReport(**base, exit_code=code, results=stream.results, audit=stream.audit,
                          error=f"the runner returned {code}")
    if not stream.results:
        return TestReport(**base, exit_code=code, audit=stream.audit,
                          error="the result stream lists no tests")
    return TestReport(**base, exit_code=code, results=stream.results, audit=stream.audit)
