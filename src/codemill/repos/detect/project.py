"""Static detection: what a Python source tree needs to be installed and tested.

``detect_project(root)`` reads packaging metadata (PEP 621, Poetry, setup.cfg, setup.py via
``ast``, an sdist's PKG-INFO), pytest configuration, tox/nox/requirements files, CI
configuration and the layout of the tests, and returns one frozen :class:`ProjectInfo`.

It never executes project code and never fails on odd input: what it cannot read it leaves
empty and mentions in ``notes``. Everything it returns is a hint for the builder, which
verifies by building and running the suite in a sandbox.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict

from codemill.repos.detect.files import requirement_name, valid_requirement
from codemill.repos.detect.hints import read_hints
from codemill.repos.detect.layout import scan_layout
from codemill.repos.detect.meta import read_package_meta
from codemill.repos.detect.pytest_config import read_pytest_config

HARNESS_REQUIREMENTS = ("pytest>=6", "coverage")
"""Always installed: the runner (the harness's options need pytest 6 or later; unbounded,
a resolver may pick an ancient pytest to suit an old pin) and coverage for the task
layer's test-strength checks."""

_NON_TEST_TOOLS = {
    "black", "flake8", "mypy", "pylint", "isort", "pre-commit", "tox", "nox", "twine",
    "ruff", "codecov", "coveralls", "check-manifest", "pyroma", "readme-renderer", "doc8",
    "pydocstyle", "autopep8", "yapf", "bandit", "safety", "ipython", "ipdb", "jupyter",
    "build", "bump2version", "bumpversion", "towncrier", "wheel", "pip", "setuptools",
    "pip-tools", "zest-releaser", "gitchangelog", "mkdocs", "pyright", "pytype", "blacken-docs",
    "pylama", "prospector", "pyupgrade", "commitizen", "rstcheck", "restructuredtext-lint",
    "virtualenv", "flit", "hatch", "poetry", "pdm", "sphinx", "myst-parser", "furo",
}
"""Development tools that tests do not import; installing them only adds failure modes."""

_PRETEND_VARS = {
    "setuptools-scm": ("SETUPTOOLS_SCM_PRETEND_VERSION",),
    "hatch-vcs": ("SETUPTOOLS_SCM_PRETEND_VERSION",),
    "pdm-scm": ("PDM_BUILD_SCM_VERSION",),
    "pbr": ("PBR_VERSION",),
    "poetry-dynamic-versioning": ("POETRY_DYNAMIC_VERSIONING_BYPASS",),
}
"""Variables that make version-from-git tools work on a tree without ``.git``."""


class ProjectInfo(BaseModel):
    """What detection found in a source tree; frozen and hashable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    version: str = ""
    requires_python: str = ""
    """PEP 440 specifier set, e.g. ``>=3.8``; empty when not declared."""
    python_classifiers: tuple[str, ...] = ()
    """``3.X`` versions from trove classifiers, sorted."""
    ci_pythons: tuple[str, ...] = ()
    """``3.X`` versions from CI workflows, tox envlist and nox sessions, sorted."""
    installable: bool = False
    """The tree declares a build (pyproject, setup.py or setup.cfg); else it is put on the
    path as it is."""
    build_backend: str = ""
    build_requirements: tuple[str, ...] = ()
    """What building the project needs: ``[build-system] requires`` (setuptools and wheel
    for a legacy setup.py) plus ``setup_requires``."""
    version_tools: tuple[str, ...] = ()
    """Version-from-git tools in use: setuptools-scm, hatch-vcs, versioneer, pbr, ..."""
    extras: tuple[str, ...] = ()
    """Every optional-dependency group the project declares."""
    test_extras: tuple[str, ...] = ()
    """Extras to install for testing (test-like names, else dev-like; tox/nox hints)."""
    optional_extras: tuple[str, ...] = ()
    """Extras worth trying on top (``all``, ``full``), dropped first if resolution fails."""
    dependency_groups: tuple[str, ...] = ()
    """PEP 735 groups to install for testing."""
    test_requirements: tuple[str, ...] = ()
    """Requirements for tests declared outside extras (requirements files, tox deps, Poetry
    dev groups, tests_require, noxfile installs), development-only tools removed."""
    requirement_files: tuple[str, ...] = ()
    harness_requirements: tuple[str, ...] = HARNESS_REQUIREMENTS
    """pytest, coverage and the plugins the pytest configuration needs."""
    pytest_config: str = ""
    """The file pytest takes its configuration from ('' if none)."""
    testpaths: tuple[str, ...] = ()
    python_files: str = ""
    """A ``python_files`` override when tests have names pytest's defaults miss."""
    test_files: int = 0
    test_dirs: tuple[str, ...] = ()
    tests_in_package: bool = False
    unittest_only: bool = False
    top_level_modules: tuple[str, ...] = ()
    """Module names defined in the tree (for telling local imports from third-party)."""
    env_vars: tuple[tuple[str, str], ...] = ()
    """Variables builds and test runs need, e.g. pretend versions for setuptools-scm."""
    test_commands: tuple[str, ...] = ()
    """How upstream runs its tests (tox, nox, CI), as hints for people."""
    notes: tuple[str, ...] = ()

    @property
    def has_tests(self) -> bool:
        return self.test_files > 0

    @property
    def declared_pythons(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.python_classifiers) | set(self.ci_pythons),
                            key=lambda v: tuple(int(x) for x in v.split("."))))


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower()))


def _pick_extras(declared: list[str], hinted: list[str]) -> tuple[list[str], list[str]]:
    test = [e for e in declared if _words(e) & {"test", "tests", "testing", "tester"}]
    test += [e for e in hinted if e not in test and _words(e) & {"test", "tests", "testing"}]
    if not test:
        test = [e for e in declared + hinted
                if _words(e) & {"dev", "develop", "development", "devel", "ci"}]
    test += [e for e in hinted if e not in test and e in declared
             and not _words(e) & {"doc", "docs", "lint", "typing", "mypy"}]
    optional = [e for e in declared if e.lower() in ("all", "full", "complete")
                and e not in test]
    return list(dict.fromkeys(test)), optional


def _sorted_versions(versions: set[str]) -> tuple[str, ...]:
    return tuple(sorted(versions, key=lambda v: tuple(int(x) for x in v.split("."))))


def pretend_version(candidates: list[str]) -> str:
    """The first candidate that is a valid PEP 440 version, else ``0.0.0``."""
    for text in candidates:
        try:
            return str(Version(text.strip()))
        except (InvalidVersion, AttributeError):
            continue
    return "0.0.0"


def detect_project(root: Path, version_hint: str = "") -> ProjectInfo:
    """Detect how to install and test the tree at ``root`` (read-only, never executes it).

    ``version_hint`` (e.g. the release of a ``pypi:`` source) is the version to pretend
    for version-from-git tools when the tree itself does not state one.
    """
    root = Path(root)
    meta = read_package_meta(root)
    installable = meta.has_pyproject_build or meta.has_setup_py or meta.has_setup_cfg_metadata
    hints = read_hints(root, installable)
    pytest_cfg = read_pytest_config(root)
    layout = scan_layout(root)
    test_extras, optional = _pick_extras(list(meta.extras), hints.extras)
    groups = [g for g in meta.dependency_groups if _words(g) & {"test", "tests", "testing"}] \
        or [g for g in meta.dependency_groups if _words(g) & {"dev"}]
    own = requirement_name(meta.name) if meta.name else ""
    reqs = []
    for req in [*meta.dev_requirements, *hints.requirements]:
        name = requirement_name(req)
        if name and name != own and name not in _NON_TEST_TOOLS \
                and not name.startswith(("sphinx", "flake8-", "mkdocs", "types-")):
            reqs.append(req)
    version = pretend_version([meta.version, version_hint])
    env: dict[str, str] = {}
    if not meta.has_pkg_info:  # an sdist's PKG-INFO already tells these tools the version
        for tool in sorted(meta.version_tools):
            for var in _PRETEND_VARS.get(tool, ()):
                env[var] = version
                if var == "SETUPTOOLS_SCM_PRETEND_VERSION" and own:
                    env[f"{var}_FOR_{own.upper().replace('-', '_')}"] = version
    python_files = ""
    if layout.nonstandard_names and "python_files" not in pytest_cfg.options:
        python_files = "test_*.py *_test.py test*.py tests.py"
    harness = list(HARNESS_REQUIREMENTS) + sorted(pytest_cfg.plugin_requirements)
    build_reqs = list(meta.build_requires) if meta.build_requires else \
        (["setuptools>=40.8.0", "wheel"] if installable else [])
    build_reqs += [r for r in meta.setup_requires if r not in build_reqs]
    return ProjectInfo(
        name=meta.name,
        version=version,
        requires_python=meta.requires_python,
        python_classifiers=_sorted_versions(meta.python_classifiers),
        ci_pythons=_sorted_versions(hints.pythons),
        installable=installable,
        build_backend=meta.build_backend,
        build_requirements=tuple(r for r in build_reqs if valid_requirement(r)),
        version_tools=tuple(sorted(meta.version_tools)),
        extras=tuple(meta.extras),
        test_extras=tuple(test_extras),
        optional_extras=tuple(optional),
        dependency_groups=tuple(groups),
        test_requirements=tuple(dict.fromkeys(reqs)),
        requirement_files=tuple(hints.requirement_files),
        harness_requirements=tuple(dict.fromkeys(harness)),
        pytest_config=pytest_cfg.file,
        testpaths=tuple(pytest_cfg.testpaths),
        python_files=python_files,
        test_files=len(layout.test_files),
        test_dirs=tuple(layout.test_dirs),
        tests_in_package=layout.tests_in_package,
        unittest_only=layout.unittest_only,
        top_level_modules=tuple(sorted(layout.top_level_modules)),
        env_vars=tuple(sorted(env.items())),
        test_commands=tuple(hints.commands),
        notes=tuple(meta.notes),
    )
