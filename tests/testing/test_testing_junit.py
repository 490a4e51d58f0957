"""JUnit files written by a real pytest run, parsed; hostile result files refused.

The project is our own fixture code, so pytest runs here unsandboxed with the dev venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codemill.core.errors import TestRunError
from codemill.core.records import Outcome
from codemill.testing.junit import node_id, parse_junit
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.resultfile import read_result_file

from .conftest import MIXED, write_project


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, list[str]]:
    root = write_project(tmp_path_factory.mktemp("mixed") / "proj", MIXED)
    results = root.parent / "results"
    results.mkdir()
    runner = PytestRunner(python=sys.executable, rootdir=str(root))
    argv = runner.command(results_dir=str(results))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         f"--rootdir={root}", "--continue-on-collection-errors"],
        cwd=root, env=env, capture_output=True, text=True)
    ids = [ln for ln in collected.stdout.splitlines() if "::" in ln]
    return root, (results / "junit.xml").read_bytes(), ids


def test_node_ids_match_pytest_collection(mixed_run):
    _, xml, collected = mixed_run
    parsed = {r.node_id for r in parse_junit(xml)}
    assert len(collected) == 16
    assert parsed == set(collected) | {"tests/test_broken_import.py"}
    assert "tests/test_mix.py::TestGroup::TestNested::test_deep" in parsed
    assert "tests/test_mix.py::test_param[a::b]" in parsed
    assert "tests/test_inherit.py::TestChild::test_inherited" in parsed  # defined in base.py


def test_outcomes_messages_and_durations(mixed_run):
    _, xml, _ = mixed_run
    results = {r.node_id: r for r in parse_junit(xml)}
    mix = "tests/test_mix.py::"
    expected = {
        "test_pass": Outcome.PASSED, "test_fail": Outcome.FAILED, "test_error": Outcome.ERROR,
        "test_skip": Outcome.SKIPPED, "test_param[1]": Outcome.PASSED,
        "test_param[2]": Outcome.FAILED, "test_xfail": Outcome.SKIPPED,
        "test_xpass_strict": Outcome.FAILED, "test_xpass": Outcome.PASSED,
        "test_teardown_error": Outcome.ERROR, "TestGroup::test_in_class": Outcome.PASSED,
    }
    assert {k: results[mix + k].outcome for k in expected} == expected
    assert results["tests/test_broken_import.py"].outcome == Outcome.ERROR
    assert "codemill_no_such_module_xyz" in results["tests/test_broken_import.py"].message
    assert "one is not two" in results[mix + "test_fail"].message
    assert "fixture broke" in results[mix + "test_error"].message
    assert "not today" in results[mix + "test_skip"].message
    assert all(len(r.message.splitlines()) <= 5 for r in results.values())
    assert all(r.duration_s >= 0 for r in results.values())
    assert results[mix + "test_pass"].duration_s >= 0.015


def test_node_id_rules():
    assert node_id("a.b.test_x", "test_y[1]", "a/b/test_x.py") == "a/b/test_x.py::test_y[1]"
    assert node_id("a.test_x.TestA.TestB", "t", "a/test_x.py") == "a/test_x.py::TestA::TestB::t"
    assert node_id("", "a.test_x", "a/test_x.py") == "a/test_x.py"
    assert node_id("a.test_x.TestA", "t", "a/base.py") == "a/test_x.py::TestA::t"
    assert node_id("a.test_x", "t", None) == "a/test_x.py::t"


def _bad(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_hostile_xml_is_refused(tmp_path: Path):
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
              b'<testsuite><testcase classname="t" name="&lol2;"/></testsuite>')
    cases = {
        laughs: "DOCTYPE",
        b"100 passed": "not well-formed",
        b"<html><body>hi</body></html>": "no testsuite",
        b'<testsuite><testcase classname="t" name="x">': "not well-formed",
    }
    for data, message in cases.items():
        with pytest.raises(TestRunError, match=message):
            parse_junit(data)
    assert parse_junit(b'<testsuites><testsuite name="pytest"/></testsuites>') == ()


def test_result_files_are_read_without_following_links(tmp_path: Path):
    secret = _bad(tmp_path, "secret.xml", b"<testsuite/>")
    (tmp_path / "link.xml").symlink_to(secret)
    with pytest.raises(TestRunError, match="symlink"):
        read_result_file(tmp_path / "link.xml", 1 << 20)
    os.mkfifo(tmp_path / "fifo.xml")  # would block a naive reader forever
    with pytest.raises(TestRunError, match="not a regular file"):
        read_result_file(tmp_path / "fifo.xml", 1 << 20)
    big = _bad(tmp_path, "big.xml", b" " * 2048)
    with pytest.raises(TestRunError, match="larger than"):
        read_result_file(big, 1024)
    assert read_result_file(tmp_path / "missing.xml", 1024) is None
    assert read_result_file(secret, 1024) == b"<testsuite/>"
