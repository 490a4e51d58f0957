"""Under ``CI=true`` a test that would skip fails the run (tests/conftest.py), so a green
CI means the sandbox and red-team suites really ran; on a laptop it still skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent

SUITE = '''
import pytest


def test_needs_bwrap():
    pytest.skip("sandbox tools not found: bwrap")


def test_needs_an_extra():
    pytest.importorskip("codemill_no_such_module")


def test_plain():
    pass
'''


def _pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "default", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_ci_turns_skips_into_failures(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "true")
    assert out.returncode == 1, out.stdout
    assert "2 failed, 1 passed" in out.stdout, out.stdout
    assert "CI=true" in out.stdout and "bwrap" in out.stdout


def test_without_ci_they_skip(tmp_path: Path) -> None:
    out = _pytest(tmp_path, None)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 2 skipped" in out.stdout, out.stdout
