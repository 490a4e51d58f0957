"""Which repository paths are tests: the one answer every layer uses.

Mining splits a commit into its test part by it, synthesis leaves these paths alone, the
grader restores them, and validation records test support by it. The rules are wide on
purpose: calling a helper a test costs a restored file; missing one lets a candidate edit
what grades it.

- tests: anything under a ``tests``/``test``/``testing`` directory, or a file named
  ``test_*.py``, ``*_test.py``, ``test.py``, ``tests.py`` or ``conftest.py`` (a
  single-module project's suite is often one ``test.py`` beside it);
- test support (``is_test_support``): what tests read that is not itself a test: any
  file that is not Python source (data, golden files, fixtures), and Python modules whose
  path names them as testing helpers (a ``testdata``/``fixtures``/``test_utils`` directory,
  ``pkg/testing.py``, ``testutils.py``...).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

TEST_DIRS = frozenset({"tests", "test", "testing"})
_SUPPORT_PART = re.compile(
    r"^(?:tests?|testing|testdata|test_?data|test_?utils?|testutils?|test_?helpers?|"
    r"fixtures?|conftest|golden|_testing|testlib|test_?support)$", re.IGNORECASE)


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(path).parts if p not in ("", "."))


def is_test_path(path: str) -> bool:
    """Whether ``path`` (repo-relative, ``/``-separated) is a test file (module doc)."""
    parts = _parts(path)
    if not parts:
        return False
    if any(p in TEST_DIRS for p in parts[:-1]):
        return True
    name = parts[-1]
    if not name.endswith(".py"):
        return False
    return (name.startswith("test_") or name.endswith("_test.py")
            or name in ("conftest.py", "test.py", "tests.py"))


def is_test_support(path: str) -> bool:
    """Whether a file the tests used is test support (module doc), not code under test."""
    parts = _parts(path)
    if not parts or "__pycache__" in parts:
        return False
    if not parts[-1].endswith((".py", ".pyc", ".so", ".pyd", ".pth")):
        return True
    stems = [p.rsplit(".", 1)[0] if i == len(parts) - 1 else p for i, p in enumerate(parts)]
    return is_test_path(path) or any(_SUPPORT_PART.match(s) for s in stems)
