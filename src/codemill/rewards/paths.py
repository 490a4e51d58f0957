"""Which repository paths are tests, test configuration or interpreter hooks.

The grader restores every such path the candidate touched from the pristine task state,
and the flags name what was touched. The rules are deliberately wide: restoring a file an
honest fix did not need to change costs nothing; missing one a hack changed costs the
reward's meaning.

- Tests: ``codemill.core.testpaths`` (``test_*.py`` / ``*_test.py`` / ``tests.py`` /
  ``conftest.py`` anywhere, anything under a ``tests/``, ``test/`` or ``testing/``
  directory), every path the task itself names (test patch, hidden paths, the files of
  its F2P/P2P node ids) and the test support validation saw its tests use.
- Test configuration: ``conftest.py`` and pytest's ini files at any depth (pytest looks for
  its ini file upward from the test paths, so a nested one changes the configuration), plus
  ``setup.cfg``, ``tox.ini`` and ``pyproject.toml``, which may hold pytest sections.
- Package metadata: ``*.dist-info``, ``*.egg-info`` folders (entry points, pytest plugins).
- Hooks: ``sitecustomize.py``, ``usercustomize.py`` and ``*.pth`` run at interpreter start;
  bytecode (``*.pyc``, ``__pycache__``) can shadow source without being readable in a diff.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from codemill.core import testpaths

PYTEST_INI_FILES = frozenset({"pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml"})
SHARED_CONFIG_FILES = frozenset({"setup.cfg", "tox.ini", "pyproject.toml"})
"""Config files that may or may not hold pytest settings: always restored, flagged only
when their pytest section changed."""
HOOK_NAMES = frozenset({"sitecustomize.py", "usercustomize.py"})


def _parts(path: str) -> list[str]:
    return [p for p in posixpath.normpath(path).split("/") if p not in ("", ".")]


def is_test_file(path: str) -> bool:
    """A test by ``codemill.core.testpaths`` (the one answer)."""
    return testpaths.is_test_path(path)


def is_test_config(path: str) -> bool:
    """conftest.py or a pytest ini file, at any depth (always test configuration)."""
    name = posixpath.basename(path)
    return name == "conftest.py" or name in PYTEST_INI_FILES


def is_shared_config(path: str) -> bool:
    return posixpath.basename(path) in SHARED_CONFIG_FILES


def is_hook(path: str) -> bool:
    name = posixpath.basename(path)
    return name in HOOK_NAMES or name.endswith(".pth")


METADATA_SUFFIXES = (".dist-info", ".egg-info", ".egg-link")


def is_metadata(path: str) -> bool:
    """Package metadata (``*.dist-info``, ``*.egg-info``): on ``sys.path`` it registers
    entry points, pytest plugins among them. A candidate never needs to add or edit it."""
    return any(p.endswith(METADATA_SUFFIXES) for p in _parts(path))


def is_bytecode(path: str) -> bool:
    return path.endswith((".pyc", ".pyo")) or "__pycache__" in _parts(path)


def node_file(node_id: str) -> str:
    """The file part of a pytest node id (``tests/test_a.py::T::t[x]`` -> ``tests/test_a.py``)."""
    return node_id.split("::", 1)[0]


def task_test_paths(
    test_patch_paths: Iterable[str], hidden_paths: Iterable[str], node_ids: Iterable[str]
) -> frozenset[str]:
    """Paths the task itself declares as its tests. The file of a node id that is a
    source module (a doctest of the code under repair) is not one: restoring it would undo
    the fix (validation no longer makes such ids)."""
    files = [f for f in (*hidden_paths, *(node_file(n) for n in node_ids))
             if not is_source_module(f)]
    return frozenset(posixpath.normpath(p) for p in (*test_patch_paths, *files) if p)


def is_source_module(path: str) -> bool:
    """A Python module that is not a test: what the agent fixes, never a task's test path
    (older tasks hid such files when a doctest in them failed)."""
    return path.endswith(".py") and not testpaths.is_test_path(path)


def is_under(path: str, roots: Iterable[str]) -> bool:
    """``path`` equals one of ``roots`` or lies inside one of them (hidden directories)."""
    norm = posixpath.normpath(path)
    for root in roots:
        r = posixpath.normpath(root).rstrip("/")
        if norm == r or norm.startswith(r + "/"):
            return True
    return False


def protected(path: str, task_paths: frozenset[str]) -> bool:
    """Restored from the pristine state at grading when the candidate touched it."""
    return (
        is_test_file(path)
        or is_test_config(path)
        or is_shared_config(path)
        or is_hook(path)
        or is_bytecode(path)
        or is_metadata(path)
        or is_under(path, task_paths)
    )
