"""A tiny buggy repository and real sandboxes over it."""

import os

import pytest

from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.sandbox.process import IsolationWarning

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
TEST_CALC = (
    "import unittest\n\nfrom calc import add, mul\n\n\n"
    "class TestCalc(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
    "    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n"
)
# The visible tests of the tiny repo: Debian's python3 has unittest but not pytest.
TEST_COMMAND = "python3 -m unittest -q"


@pytest.fixture
def repo_layer(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST_CALC)
    (repo / "pkg").mkdir()
    (repo / "pkg" / "__init__.py").write_text("VERSION = '1.0'\n")
    # Stored snapshots are world-readable (docs/contracts.md); the sandbox uid reads them.
    for path in (tmp_path, repo, repo / "pkg"):
        os.chmod(path, 0o755)
    return repo


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def sandbox(repo_layer, home):
    """A bwrap sandbox over the tiny repo (the default, isolated backend)."""
    sb = open_sandbox(SandboxSpec(layers=[repo_layer]), home, backend="bwrap")
    yield sb
    sb.close()


@pytest.fixture
def process_sandbox(repo_layer, home):
    """The process backend (no isolation): it warns, and the test expects it."""
    with pytest.warns(IsolationWarning, match="NO ISOLATION"):
        sb = open_sandbox(SandboxSpec(layers=[repo_layer]), home, backend="process")
    yield sb
    sb.close()
