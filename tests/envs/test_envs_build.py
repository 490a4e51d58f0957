"""End-to-end builds of tiny projects made by the tests: real bubblewrap sandboxes, real uv,
the real package index (warm cache after the first run), real baselines."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from codemill.core.config import Settings
from codemill.core.records import EnvStatus, RepoSnapshot
from codemill.envs import installs
from codemill.envs.builder.build import BuildConfig, build_env
from codemill.sandbox.api import open_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.network]


@pytest.fixture
def make(project_snapshot: Maker) -> Maker:
    return project_snapshot


Maker = Callable[[str, dict[str, str]], RepoSnapshot]
QUICK = BuildConfig(baseline_runs=1, fix_missing_imports=False)

PEP621 = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "calcpkg"
        version = "0.1.0"
        requires-python = ">=3.8"
        [project.optional-dependencies]
        test = ["pytest"]
        [tool.hatch.build.targets.wheel]
        packages = ["src/calcpkg"]
        """,
    "src/calcpkg/__init__.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": """
        from calcpkg import add

        def test_add():
            assert add(2, 3) == 5

        def test_wrong():
            assert add(1, 1) == 3
        """,
}


def test_pep621_project_is_usable_editable_and_shares_its_venv(
        make: Maker, build_home: Path, settings: Settings) -> None:
    snap = make("calc", PEP621)
    result = build_env(snap, build_home, settings)
    env = result.env
    assert env.status == EnvStatus.USABLE, result.log[-3000:]
    assert (env.n_tests, env.n_passing, env.n_flaky) == (2, 1, 0)
    # one full run, then the quick suite again whole (under min_repeat_s) or a sample
    assert len(result.reports) in (1, 2) and "of 2 tests" in result.flakiness
    assert "-e /repo  # calcpkg==0.1.0" in env.lock
    assert any(line.startswith("pytest==") for line in env.lock.splitlines())
    assert any(line.startswith("coverage==") for line in env.lock.splitlines())
    venv = Path(env.venv_path)
    assert venv.parent == build_home / "envs" and result.disk_bytes > 0
    assert not (venv / "pyvenv.cfg").stat().st_mode & 0o222  # sealed: read-only

    # The project is installed editable from /repo: a workspace edit takes effect.
    with open_sandbox(installs.sandbox_spec(env, build_home), build_home) as sb:
        sb.write_file("src/calcpkg/__init__.py", b"def add(a, b):\n    return a * b\n")
        res = sb.run(["python", "-c", "import calcpkg; print(calcpkg.add(2, 3))"])
        assert res.stdout.strip() == "6", res.stderr
        assert sb.run(["touch", "/env/x"]).exit_code != 0  # the venv is read-only

    # Another snapshot with the same install shares the venv on disk.
    files = {**PEP621, "tests/test_more.py": "def test_more():\n    assert True\n"}
    snap2 = make("calc2", files)
    second = build_env(snap2, build_home, settings, config=QUICK)
    assert second.env.status == EnvStatus.USABLE and second.env.n_tests == 3
    assert second.shared_venv and second.env.venv_path == env.venv_path
    assert second.env.lock_hash == env.lock_hash and second.env.env_id != env.env_id


def test_setup_py_only_project(make: Maker, build_home: Path, settings: Settings) -> None:
    snap = make("old", {
        "setup.py": """
            from setuptools import setup
            setup(name="oldpkg", version="1.0", py_modules=["oldpkg"],
                  extras_require={"test": ["pytest"]})
            """,
        "oldpkg.py": "VALUE = 42\n",
        "test_oldpkg.py": "import oldpkg\n\ndef test_value():\n    assert oldpkg.VALUE == 42\n",
    })
    result = build_env(snap, build_home, settings, config=QUICK)
    assert result.env.status == EnvStatus.USABLE, result.log[-3000:]
    assert result.project is not None and result.project.test_extras == ("test",)
    assert "oldpkg==1.0" in result.env.lock


def test_import_error_at_collection_fails_with_reason(
        make: Maker, build_home: Path, settings: Settings) -> None:
    snap = make("broken", {
        "pyproject.toml": PEP621["pyproject.toml"].replace("calcpkg", "brokenpkg"),
        "src/brokenpkg/__init__.py": "raise RuntimeError('brokenpkg cannot be imported')\n",
        "tests/test_b.py": "import brokenpkg\n\ndef test_x():\n    assert brokenpkg\n",
    })
    result = build_env(snap, build_home, settings, config=QUICK)
    assert result.env.status == EnvStatus.FAILED
    assert "import error at collection" in result.env.reason
    assert "brokenpkg cannot be imported" in result.env.reason


def test_project_without_tests_is_no_tests(
        make: Maker, build_home: Path, settings: Settings) -> None:
    snap = make("quiet", {
        "pyproject.toml": PEP621["pyproject.toml"].replace("calcpkg", "quietpkg"),
        "src/quietpkg/__init__.py": "X = 1\n",
    })
    result = build_env(snap, build_home, settings, config=QUICK)
    assert result.env.status == EnvStatus.NO_TESTS
    assert result.env.reason.startswith("no tests collected")


def test_unresolvable_requirement_is_a_failed_result(
        make: Maker, build_home: Path, settings: Settings) -> None:
    pyproject = PEP621["pyproject.toml"].replace(
        'requires-python = ">=3.8"', 'requires-python = ">=3.8"\ndependencies = ["pytest<0.1"]')
    snap = make("unres", {
        "pyproject.toml": pyproject, **{k: v for k, v in PEP621.items() if k != "pyproject.toml"},
    })
    result = build_env(snap, build_home, settings, config=QUICK)
    assert result.env.status == EnvStatus.FAILED
    assert result.env.reason.startswith("dependency resolution failed"), result.env.reason
    assert not list((build_home / "envs" / ".staging").iterdir())  # nothing left behind


def test_git_snapshot_with_setuptools_scm_builds_without_git_metadata(
        tmp_path: Path, build_home: Path, settings: Settings) -> None:
    from codemill.repos.sources import snapshot_source

    repo = tmp_path / "scm"
    files = {
        "pyproject.toml": """
            [build-system]
            requires = ["setuptools>=64", "setuptools_scm>=8"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "scmpkg"
            dynamic = ["version"]
            [project.optional-dependencies]
            test = ["pytest"]
            [tool.setuptools_scm]
            version_file = "src/scmpkg/_version.py"
            """,
        "src/scmpkg/__init__.py": "from ._version import version\n",
        "tests/test_v.py": "import scmpkg\n\ndef test_v():\n    assert scmpkg.version\n",
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text).lstrip())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    snap = snapshot_source(f"{repo}@HEAD", build_home)
    assert not (Path(snap.path) / ".git").exists()
    result = build_env(snap, build_home, settings, config=QUICK)
    assert result.env.status == EnvStatus.USABLE, result.log[-3000:]
    assert ("SETUPTOOLS_SCM_PRETEND_VERSION", "0.0.0") in result.env.env_vars
    # the version file the build generated lives in the environment's layer
    assert (Path(result.layer) / "src" / "scmpkg" / "_version.py").is_file()
