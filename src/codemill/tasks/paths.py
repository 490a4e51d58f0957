"""Which files of a repository are tests, sources or dependency declarations.

Mining splits a commit into its test part (hidden from the agent, restored at grading) and
its source part (the gold patch); synthesis mutates only sources. Test paths follow
``codemill.core.testpaths`` so mining, synthesis and grading agree on them.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from codemill.core import testpaths
from codemill.repos.detect.hints import REQUIREMENT_FILE_PATTERNS

DEPENDENCY_FILES = frozenset({
    "pyproject.toml", "setup.py", "setup.cfg", "Pipfile", "Pipfile.lock", "poetry.lock",
    "uv.lock", "pdm.lock", "environment.yml",
})


def is_test_path(path: str) -> bool:
    """True for test modules, conftest files and anything under a tests directory
    (``codemill.core.testpaths``, the one answer)."""
    return testpaths.is_test_path(path)


def is_test_support(path: str) -> bool:
    """A file tests use that is not code under test (``codemill.core.testpaths``)."""
    return testpaths.is_test_support(path)


def is_source_path(path: str) -> bool:
    """A Python module that is not a test (what synthesis may mutate)."""
    return path.endswith(".py") and not is_test_path(path)


def is_dependency_path(path: str) -> bool:
    """A file that declares dependencies: the usual manifests, and the requirement files an
    environment build may install from (``REQUIREMENT_FILE_PATTERNS``). Others, such as
    ``docs/requirements.txt``, never reach the environment, so a change to them is no
    dependency change."""
    parts = PurePosixPath(path).parts
    if parts and parts[-1] in DEPENDENCY_FILES:
        return True
    return any(len(g := PurePosixPath(pattern).parts) == len(parts)
               and all(fnmatchcase(p, q) for p, q in zip(parts, g, strict=True))
               for pattern in REQUIREMENT_FILE_PATTERNS)


def module_name(path: str) -> str:
    """``src/pkg/mod.py`` -> ``pkg.mod`` (best effort, for prose: drops a ``src/`` root)."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[0] in ("src", "lib"):
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)
