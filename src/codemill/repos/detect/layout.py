"""Where a project keeps its tests and which top-level modules it provides.

Walks the tree (skipping VCS, build and virtualenv directories) once and classifies test
files: a top-level ``tests``/``test`` directory, tests inside the package, test files that
pytest's default ``python_files`` would miss (``tests.py``, ``testfoo.py``), and projects
whose tests are plain ``unittest``.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", "env", ".env",
             "build", "dist", "node_modules", "__pycache__", ".eggs", "site-packages",
             ".mypy_cache", ".pytest_cache", ".ruff_cache", "htmlcov", ".idea", ".vscode"}
DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
TEST_DIR_NAMES = {"tests", "test", "testing", "t", "unittests", "unit_tests"}
MAX_FILES = 50_000


@dataclass
class Layout:
    """Test files and importable top-level names of a source tree."""

    test_files: list[str] = field(default_factory=list)
    test_dirs: list[str] = field(default_factory=list)
    """Top-level directories holding tests (``tests``, ``test``), in tree order."""
    tests_in_package: bool = False
    nonstandard_names: bool = False
    """Some test files have names pytest's default ``python_files`` does not match."""
    unittest_only: bool = False
    top_level_modules: set[str] = field(default_factory=set)
    """Every module or package name defined anywhere in the tree (``x.py`` or ``x/``)."""
    has_src_dir: bool = False


def _is_test_file(name: str, in_test_dir: bool) -> tuple[bool, bool]:
    """(is a test file, matches pytest's default patterns)."""
    if not name.endswith(".py") or name in ("conftest.py", "__init__.py", "setup.py"):
        return False, False
    default = any(fnmatch.fnmatch(name, p) for p in DEFAULT_PYTHON_FILES)
    if default:
        return True, True
    stem = name[:-3]
    loose = stem in ("test", "tests") or (in_test_dir and stem.startswith("test"))
    return loose, False


def scan_layout(root: Path) -> Layout:
    """Classify the tests of ``root`` without importing anything."""
    layout = Layout(has_src_dir=(root / "src").is_dir())
    seen = 0
    uses_pytest = False
    uses_unittest = False
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.startswith(".")
                             and not d.endswith(".egg-info"))
        rel_dir = Path(dirpath).relative_to(root)
        parts = rel_dir.parts
        layout.top_level_modules |= {d for d in dirnames if d.isidentifier()}
        in_test_dir = any(p.lower() in TEST_DIR_NAMES for p in parts)
        for name in sorted(filenames):
            seen += 1
            if name.endswith(".py") and name[:-3].isidentifier():
                layout.top_level_modules.add(name[:-3])
            is_test, default = _is_test_file(name, in_test_dir)
            if not is_test:
                continue
            rel = (rel_dir / name).as_posix()
            layout.test_files.append(rel)
            layout.nonstandard_names |= not default
            if parts and parts[0].lower() in TEST_DIR_NAMES:
                if parts[0] not in layout.test_dirs:
                    layout.test_dirs.append(parts[0])
            elif parts and (root / parts[0] / "__init__.py").exists() or \
                    len(parts) > 1 and parts[0] == "src":
                layout.tests_in_package = True
            if len(layout.test_files) <= 200 and not os.path.islink(Path(dirpath) / name):
                try:
                    head = (Path(dirpath) / name).read_text(errors="replace")[:20_000]
                except OSError:
                    head = ""
                uses_pytest |= "pytest" in head
                uses_unittest |= "unittest" in head
        if seen > MAX_FILES:
            break
    layout.unittest_only = uses_unittest and not uses_pytest
    return layout
