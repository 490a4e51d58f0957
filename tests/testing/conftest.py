"""Fixtures for the runner tests: small test projects, and a sandbox env with pytest in it.

The projects are our own code, so ``test_testing_junit.py`` may run them unsandboxed with
the dev interpreter; the runner tests run them through real bwrap sandboxes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codemill.core.config import SandboxConfig
from codemill.sandbox.api import SandboxSpec, open_sandbox

UV = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "uv"

MIXED = {
    "tests/__init__.py": "",
    "tests/test_mix.py": '''
import time

import pytest

def test_pass():
    time.sleep(0.02)  # a duration JUnit's millisecond rounding cannot make zero

def test_fail():
    assert 1 == 2, "one is not two"

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_error(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.mark.parametrize("x", [1, 2, "a::b", "c/d.e"])
def test_param(x):
    assert x != 2

class TestGroup:
    def test_in_class(self):
        pass

    class TestNested:
        def test_deep(self):
            pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

@pytest.mark.xfail(strict=True, reason="strict")
def test_xpass_strict():
    pass

@pytest.mark.xfail(reason="lenient")
def test_xpass():
    pass

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_teardown_error(bad_teardown):
    pass
''',
    "tests/base.py": '''
class BaseChecks:
    def test_inherited(self):
        assert True
''',
    "tests/test_inherit.py": '''
from tests.base import BaseChecks

class TestChild(BaseChecks):
    pass
''',
    "tests/sub/__init__.py": "",
    "tests/sub/test_deep_module.py": "def test_sub():\n    pass\n",
    "tests/test_broken_import.py": "import codemill_no_such_module_xyz\n",
}

UNITTEST = {
    "tests/__init__.py": "",
    "tests/test_units.py": '''
import unittest

class TestMath(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(1 + 1, 2)

    def test_bad(self):
        self.assertEqual(1 + 1, 3)

    def test_boom(self):
        raise KeyError("boom")

    @unittest.skip("later")
    def test_skipped(self):
        pass

    @unittest.expectedFailure
    def test_expected(self):
        self.assertTrue(False)

    def test_subtests(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 2)
''',
    "tests/test_unimportable.py": "import codemill_no_such_module_xyz\n",
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    return root


def make_pyenv(env: Path, pytest_spec: str) -> Path:
    """A relocatable venv on Debian's python3 with ``pytest_spec`` installed."""
    subprocess.run([str(UV), "venv", "-q", "--relocatable", "--python", "/usr/bin/python3",
                    str(env)], check=True)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(env / "bin/python"),
                    pytest_spec], check=True)
    return env


@pytest.fixture(scope="session")
def sandbox_pyenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A relocatable venv on Debian's python3 with pytest installed (from the index/cache)."""
    return make_pyenv(tmp_path_factory.mktemp("sandbox-env") / "env", "pytest")


@pytest.fixture(scope="session")
def old_pytest_pyenv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same with pytest 6, as many real projects' environments pin (6.2 to 7.4 in the
    learn benchmark's 26 projects): its command line splits ids at every ``::``."""
    return make_pyenv(tmp_path_factory.mktemp("sandbox-env-6") / "env", "pytest==6.2.5")


Opener = Callable[[Path], object]


def _opener(env: Path, home: Path) -> Iterator[Opener]:
    opened: list[object] = []

    def opener(layer: Path) -> object:
        spec = SandboxSpec(layers=[layer], env_dir=env, python_home=Path("/usr"),
                           limits=SandboxConfig(memory_mb=1024, pids=128, timeout_s=120))
        sb = open_sandbox(spec, home, backend="bwrap")
        opened.append(sb)
        return sb

    yield opener
    for sb in opened:
        sb.close()  # type: ignore[attr-defined]


@pytest.fixture
def open_project(bwrap_ready: None, sandbox_pyenv: Path, tmp_path: Path) -> Iterator[Opener]:
    """``open_project(layer_dir)``: a bwrap sandbox over the layer with the pytest env."""
    yield from _opener(sandbox_pyenv, tmp_path / "home")


@pytest.fixture
def open_old_project(bwrap_ready: None, old_pytest_pyenv: Path,
                     tmp_path: Path) -> Iterator[Opener]:
    """``open_old_project(layer_dir)``: the same over the pytest 6 env."""
    yield from _opener(old_pytest_pyenv, tmp_path / "home")
