"""Naming the tests that need inputs a snapshot lacks, from a run's messages and the tree
(no sandbox needed: the report is what a run of a suite reading missing files gives)."""

from pathlib import Path

from codemill.core.records import Outcome, TestCaseResult, TestReport
from codemill.envs.builder.missing import describe, missing_inputs


def _case(node_id: str, outcome: Outcome, message: str = "") -> TestCaseResult:
    return TestCaseResult(node_id=node_id, outcome=outcome, message=message)


def test_missing_submodule_and_data_files_are_named_with_their_tests(tmp_path: Path):
    (tmp_path / ".gitmodules").write_text(
        '[submodule "fixtures"]\n\tpath = tests/fixtures\n\turl = https://example.org/f.git\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/present.json").write_text("{}")
    report = TestReport(command=("pytest",), exit_code=1, duration_s=1.0, results=(
        _case("tests/test_a.py", Outcome.ERROR,
              "FileNotFoundError: [Errno 2] No such file or directory: "
              "'/repo/tests/fixtures/a.json'"),
        _case("tests/test_b.py::test_b", Outcome.FAILED,
              "OSError: cannot read tests/fixtures/b.json"),
        _case("tests/test_c.py::test_c", Outcome.ERROR,
              "FileNotFoundError: [Errno 2] No such file or directory: 'data/zones.bin'"),
        _case("tests/test_d.py::test_d", Outcome.FAILED,
              "FileNotFoundError: [Errno 2] No such file or directory: 'tests/present.json'"),
        _case("tests/test_e.py::test_e", Outcome.FAILED,
              "No such file or directory: '/etc/not-ours'"),
        _case("tests/test_f.py::test_f", Outcome.PASSED),
    ))
    found = missing_inputs(report, tmp_path)
    assert [(m.what, m.tests) for m in found] == [
        ("submodule tests/fixtures (https://example.org/f.git, not fetched)",
         ("tests/test_a.py", "tests/test_b.py::test_b")),
        ("file data/zones.bin (not in the snapshot)", ("tests/test_c.py::test_c",)),
    ]  # a file that is there, or one outside the workspace, is not the snapshot's lack
    assert describe(found) == (
        "2 tests need submodule tests/fixtures (https://example.org/f.git, not fetched): "
        "tests/test_a.py, tests/test_b.py::test_b; 1 test needs file data/zones.bin "
        "(not in the snapshot): tests/test_c.py::test_c")
