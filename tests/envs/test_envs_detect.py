"""Static detection on small project trees written by the tests (nothing is executed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from codemill.repos.detect.project import detect_project


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_pep621_with_test_extra_and_pytest_config(tmp_path: Path) -> None:
    info = detect_project(write(tmp_path, {
        "pyproject.toml": """
            [build-system]
            requires = ["hatchling", "hatch-vcs"]
            build-backend = "hatchling.build"
            [project]
            name = "demo"
            dynamic = ["version"]
            requires-python = ">=3.9"
            classifiers = ["Programming Language :: Python :: 3.9",
                           "Programming Language :: Python :: 3.12"]
            [project.optional-dependencies]
            tests = ["pytest>=7", "hypothesis"]
            docs = ["sphinx"]
            all = ["rich"]
            [tool.pytest.ini_options]
            testpaths = ["tests"]
            addopts = "--cov=demo -n auto --timeout=30"
            asyncio_mode = "auto"
            """,
        "src/demo/__init__.py": "",
        "tests/test_demo.py": "import pytest\n",
    }))
    assert info.name == "demo" and info.installable
    assert info.requires_python == ">=3.9"
    assert info.python_classifiers == ("3.9", "3.12")
    assert info.test_extras == ("tests",) and info.optional_extras == ("all",)
    assert info.testpaths == ("tests",) and info.pytest_config == "pyproject.toml"
    needed = set(info.harness_requirements)
    assert {"pytest>=6", "coverage", "pytest-cov", "pytest-xdist", "pytest-timeout",
            "pytest-asyncio"} <= needed
    assert info.version_tools == ("hatch-vcs",)
    env = dict(info.env_vars)
    assert env["SETUPTOOLS_SCM_PRETEND_VERSION"] == "0.0.0"
    assert env["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DEMO"] == "0.0.0"
    assert info.test_dirs == ("tests",) and info.has_tests


def test_setup_cfg_and_tox(tmp_path: Path) -> None:
    info = detect_project(write(tmp_path, {
        "setup.cfg": """
            [metadata]
            name = cfgproj
            version = 1.2.3
            classifiers =
                Programming Language :: Python :: 3.8
            [options]
            python_requires = >=3.7
            setup_requires = setuptools_scm
            [options.extras_require]
            testing =
                pytest
                pytest-mock
            [tool:pytest]
            addopts = --strict-markers -p pytest_randomly
            """,
        "tox.ini": """
            [tox]
            envlist = py{37,38,39}, lint
            [testenv]
            deps =
                freezegun>=1.0
                py38: oldthing==1.0
                -r{toxinidir}/requirements-test.txt
                black
            extras = testing
            commands = pytest {posargs}
            """,
        "requirements-test.txt": "responses==0.23.1 --hash=sha256:abc\n-e .\n",
        "cfgproj/__init__.py": "",
        "cfgproj/tests/test_x.py": "",
    }))
    assert info.name == "cfgproj" and info.version == "1.2.3"
    assert info.requires_python == ">=3.7"
    assert info.test_extras == ("testing",)
    assert info.ci_pythons == ("3.7", "3.8", "3.9")
    assert "freezegun>=1.0" in info.test_requirements
    assert "responses==0.23.1" in info.test_requirements
    assert not any(r.startswith(("oldthing", "black")) for r in info.test_requirements)
    assert "pytest-randomly" in info.harness_requirements
    assert info.pytest_config == "setup.cfg" and info.tests_in_package
    assert info.version_tools == ("setuptools-scm",)
    assert dict(info.env_vars)["SETUPTOOLS_SCM_PRETEND_VERSION"] == "1.2.3"
    assert "pytest {posargs}" in info.test_commands


def test_setup_py_read_with_ast_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    info = detect_project(write(tmp_path, {
        "setup.py": f"""
            import os
            from setuptools import setup
            open({str(marker)!r}, "w").write("setup.py was executed")
            TESTS = ["pytest", "mock"]
            extras = {{"test": TESTS + ["coverage"], "speedups": ["ujson"]}}
            setup(
                name="legacy",
                version=os.environ.get("X", "0.1"),
                python_requires=">=3.6",
                extras_require=extras,
                tests_require=TESTS,
                use_scm_version=True,
                classifiers=["Programming Language :: Python :: 3.7"],
            )
            """,
        "test_legacy.py": "import unittest\nclass T(unittest.TestCase):\n    pass\n",
    }))
    assert not marker.exists()
    assert info.name == "legacy" and info.requires_python == ">=3.6"
    assert info.test_extras == ("test",)
    assert "mock" in info.test_requirements
    assert info.python_classifiers == ("3.7",)
    assert "setuptools-scm" in info.version_tools
    assert info.unittest_only and info.test_files == 1


def test_poetry_groups_and_caret_constraints(tmp_path: Path) -> None:
    info = detect_project(write(tmp_path, {
        "pyproject.toml": """
            [tool.poetry]
            name = "poet"
            version = "0.3.0"
            [tool.poetry.dependencies]
            python = "^3.8"
            requests = "^2.28"
            [tool.poetry.group.test.dependencies]
            pytest = "^7.2"
            pytest-mock = {version = "~3.10", optional = false}
            localthing = {path = "../x"}
            [tool.poetry.dev-dependencies]
            mypy = "*"
            [build-system]
            requires = ["poetry-core"]
            build-backend = "poetry.core.masonry.api"
            """,
        "tests/test_p.py": "",
    }))
    assert info.requires_python == ">=3.8,<4"
    assert "pytest<8,>=7.2" in info.test_requirements
    assert "pytest-mock<3.11,>=3.10" in info.test_requirements
    assert not any("localthing" in r or r.startswith("mypy") for r in info.test_requirements)
    assert info.build_backend == "poetry.core.masonry.api"


def test_ci_matrix_noxfile_and_nonstandard_test_names(tmp_path: Path) -> None:
    info = detect_project(write(tmp_path, {
        ".github/workflows/ci.yml": """
            jobs:
              test:
                strategy:
                  matrix:
                    python-version: ["3.10", "3.11", "pypy-3.9"]
                steps:
                  - run: python -m pytest -q
            """,
        "noxfile.py": """
            import nox
            DEPS = ["pytest", "hypothesis"]
            @nox.session(python=["3.10", "3.12"])
            def tests(session):
                session.install(*DEPS, "-r", "requirements/dev.txt")
                session.install("-e", ".[test]")
                session.run("pytest")
            @nox.session
            def lint(session):
                session.install("flake8")
            """,
        "requirements/dev.txt": "attrs>=20\n",
        "pkg.py": "",
        "tests.py": "import unittest\n",
    }))
    assert info.ci_pythons == ("3.10", "3.11", "3.12")
    assert "hypothesis" in info.test_requirements and "attrs>=20" in info.test_requirements
    assert not any(r.startswith("flake8") for r in info.test_requirements)
    assert "test" in info.test_extras
    assert not info.installable
    assert "tests.py" in info.python_files
    assert "python -m pytest -q" in info.test_commands


def test_odd_files_do_not_break_detection(tmp_path: Path) -> None:
    info = detect_project(write(tmp_path, {
        "pyproject.toml": "this is [ not toml",
        "setup.py": "print 'python 2 only'\n",
        "setup.cfg": "[metadata\nname = broken",
        "tox.ini": "no sections here",
    }))
    assert info.test_files == 0 and not info.has_tests
    assert any("setup.py" in n for n in info.notes)
