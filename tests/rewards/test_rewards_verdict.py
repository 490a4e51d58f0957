"""From a report to a verdict: presence required, flaky masked."""

from codemill.core.records import Outcome, TestCaseResult, TestReport
from codemill.rewards.verdict import has_evidence, judge


def report(outcomes, exit_code=1, error=None, timed_out=False):
    results = tuple(TestCaseResult(node_id=n, outcome=o) for n, o in outcomes.items())
    return TestReport(command=("pytest",), exit_code=exit_code, duration_s=0.1,
                      results=results, error=error, timed_out=timed_out)


F2P = ("t.py::a", "t.py::b")
P2P = ("t.py::c", "t.py::d")


def test_all_pass_resolves():
    v = judge(report({n: Outcome.PASSED for n in F2P + P2P}, 0), F2P, P2P)
    assert v.resolved and (v.f2p_passed, v.f2p_total) == (2, 2) and v.p2p_regressions == ()


def test_missing_or_skipped_counts_as_not_passed():
    v = judge(report({"t.py::a": Outcome.PASSED, "t.py::c": Outcome.SKIPPED,
                      "t.py::d": Outcome.PASSED}), F2P, P2P)
    assert not v.resolved
    assert (v.f2p_passed, v.f2p_total) == (1, 2)
    assert v.p2p_regressions == ("t.py::c",)
    assert v.missing == ("t.py::b",)
    assert [t.outcome for t in v.tests] == ["passed", "missing", "skipped", "passed"]


def test_flaky_tests_are_masked():
    outcomes = {"t.py::a": Outcome.PASSED, "t.py::b": Outcome.FAILED,
                "t.py::c": Outcome.FAILED, "t.py::d": Outcome.PASSED}
    v = judge(report(outcomes), F2P, P2P, flaky={"t.py::b", "t.py::c"})
    assert v.resolved and v.f2p_total == 1 and v.p2p_regressions == ()
    assert [t.flaky for t in v.tests] == [False, True, True, False]


def test_evidence_needs_results_exit_code_and_no_timeout():
    ok = {"t.py::a": Outcome.PASSED}
    assert has_evidence(report(ok, 0))
    assert not has_evidence(report({}, 0))
    assert not has_evidence(report(ok, None))
    assert not has_evidence(report(ok, 0, error="no junit file"))
    assert not has_evidence(report(ok, 0, timed_out=True))
