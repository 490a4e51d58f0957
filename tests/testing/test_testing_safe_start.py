"""The safe start: nothing in the workspace is imported before the runner, no plugin is
auto-loaded from the workspace; unittest runs get canaries like pytest runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from codemill.core.records import Outcome
from codemill.rewards.canary import plant
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.unittest_runner import UnittestRunner

from .conftest import UNITTEST, write_project

pytestmark = pytest.mark.network  # the sandbox env gets pytest from the package index

BOOM = "raise SystemExit('the workspace was imported before the runner')\n"
PLAIN = {"tests/test_plain.py": "def test_one():\n    assert 1 + 1 == 2\n"}


@pytest.mark.parametrize("safe", [True, False])
def test_a_root_module_shadowing_the_stdlib_is_not_imported(open_project, tmp_path: Path, safe):
    files = {**PLAIN, "fnmatch.py": BOOM}
    sb = open_project(write_project(tmp_path / "proj", files))
    report = PytestRunner(safe_start=safe).run(sb, ["tests/test_plain.py::test_one"],
                                                timeout_s=120)
    if safe:
        assert report.outcomes() == {"tests/test_plain.py::test_one": Outcome.PASSED}, report
    else:  # what the safe start prevents: python -m pytest imports ./fnmatch.py
        assert not report.ran and "imported before the runner" in report.output_tail


@pytest.mark.parametrize("safe", [True, False])
def test_a_workspace_dist_info_plugin_is_not_loaded(open_project, tmp_path: Path, safe):
    files = {**PLAIN, "zz-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: zz\n"
                                                   "Version: 1.0\n",
             "zz-1.0.dist-info/entry_points.txt": "[pytest11]\nzz = zz_plugin\n",
             "zz_plugin.py": BOOM}
    sb = open_project(write_project(tmp_path / "proj", files))
    report = PytestRunner(safe_start=safe).run(sb, ["tests/test_plain.py::test_one"],
                                                timeout_s=120)
    assert report.ran is safe, report


def test_the_project_is_still_importable_from_the_root(open_project, tmp_path: Path):
    files = {"mylib.py": "def two():\n    return 2\n",
             "tests/test_lib.py": "from mylib import two\n\n\ndef test_two():\n"
                                  "    assert two() == 2\n"}
    sb = open_project(write_project(tmp_path / "proj", files))
    report = PytestRunner().run(sb, ["tests/test_lib.py::test_two"], timeout_s=120)
    assert report.outcomes() == {"tests/test_lib.py::test_two": Outcome.PASSED}, report


def test_unittest_harness_starts_before_the_workspace(open_project, tmp_path: Path):
    files = {**UNITTEST, "argparse.py": BOOM}
    sb = open_project(write_project(tmp_path / "units", files))
    ok = "tests/test_units.py::TestMath::test_ok"
    report = UnittestRunner(start_dir="tests").run(sb, [ok], timeout_s=120)
    assert report.outcomes() == {ok: Outcome.PASSED}, report


def test_unittest_canaries_run_and_fail(open_project, tmp_path: Path):
    sb = open_project(write_project(tmp_path / "units", UNITTEST))
    ok = "tests/test_units.py::TestMath::test_ok"
    canaries, selection = plant(sb, [ok], count=3, unittest=True, rng=random.Random(7))
    assert len(canaries) == 3 and set(selection) == {ok, *(c.node_id for c in canaries)}
    report = UnittestRunner(start_dir="tests").run(sb, selection, timeout_s=120)
    outcomes = report.outcomes()
    assert outcomes[ok] == Outcome.PASSED
    assert all(outcomes.get(c.node_id) == Outcome.FAILED for c in canaries), outcomes


def test_canaries_never_replace_a_test_of_the_selection(open_project, tmp_path: Path):
    """A canary named like a selected test (``test_add`` + the word ``negative`` of another
    test = ``test_add_negative``) and appended to its file would replace that test and fail
    it, so an honest fix would earn 0. Names here make that draw likely; none may happen."""
    files = {"tests/test_ops.py": "def test_add():\n    assert True\n\n\n"
                                  "def test_sub():\n    assert True\n",
             "tests/test_hidden.py": "def test_add_negative():\n    assert True\n\n\n"
                                     "def test_add_sub():\n    assert True\n"}
    selection = ["tests/test_hidden.py::test_add_negative", "tests/test_ops.py::test_add",
                 "tests/test_hidden.py::test_add_sub", "tests/test_ops.py::test_sub"]
    layer = write_project(tmp_path / "proj", files)
    for seed in range(150):
        sb = open_project(layer)
        canaries, planted = plant(sb, selection, count=3, unittest=False,
                                  rng=random.Random(seed), fail_to_pass=tuple(selection[:2]))
        assert not {c.node_id for c in canaries} & set(selection), (seed, canaries)
        for path in ("tests/test_ops.py", "tests/test_hidden.py"):
            text = bytes(sb.read_file(path)).decode()
            names = [line.split("(")[0] for line in text.splitlines() if line.startswith("def ")]
            assert len(names) == len(set(names)), (seed, path, names)
        if seed < 2:  # the selection still runs as written, the canaries fail
            report = PytestRunner().run(sb, planted, timeout_s=120)
            outcomes = report.outcomes()
            assert all(outcomes[n] == Outcome.PASSED for n in selection), outcomes
            assert all(outcomes[c.node_id] == Outcome.FAILED for c in canaries), outcomes
        sb.close()
