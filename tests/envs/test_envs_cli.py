"""``codemill env ...`` as a user runs it: build (ledger rows), ls, test, exec, shell."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.network]


def cli(home: Path, cwd: Path, *args: str, timeout: float = 300,
        columns: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "CODEMILL_HOME": str(home)}
    if columns:
        env["COLUMNS"] = str(columns)  # a table as wide as a person's terminal
    return subprocess.run([sys.executable, "-c", "from codemill.cli.main import main; main()",
                           *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, build_home: Path) -> dict:
    proj = tmp_path_factory.mktemp("cliproj")
    (proj / "src" / "clipkg").mkdir(parents=True)
    (proj / "tests").mkdir()
    (proj / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "clipkg"
        version = "0.2"
        [project.optional-dependencies]
        test = ["pytest"]
        [tool.hatch.build.targets.wheel]
        packages = ["src/clipkg"]
        """))
    (proj / "src" / "clipkg" / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    (proj / "tests" / "test_clipkg.py").write_text(
        "from clipkg import double\n\ndef test_double():\n    assert double(2) == 4\n\n"
        "def test_broken():\n    assert double(2) == 5\n")
    res = cli(build_home, proj, "env", "build", str(proj), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    return {"summary": json.loads(res.stdout), "cwd": proj}


def test_build_records_and_lists(built: dict, build_home: Path) -> None:
    summary = built["summary"]
    assert summary["status"] == "usable" and summary["n_tests"] == 2
    assert summary["counts"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0}
    res = cli(build_home, built["cwd"], "env", "ls", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["env_id"]: r for r in json.loads(res.stdout)}
    assert rows[summary["env_id"]]["status"] == "usable"
    assert rows[summary["env_id"]]["project"] == "cliproj0"
    assert summary["pass_fraction"] == 0.5 and rows[summary["env_id"]]["pass_fraction"] == 0.5


def test_status_is_shown_with_its_pass_fraction(built: dict, build_home: Path) -> None:
    env_id, cwd = built["summary"]["env_id"], built["cwd"]
    res = cli(build_home, cwd, "env", "build", str(cwd))  # recorded before: no rebuild
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{env_id[:12]} usable, 1/2 pass (50%)" in res.stdout
    res = cli(build_home, cwd, "env", "ls", columns=200)
    line = next(ln for ln in res.stdout.splitlines() if env_id[:12] in ln)
    assert "usable" in line and "1/2 pass (50%)" in line


def test_test_exec_and_bad_input(built: dict, build_home: Path) -> None:
    env_id, cwd = built["summary"]["env_id"], built["cwd"]
    res = cli(build_home, cwd, "env", "test", env_id[:8], "-k", "broken", "--json")
    report = json.loads(res.stdout)
    assert report["counts"]["failed"] == 1 and report["counts"]["passed"] == 0
    assert report["failures"][0]["node_id"] == "tests/test_clipkg.py::test_broken"
    res = cli(build_home, cwd, "env", "exec", env_id[:8], "--",
              "python", "-c", "import clipkg, sys; print(clipkg.double(21)); sys.exit(7)")
    assert (res.returncode, res.stdout.strip()) == (7, "42")
    res = cli(build_home, cwd, "env", "exec", "ffff0000", "--", "true")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == ["error: no environment with id ffff0000"]


def test_shell_is_interactive(built: dict, build_home: Path) -> None:
    env = {**os.environ, "CODEMILL_HOME": str(build_home), "TERM": "dumb"}
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from codemill.cli.main import main; main()", "env", "shell",
         built["summary"]["env_id"][:10]], stdin=slave, stdout=slave, stderr=slave,
        env=env, cwd=built["cwd"], start_new_session=True)
    os.close(slave)
    out, sent, deadline = b"", False, time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if not sent and b"(codemill" in out:  # the prompt: the shell is up
                os.write(master, b"echo marker-$((6*7)) $(id -u); exit 3\n")
                sent = True
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        assert proc.wait(timeout=10) == 3, out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"marker-42 65534" in out
