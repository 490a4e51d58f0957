"""New workspace modules that would shadow the standard library, the runner or an installed
package: found before grading and removed.

The safe start (``codemill.testing.safe_start``) keeps the workspace off the path until
the runner and its plugins are imported and puts it after the standard library; what it
cannot stop is a workspace module named like an installed package the runner imports
later, or a directory the runner puts first itself (pytest prepends a test file's root
directory). So the candidate may not add a top-level module (a ``.py`` file, a package
directory, an extension module) named like one of ``shadow_names``; "top-level" means in a
directory without ``__init__.py`` (any such directory may be on ``sys.path``). Names that
existed in the pristine tree are the project's own and stay.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

RUNNER_NAMES = frozenset({
    "pytest", "_pytest", "pluggy", "py", "iniconfig", "packaging", "exceptiongroup",
    "tomli", "colorama", "attr", "attrs", "unittest", "importlib_metadata", "zipp",
    "typing_extensions", "coverage", "six", "setuptools", "pkg_resources", "_distutils_hack",
})
MODULE_SUFFIXES = (".py", ".pyc", ".pyw", ".so", ".pyd")


def _listed(folder: Path) -> set[str]:
    names: set[str] = set()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return names
    for entry in entries:
        name = entry.name
        if name.endswith((".dist-info", ".egg-info", ".pth")) or name == "__pycache__":
            continue
        if entry.is_dir():
            names.add(name)
        elif name.endswith(MODULE_SUFFIXES):
            names.add(name.split(".", 1)[0])
    return names


def shadow_names(venv: Path | None = None, python_home: Path | None = None) -> frozenset[str]:
    """Names a workspace module may not take: the standard library (this interpreter's
    list, plus the environment interpreter's ``lib/python3.*`` folder), the runner and its
    dependencies, and every top-level name installed in the environment's venv."""
    names = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
    names |= RUNNER_NAMES
    for root in (venv, python_home):
        if root is None:
            continue
        for lib in Path(root).glob("lib/python3*"):
            if root == python_home:
                names |= _listed(lib) - {"site-packages", "dist-packages"}
            names |= _listed(lib / "site-packages")
    return frozenset(n for n in names if n.isidentifier())


def _module_name(part: str, is_last: bool) -> str | None:
    if not is_last:
        return part
    return part.split(".", 1)[0] if part.endswith(MODULE_SUFFIXES) else None


def shadowing(created: Iterable[str], names: frozenset[str],
              has_init: Callable[[str], bool], existed: Callable[[str], bool]) -> list[str]:
    """The paths to remove: for each created path, the first component that is a
    top-level module (its directory has no ``__init__.py``) named like one of ``names``
    and absent from the pristine tree."""
    out: list[str] = []
    for path in created:
        parts = [p for p in path.split("/") if p]
        for i, part in enumerate(parts):
            folder = "/".join(parts[:i])
            if i and has_init(folder):
                continue
            name = _module_name(part, i == len(parts) - 1)
            where = "/".join(parts[:i + 1])
            if name in names and not existed(where):
                out.append(where)
                break
    return list(dict.fromkeys(out))
