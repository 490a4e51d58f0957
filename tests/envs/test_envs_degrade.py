"""Installs that degrade one requirement at a time, pytest breaking on an old suite, and
reasons a person can act on: end-to-end builds of projects the tests write, in real
bubblewrap sandboxes with real uv (the package index as in the other build tests; the
unbuildable distribution is a real sdist served from a local ``--find-links`` dir)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from codemill.core.config import Settings
from codemill.core.records import EnvStatus, RepoSnapshot
from codemill.envs.builder.build import BuildConfig, build_env

pytestmark = [pytest.mark.slow, pytest.mark.network]

Maker = Callable[[str, dict[str, str]], RepoSnapshot]
BAD = "codemill-unbuildable-fixture"
BAD_SETUP = """
from setuptools import setup

def check_interpreter():
    raise RuntimeError("this release does not build on a current interpreter")

check_interpreter()
setup(name="codemill-unbuildable-fixture", version="1.0")
"""


def _sdist(folder: Path, name: str, version: str, setup_py: str) -> None:
    """Write ``name-version.tar.gz``, an sdist whose setup.py is ``setup_py``."""
    stem = f"{name.replace('-', '_')}-{version}"
    files = {"setup.py": textwrap.dedent(setup_py).lstrip(),
             "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"}
    with tarfile.open(folder / f"{stem}.tar.gz", "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{stem}/{rel}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def find_links(tmp_path: Path) -> Path:
    """A local package dir holding one sdist that fails to build; readable by the
    sandbox's uid (it is bound read-only into the build sandbox)."""
    folder = tmp_path / "find-links"
    folder.mkdir()
    _sdist(folder, BAD, "1.0", BAD_SETUP)
    for path in (tmp_path, folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


MARKED = {
    "pyproject.toml": f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "markedpkg"
        version = "0.1.0"
        requires-python = ">=3.8"
        [project.optional-dependencies]
        test = ["pytest", "{BAD}==1.0; python_version >= '3'"]
        [tool.hatch.build.targets.wheel]
        packages = ["src/markedpkg"]
        """,
    "requirements-test.txt": """
        freezegun; python_version != "3.3"
        mock; python_version < "3"
        """,
    "src/markedpkg/__init__.py": "def double(x):\n    return 2 * x\n",
    "tests/test_marked.py": """
        import freezegun
        from markedpkg import double

        def test_double():
            with freezegun.freeze_time("2020-01-01"):
                assert double(2) == 4
        """,
}


def test_an_unbuildable_pin_is_retried_then_dropped_alone(
        project_snapshot: Maker, find_links: Path, build_home: Path,
        settings: Settings) -> None:
    snap = project_snapshot("marked", MARKED)
    config = BuildConfig(baseline_runs=1, fix_missing_imports=False,
                         find_links=(str(find_links),))
    result = build_env(snap, build_home, settings, config=config)
    env = result.env
    assert env.status == EnvStatus.USABLE, result.log[-4000:]
    assert (env.n_tests, env.n_passing) == (1, 1)
    # the other test requirements stayed: freezegun (its marker holds) is installed
    assert any(line.startswith("freezegun==") for line in env.lock.splitlines()), env.lock
    assert BAD not in env.lock
    # the drop is recorded with the release that failed and the exception that failed it
    assert f"without {BAD}" in result.attempt and f"without {BAD}" in env.reason
    assert f"{BAD}==1.0 failed: RuntimeError: this release does not build" in env.reason
    names = [s.name for s in result.steps]
    assert not any(n.startswith("install (lean") for n in names), names  # never lean
    tried = [s for s in result.steps if s.name.startswith("install (")]
    assert len(tried) == 3 and f"{BAD}!=1.0" in tried[1].name  # retried, then dropped
    # markers were evaluated for the chosen interpreter: mock (python < 3) was skipped
    markers = next(s for s in result.steps if s.name == "markers")
    assert 'mock; python_version < "3"' in markers.output_tail
    assert not any(line.startswith("mock==") for line in env.lock.splitlines())


GOOD_SETUP = """
from setuptools import setup

setup(name="codemill-unbuildable-fixture", version="0.9", py_modules=["unbuildable_fixture"])
"""


def test_a_newest_release_that_fails_to_build_gives_way_to_an_older_one(
        project_snapshot: Maker, find_links: Path, build_home: Path,
        settings: Settings) -> None:
    _sdist(find_links, BAD, "0.9", GOOD_SETUP)  # 1.0 (the newest) fails, 0.9 builds
    (find_links / f"{BAD.replace('-', '_')}-0.9.tar.gz").chmod(0o644)
    files = {**MARKED, "requirements-test.txt": f"freezegun\n{BAD}\n"}
    files["pyproject.toml"] = files["pyproject.toml"].replace(
        f', "{BAD}==1.0; python_version >= \'3\'"', "")
    snap = project_snapshot("older", files)
    config = BuildConfig(baseline_runs=1, fix_missing_imports=False,
                         find_links=(str(find_links),))
    result = build_env(snap, build_home, settings, config=config)
    env = result.env
    assert env.status == EnvStatus.USABLE, result.log[-4000:]
    assert f"{BAD}==0.9" in env.lock.splitlines(), env.lock
    assert f"{BAD}!=1.0 (building {BAD}==1.0 failed: RuntimeError" in env.reason
    assert "without" not in result.attempt


CONFTEST_PY_PATH = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "oldhooks"
        version = "0.1.0"
        requires-python = ">=3.8"
        [project.optional-dependencies]
        test = ["pytest"]
        [tool.hatch.build.targets.wheel]
        packages = ["src/oldhooks"]
        """,
    # A hook with the py.path argument pytest 7 deprecated and later pytests refuse.
    "conftest.py": """
        def pytest_collect_file(path, parent):
            return None
        """,
    "src/oldhooks/__init__.py": "VALUE = 3\n",
    "tests/test_old.py": "from oldhooks import VALUE\n\ndef test_value():\n"
                         "    assert VALUE == 3\n",
}


def _git_snapshot(root: Path, files: dict[str, str], date: str, home: Path) -> RepoSnapshot:
    from codemill.repos.sources import snapshot_source

    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text).lstrip())
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(root)]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "."], check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "old"], check=True, env=env)
    return snapshot_source(f"{root}@HEAD", home)


def test_newest_pytest_breaking_an_old_conftest_gets_tooling_of_its_day(
        tmp_path: Path, build_home: Path, settings: Settings) -> None:
    snap = _git_snapshot(tmp_path / "oldhooks", CONFTEST_PY_PATH, "2022-06-01T12:00:00Z",
                         build_home)
    assert snap.created_at.startswith("2022-06-01")
    # No era attempt: today's index first, as for a snapshot younger than a year.
    config = BuildConfig(baseline_runs=1, fix_missing_imports=False, era_after_days=100_000)
    result = build_env(snap, build_home, settings, config=config)
    env = result.env
    assert env.status == EnvStatus.USABLE, result.log[-4000:]
    pins = [ln for ln in env.lock.splitlines() if ln.startswith("pytest==")]
    assert pins and pins[0].startswith("pytest==7."), env.lock
    assert "test tooling as of 2022-06-02" in env.reason
    assert "PluginValidationError" in env.reason  # why the newest pytest was not kept


def test_without_an_older_era_the_reason_names_what_pytest_refused(
        project_snapshot: Maker, build_home: Path, settings: Settings) -> None:
    files = {**CONFTEST_PY_PATH,
             "pyproject.toml": CONFTEST_PY_PATH["pyproject.toml"].replace("oldhooks", "newhooks"),
             "src/newhooks/__init__.py": "VALUE = 3\n",
             "tests/test_old.py": "from newhooks import VALUE\n\ndef test_value():\n"
                                  "    assert VALUE == 3\n"}
    del files["src/oldhooks/__init__.py"]
    snap = project_snapshot("newhooks", files)  # a local dir: dated today
    result = build_env(snap, build_home, settings,
                       config=BuildConfig(baseline_runs=1, fix_missing_imports=False))
    env = result.env
    assert env.status == EnvStatus.FAILED
    assert "PluginValidationError" in env.reason and "pytest_collect_file" in env.reason
    assert "too recent" in env.reason
    assert "^^^" not in env.reason and "~~~" not in env.reason


def test_a_failing_build_names_the_exception_and_the_attempts(
        project_snapshot: Maker, build_home: Path, settings: Settings) -> None:
    snap = project_snapshot("raises", {
        "setup.py": """
            from setuptools import setup

            def read_version():
                return {}["version"]

            setup(name="raisespkg", version=read_version(), py_modules=["raisespkg"],
                  extras_require={"test": ["pytest"]})
            """,
        "raisespkg.py": "X = 1\n",
        "test_raisespkg.py": "import raisespkg\n\ndef test_x():\n    assert raisespkg.X\n",
    })
    result = build_env(snap, build_home, settings,
                       config=BuildConfig(baseline_runs=1, fix_missing_imports=False))
    reason = result.env.reason
    assert result.env.status == EnvStatus.FAILED
    assert reason.startswith("building the project failed: KeyError: 'version'"), reason
    assert "[attempts" in reason and "full, latest" in reason
    assert "^^^" not in reason and "~~~" not in reason


WARNINGS_AS_ERRORS = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "strictpkg"
        version = "0.1.0"
        requires-python = ">=3.8"
        [project.optional-dependencies]
        test = ["pytest", "pytest-timeout"]
        [tool.hatch.build.targets.wheel]
        packages = ["src/strictpkg"]
        [tool.pytest.ini_options]
        filterwarnings = ["error"]
        """,
    "src/strictpkg/__init__.py": "def double(x):\n    return 2 * x\n",
    "tests/test_strict.py": """
        from strictpkg import double

        def test_double():
            assert double(2) == 4
        """,
}


def test_warnings_as_errors_with_an_installed_plugin_still_run(
        project_snapshot: Maker, build_home: Path, settings: Settings) -> None:
    """The safe start imports the environment's plugins before pytest, so pytest cannot
    rewrite their asserts and warns; a suite that turns warnings into errors (jinja, click,
    dateutil do) must not crash on that warning of the harness's own making."""
    snap = project_snapshot("strict", WARNINGS_AS_ERRORS)
    result = build_env(snap, build_home, settings,
                       config=BuildConfig(baseline_runs=1, fix_missing_imports=False))
    env = result.env
    assert env.status == EnvStatus.USABLE, result.log[-4000:]
    assert (env.n_tests, env.n_passing) == (1, 1)
    assert any(line.startswith("pytest-timeout==") for line in env.lock.splitlines())
