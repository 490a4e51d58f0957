"""What a selection costs by the baseline: node ids, and files or directories of tests."""

from codemill.core.records import Outcome, TestCaseResult, TestReport
from codemill.testing.baseline import summarize


def _report(*durations: tuple[str, float]) -> TestReport:
    return TestReport(command=("python", "-m", "pytest"), exit_code=0, duration_s=9.0,
                      parser_version="junit", results=tuple(
                          TestCaseResult(node_id=n, outcome=Outcome.PASSED, duration_s=d)
                          for n, d in durations))


def test_a_file_costs_its_tests():
    base = summarize([
        _report(("tests/test_a.py::x", 1.0), ("tests/test_a.py::C::y", 2.0),
                ("tests/test_ab.py::z", 4.0), ("tests/sub/test_c.py::w", 8.0)),
        _report(("tests/test_a.py::x", 1.5), ("tests/test_a.py::C::y", 2.0),
                ("tests/test_ab.py::z", 4.0), ("tests/sub/test_c.py::w", 8.0)),
    ])
    assert base.cost(["tests/test_a.py"]) == 3.5  # both of its tests, each at its slowest
    assert base.cost(["tests/test_a.py", "tests/test_a.py::x"]) == 3.5  # counted once
    assert base.cost(["tests/sub"]) == base.cost(["tests/sub/"]) == 8.0
    assert base.cost(["tests/test_ab.py::z", "tests/missing.py"]) == 4.0
    assert base.cost(None) == 15.5
