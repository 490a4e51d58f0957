"""From a parsed test report to a verdict: resolved, F2P fraction, P2P regressions.

Pure. The rules, which are the meaning of a reward:

- A test counts as passed only when it is *present* in the harness's result file with
  outcome ``passed``. Absent, failed, errored and skipped all count as not passed: a hack
  that deletes or skips a test gains nothing.
- ``resolved`` is true iff every stable FAIL_TO_PASS test passed and no stable
  PASS_TO_PASS test regressed. Flaky tests (from validation) are left out of both.
- A report without positive evidence that the suite ran (no result file, no exit code, no
  results) gives no verdict at all; the grader decides whether that is the candidate's
  doing (value 0) or the infrastructure's (masked).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from codemill.core.records import Outcome, TestReport


@dataclass(frozen=True)
class TestVerdict:
    """One selected test's verdict at grading."""

    __test__ = False

    node_id: str
    kind: str
    """``f2p``, ``p2p`` or ``canary``."""
    outcome: str
    """The harness's outcome, or ``missing`` when the test is not in the result file."""
    ok: bool
    """Passed (f2p/p2p) or came out as the harness expected (canary)."""
    flaky: bool = False
    """Masked from the verdict (listed flaky by validation)."""


@dataclass(frozen=True)
class Verdict:
    resolved: bool
    f2p_passed: int
    f2p_total: int
    p2p_regressions: tuple[str, ...]
    tests: tuple[TestVerdict, ...] = field(default=())
    missing: tuple[str, ...] = ()
    """Selected stable tests absent from the result file."""


def has_evidence(report: TestReport) -> bool:
    """Positive evidence that the suite ran: results parsed from the harness's file, an
    exit code recorded, no timeout, at least one test."""
    return report.ran and report.exit_code is not None and not report.timed_out


def judge(
    report: TestReport,
    fail_to_pass: Sequence[str],
    pass_to_pass: Sequence[str],
    flaky: Collection[str] = (),
) -> Verdict:
    """The verdict of ``report`` for a task's selection (call only with evidence)."""
    outcomes = report.outcomes()
    tests: list[TestVerdict] = []
    f2p_passed = f2p_total = 0
    regressions: list[str] = []
    missing: list[str] = []
    for kind, ids in (("f2p", fail_to_pass), ("p2p", pass_to_pass)):
        for node in dict.fromkeys(ids):
            got = outcomes.get(node)
            ok = got == Outcome.PASSED
            is_flaky = node in flaky
            tests.append(TestVerdict(node, kind, str(got) if got else "missing", ok, is_flaky))
            if is_flaky:
                continue
            if got is None:
                missing.append(node)
            if kind == "f2p":
                f2p_total += 1
                f2p_passed += ok
            elif not ok:
                regressions.append(node)
    resolved = f2p_total > 0 and f2p_passed == f2p_total and not regressions
    return Verdict(resolved, f2p_passed, f2p_total, tuple(regressions), tuple(tests),
                   tuple(missing))
