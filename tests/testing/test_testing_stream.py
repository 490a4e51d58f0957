"""The result stream and the audit hook: outcomes read as they were decided, and what
non-test workspace code did, through real bwrap sandboxes (the reading rules alone first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemill.core.records import Outcome
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.stream import MARK, read_stream
from codemill.testing.unittest_runner import UnittestRunner

from .conftest import MIXED, UNITTEST, write_project


def line(token: str, doc: str) -> str:
    return f"\n{MARK}{token} {doc}\n"


def test_worst_outcome_wins_and_nothing_after_the_end_counts():
    text = (line("t", '["r", ["a.py::x", "passed", "", 0.5]]')
            + line("t", '["r", ["a.py::x", "error", "teardown", 0.25]]')
            + line("t", '["r", ["a.py::y", "failed", "no", 0.0]]')
            + line("t", '["a", ["exec", "src/m.py:f"]]')
            + line("t", '["end", 1]')
            + line("t", '["r", ["a.py::y", "passed", "", 0.0]]'))
    stream = read_stream(text, "t")
    assert {r.node_id: r.outcome for r in stream.results} == {
        "a.py::x": Outcome.ERROR, "a.py::y": Outcome.FAILED}
    assert stream.results[0].duration_s == 0.75
    assert stream.exit_code == 1 and stream.audit == ("exec:src/m.py:f",)


def test_lines_without_the_token_are_not_believed():
    text = (line("guess", '["r", ["a.py::x", "passed", "", 0.0]]') + line("guess", '["end", 0]')
            + line("t", '["r", ["a.py::x", "failed", "", 0.0]]') + "not json\n")
    stream = read_stream(text, "t")
    assert [r.outcome for r in stream.results] == [Outcome.FAILED]
    assert stream.exit_code is None  # no end record of this run: it did not finish




def test_a_run_over_the_disk_limit_has_no_verdict_whatever_it_streamed():
    from codemill.core.records import ExecResult
    from codemill.testing.stream import stream_report

    err = line("t", '["r", ["a.py::x", "passed", "", 0.0]]') + line("t", '["end", 0]')
    done = ExecResult(exit_code=0, stdout="", stderr=err, duration_s=1.0)
    assert stream_report(("py",), done, "t", parser_version="v").ran
    over = done.model_copy(update={"killed_reason": "disk"})
    report = stream_report(("py",), over, "t", parser_version="v")
    assert not report.ran and "disk" in (report.error or ""), report


def test_a_run_whose_stream_was_cut_has_no_verdict_whatever_it_streamed():
    from codemill.core.records import ExecResult
    from codemill.testing.stream import stream_report

    err = line("t", '["r", ["a.py::x", "passed", "", 0.0]]') + line("t", '["end", 0]')
    cut = ExecResult(exit_code=0, stdout="", stderr=err, duration_s=1.0, truncated=True,
                     stderr_truncated=True)
    report = stream_report(("py",), cut, "t", parser_version="v")
    assert not report.ran and "cut" in (report.error or ""), report
    only_stdout = cut.model_copy(update={"stderr_truncated": False})
    assert stream_report(("py",), only_stdout, "t", parser_version="v").ran


def test_the_output_budget_grows_with_the_selection_and_its_quoting():
    from codemill.testing.stream import output_budget

    plain = output_budget(["t.py::a"] * 1000, 1000)
    quoted = output_budget(['t.py::a"'] * 1000, 1000)
    assert output_budget([], 1000) == 1000 < plain < quoted


@pytest.mark.network
@pytest.mark.parametrize("kind", ["pytest", "unittest"])
def test_the_stream_says_what_the_result_file_says(open_project, tmp_path: Path, kind):
    files, runner = ((MIXED, PytestRunner) if kind == "pytest" else (UNITTEST, UnittestRunner))
    sb = open_project(write_project(tmp_path / "proj", files))
    from_file = runner().run(sb, timeout_s=120)
    streamed = runner(stream=True).run(sb, timeout_s=120)
    assert from_file.ran and streamed.ran, (from_file.error, streamed.error)
    assert streamed.outcomes() == from_file.outcomes()
    assert streamed.exit_code == from_file.exit_code == 1
    assert streamed.parser_version != from_file.parser_version
    assert MARK not in streamed.output_tail


AT_EXIT = '''
import atexit, re

def _rewrite():
    path = "/harness/results/junit.xml"
    text = re.sub(r"<failure[^>]*>.*?</failure>|<failure[^>]*/>", "", open(path).read(),
                  flags=re.S)
    open(path, "w").write(text)

atexit.register(_rewrite)
'''


@pytest.mark.network
def test_rewriting_the_result_file_at_exit_changes_nothing(open_project, tmp_path: Path):
    files = {"lib.py": AT_EXIT + "def two():\n    return 3\n",
             "tests/test_lib.py": "from lib import two\n\n\ndef test_two():\n"
                                  "    assert two() == 2\n"}
    sb = open_project(write_project(tmp_path / "proj", files))
    ids = ["tests/test_lib.py::test_two"]
    assert PytestRunner().run(sb, ids, timeout_s=120).outcomes() == {ids[0]: Outcome.PASSED}
    streamed = PytestRunner(stream=True).run(sb, ids, timeout_s=120)
    assert streamed.outcomes() == {ids[0]: Outcome.FAILED}, streamed


SNOOP = '''
import ctypes, sys

def snoop():
    exec("x = 1")
    sys._getframe(0)
    open("tests/test_snoop.py").read()
    sys.settrace(None)
    return 2
'''


@pytest.mark.network
def test_the_audit_hook_records_non_test_workspace_code_only(open_project, tmp_path: Path):
    files = {"snoop.py": SNOOP,
             "tests/test_snoop.py": "import sys\nfrom snoop import snoop\n\n\n"
                                    "def test_snoop():\n    exec('y = 2')\n"
                                    "    sys._getframe(0)\n    assert snoop() == 2\n"}
    sb = open_project(write_project(tmp_path / "proj", files))
    report = PytestRunner(stream=True).run(sb, ["tests/test_snoop.py::test_snoop"],
                                           timeout_s=120)
    assert report.ran, report.error
    assert set(report.audit) == {"exec:snoop.py:snoop", "frame:snoop.py:snoop",
                                 "test_read:tests/test_snoop.py", "trace:snoop.py:snoop",
                                 "ctypes:snoop.py:<module>"}, report.audit


@pytest.mark.network
def test_unittest_runs_stream_and_report_a_patched_runner(open_project, tmp_path: Path):
    """A workspace module that makes ``assertEqual`` a no-op: the failing test passes, and
    the change to unittest's own code is on the stream as runner evidence."""
    files = {"lib.py": "import unittest\n\nunittest.TestCase.assertEqual = "
                       "lambda self, *a, **k: None\n\n\ndef two():\n    return 3\n",
             "tests/__init__.py": "",
             "tests/test_lib.py": "import unittest\n\nfrom lib import two\n\n\n"
                                  "class TestTwo(unittest.TestCase):\n"
                                  "    def test_two(self):\n"
                                  "        self.assertEqual(two(), 2)\n"}
    sb = open_project(write_project(tmp_path / "proj", files))
    nid = "tests/test_lib.py::TestTwo::test_two"
    report = UnittestRunner(start_dir="tests", stream=True).run(sb, [nid], timeout_s=120)
    assert report.outcomes() == {nid: Outcome.PASSED}, report
    assert "runner:changed:TestCase.assertEqual" in report.audit, report.audit


@pytest.mark.network
def test_unittest_canaries_are_copies_of_the_selected_test(open_project, tmp_path: Path):
    import random

    from codemill.rewards.canary import plant

    sb = open_project(write_project(tmp_path / "units", UNITTEST))
    ok = "tests/test_units.py::TestMath::test_ok"
    canaries, selection = plant(sb, [ok], count=2, unittest=True, rng=random.Random(3))
    text = bytes(sb.read_file("tests/test_units.py")).decode()
    assert all(c.node_id.startswith("tests/test_units.py::TestMath::test_ok_")
               for c in canaries), canaries
    before = UNITTEST["tests/test_units.py"].count("self.assertEqual(1 + 1, ")
    assert text.count("self.assertEqual(1 + 1, ") == before + 2  # two copies of test_ok
    report = UnittestRunner(start_dir="tests", stream=True).run(sb, selection, timeout_s=120)
    assert report.outcomes()[ok] == Outcome.PASSED
    assert all(report.outcomes()[c.node_id] == Outcome.FAILED for c in canaries), report
