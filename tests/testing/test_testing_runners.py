"""The runners through real bwrap sandboxes: verdicts come only from the harness's file."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemill.core.errors import TestRunError
from codemill.core.records import Outcome
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.safe_start import PYTEST_START
from codemill.testing.unittest_runner import UnittestRunner

from .conftest import MIXED, UNITTEST, write_project

pytestmark = pytest.mark.network  # the sandbox env gets pytest from the package index

MANY = {"tests/test_many.py": '''
import pytest

@pytest.mark.parametrize("i", range(300))
def test_number_with_a_rather_long_name_to_make_the_selection_long(i):
    assert i % 7 != 3
'''}


def test_pytest_runner_whole_suite(open_project, tmp_path: Path):
    sb = open_project(write_project(tmp_path / "proj", MIXED))
    report = PytestRunner().run(sb, timeout_s=120)
    assert report.error is None and report.ran and report.exit_code == 1
    assert report.command[:3] == ("/env/bin/python", "-c", PYTEST_START)
    assert report.parser_version == PytestRunner().parser_version
    out = report.outcomes()
    assert len(out) == 17
    assert out["tests/test_mix.py::test_param[c/d.e]"] == Outcome.PASSED
    assert out["tests/test_inherit.py::TestChild::test_inherited"] == Outcome.PASSED
    assert out["tests/test_broken_import.py"] == Outcome.ERROR
    assert report.count(Outcome.PASSED) == 9 and report.count(Outcome.FAILED) == 3
    assert sb.diff() == ""  # no caches or bytecode left in the workspace


def test_pytest_runner_selections(open_project, tmp_path: Path):
    sb = open_project(write_project(tmp_path / "proj", {**MIXED, **MANY}))
    runner = PytestRunner()
    picked = ["tests/test_mix.py::test_pass", "tests/test_mix.py::test_param[2]"]
    report = runner.run(sb, picked, timeout_s=120)
    assert report.outcomes() == {picked[0]: Outcome.PASSED, picked[1]: Outcome.FAILED}
    many = [f"tests/test_many.py::test_number_with_a_rather_long_name_to_make_the_selection_"
            f"long[{i}]" for i in range(0, 300, 1)][:250]
    assert not runner.inline(many)  # goes on stdin, not argv
    report = runner.run(sb, many, timeout_s=120)
    assert report.error is None and sorted(report.outcomes()) == sorted(many)
    assert report.count(Outcome.FAILED) == len([i for i in range(250) if i % 7 == 3])
    report = runner.run(sb, keyword="TestNested or xpass", timeout_s=120)
    assert sorted(report.outcomes()) == [
        "tests/test_broken_import.py",  # a collection error is reported whatever -k says
        "tests/test_mix.py::TestGroup::TestNested::test_deep",
        "tests/test_mix.py::test_xpass", "tests/test_mix.py::test_xpass_strict"]
    for bad in ([], ["--co"], ["a\nb"]):
        with pytest.raises(TestRunError):
            runner.command(bad)


@pytest.mark.parametrize("pytest_major", [6, 8])
def test_an_id_with_double_colons_in_its_parameters_is_run(open_project, open_old_project,
                                                           tmp_path: Path, pytest_major):
    """pytest 6 splits a command-line id at every ``::``: ``test_param[a::b]`` names no
    test and stops the run with a usage error, so it runs as its function's id."""
    from codemill.testing.pytest_runner import addressable

    picked = ["tests/test_mix.py::test_param[a::b]", "tests/test_mix.py::test_pass"]
    assert addressable(picked) == ["tests/test_mix.py::test_param", picked[1]]
    opener = open_old_project if pytest_major == 6 else open_project
    sb = opener(write_project(tmp_path / "proj", MIXED))
    for runner in (PytestRunner(), PytestRunner(stream=True)):
        report = runner.run(sb, picked, timeout_s=120)
        assert report.error is None, report.output_tail
        out = report.outcomes()
        assert out[picked[0]] == out[picked[1]] == Outcome.PASSED
        assert out["tests/test_mix.py::test_param[2]"] == Outcome.FAILED  # run, not read


TESTCASE_ORDER = {"tests/test_case_order.py": '''
import unittest

class TestCaseOrder(unittest.TestCase):
    def test_b(self):
        pass

    def test_a(self):
        pass
'''}


@pytest.mark.parametrize("pytest_major", [6, 8])
def test_the_listing_is_the_order_a_whole_suite_run_reaches(open_project, open_old_project,
                                                            tmp_path: Path, pytest_major):
    """``collect`` lists what a whole-suite run runs, in its order, whatever rules the
    project's pytest has (a TestCase's tests sorted by name; a directory's files before
    its subdirectories under pytest 6, by name under 8)."""
    opener = open_old_project if pytest_major == 6 else open_project
    sb = opener(write_project(tmp_path / "proj", {**MIXED, **TESTCASE_ORDER}))
    runner = PytestRunner()
    listed = runner.collect(sb)
    ran = [r.node_id for r in PytestRunner(stream=True).run(sb, timeout_s=120).results]
    assert listed is not None and set(listed) == set(ran) - {"tests/test_broken_import.py"}
    case = [i for i in listed if "TestCaseOrder" in i]
    assert case == ["tests/test_case_order.py::TestCaseOrder::test_a",
                    "tests/test_case_order.py::TestCaseOrder::test_b"]
    deep, top = (listed.index("tests/sub/test_deep_module.py::test_sub"),
                 listed.index("tests/test_mix.py::test_pass"))
    assert (deep > top) if pytest_major == 6 else (deep < top)


def test_pytest_runner_errors_are_explained(open_project, tmp_path: Path):
    runner = PytestRunner()
    empty = open_project(write_project(tmp_path / "empty", {"README.md": "no tests\n"}))
    report = runner.run(empty, timeout_s=120)
    assert report.error == "no tests collected" and report.exit_code == 5 and not report.ran
    slow = open_project(write_project(tmp_path / "slow", {
        "test_slow.py": "import time\n\ndef test_sleep():\n    time.sleep(60)\n"}))
    report = runner.run(slow, timeout_s=3)
    assert report.timed_out and report.error.startswith("timeout") and not report.results


def test_spoofed_verdicts_are_not_believed(open_project, tmp_path: Path):
    fake = ('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="100">'
            + "".join(f'<testcase classname="tests.test_x" name="test_{i}" time="0.1"/>'
                      for i in range(100)) + "</testsuite></testsuites>")
    hostile = {
        "tests/test_real.py": "def test_real():\n    assert False\n",
        "conftest.py": f'''
import os, sys
FAKE = {fake!r}

def pytest_sessionstart(session):
    for path in ("junit.xml", "tests/junit.xml", "/tmp/junit.xml"):
        with open(path, "w") as fh:
            fh.write(FAKE)
    print("=" * 30 + " 100 passed in 0.10s " + "=" * 30)
    sys.stdout.flush()
    os._exit(0)
''',
    }
    sb = open_project(write_project(tmp_path / "hostile", hostile))
    report = PytestRunner().run(sb, timeout_s=120)
    assert "100 passed" in report.output_tail and report.exit_code == 0
    assert not report.ran and report.results == ()
    assert report.error.startswith("no result file")
    # Planting a link in the results dir to make the host read one of its files fails too.
    planted = {"tests/test_real.py": '''
import os

def test_plant():
    os.symlink("/etc/passwd", "/harness/results/junit.xml")
    os._exit(0)
'''}
    sb = open_project(write_project(tmp_path / "planted", planted))
    report = PytestRunner().run(sb, timeout_s=120)
    # The sandbox removes links from the results dir after a run, and the runner refuses
    # to follow one (``test_result_files_are_read_without_following_links``): either way the
    # host file is never read as results.
    assert not report.ran and report.results == ()
    assert "symlink" in report.error or report.error.startswith("no result file")


def test_unittest_runner(open_project, tmp_path: Path):
    sb = open_project(write_project(tmp_path / "units", UNITTEST))
    runner = UnittestRunner(start_dir="tests")
    report = runner.run(sb, timeout_s=120)
    assert report.error is None and report.exit_code == 1
    base = "tests/test_units.py::TestMath::"
    assert report.outcomes() == {
        base + "test_ok": Outcome.PASSED, base + "test_bad": Outcome.FAILED,
        base + "test_boom": Outcome.ERROR, base + "test_skipped": Outcome.SKIPPED,
        base + "test_expected": Outcome.SKIPPED, base + "test_subtests": Outcome.FAILED,
        "tests/test_unimportable.py": Outcome.ERROR,
    }
    assert "2 != 3" in {r.node_id: r for r in report.results}[base + "test_bad"].message
    picked = [base + "test_ok", base + "test_nope"]
    report = runner.run(sb, picked, timeout_s=120)
    assert report.outcomes() == {picked[0]: Outcome.PASSED, picked[1]: Outcome.ERROR}
    report = runner.run(sb, [base + "test_ok"] * 250, timeout_s=120)  # via stdin
    assert report.outcomes() == {base + "test_ok": Outcome.PASSED}
