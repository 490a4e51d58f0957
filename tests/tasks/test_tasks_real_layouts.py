"""Layouts met on real PyPI projects (python-slugify 5.0.2, semver 2.13.0), rebuilt small:
test files that pytest's default ``python_files`` misses (the environment's test command
carries ``-o python_files=...``), and ``addopts = --cov=...`` with pytest-cov installed
(a second Coverage would take the tracer from the coverage map's)."""

import gc
import subprocess
import warnings

import pytest

from codemill.core.config import Settings
from codemill.core.records import EnvStatus
from codemill.tasks.testbed import TestBed

SHAPES = '''def area(w, h):
    return w * h


def perimeter(w, h):
    return 2 * (w + h)
'''

TESTS = '''from shapes import area, perimeter


def test_area():
    assert area(2, 3) == 6


def test_perimeter():
    assert perimeter(2, 3) == 10
'''

PYPROJECT = '''[project]
name = "shapes"
version = "0.1"
[project.optional-dependencies]
test = ["pytest", "pytest-cov"]
[tool.pytest.ini_options]
pythonpath = ["."]
addopts = "--cov=shapes --cov-report="
'''


@pytest.fixture(scope="module")
def shapes_bed(tmp_path_factory):
    from codemill.envs.builder.build import build_env
    from codemill.repos.sources import snapshot_source

    root = tmp_path_factory.mktemp("layouts")
    repo = root / "shapes"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "shapes.py").write_text(SHAPES)
    (repo / "tests" / "testshapes.py").write_text(TESTS)  # not test_*.py nor *_test.py
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm",
                    "shapes"], cwd=repo, check=True)
    settings = Settings(home=root / "home")
    snap = snapshot_source(str(repo), settings.home)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # see conftest.calc_env
        env = build_env(snap, settings.home, settings).env
        gc.collect()
    assert env.status == EnvStatus.USABLE, env.reason
    assert any(a.startswith("python_files=") for a in env.test_command), env.test_command
    return TestBed.from_env(env, settings.home, settings.sandbox, min_timeout_s=4.0)


def test_bed_collects_what_the_environment_collects(shapes_bed):
    base = shapes_bed.baseline(1)
    assert base.passing == {"tests/testshapes.py::test_area",
                            "tests/testshapes.py::test_perimeter"}


def test_coverage_map_survives_project_pytest_cov(shapes_bed):
    cmap = shapes_bed.coverage_map(use_cache=False)
    assert cmap.tests_for("shapes.py", [2]) == {"tests/testshapes.py::test_area"}
    assert cmap.tests_for("shapes.py", [6]) == {"tests/testshapes.py::test_perimeter"}
