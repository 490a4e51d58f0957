"""Did a change touch what the environment installs?

A mined commit whose parent needs other dependencies than the environment has cannot be
run honestly in it, so mining skips it with the reason ``deps changed``, unless the lock
is unaffected: a manifest edit that leaves the declared requirements equal (a version
bump, a tool's settings, a reformatted ``requirements.txt``) does not count.

``declared`` reduces a manifest to the requirements it declares; two trees are compared
on that, not on bytes. Anything that cannot be parsed is compared as raw text, which errs
towards skipping.
"""

from __future__ import annotations

import ast
import configparser
import tomllib
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from codemill.tasks.paths import is_dependency_path

_SETUP_KEYS = ("install_requires", "extras_require", "setup_requires", "python_requires",
               "tests_require")


def _pyproject(text: str) -> Any:
    data = tomllib.loads(text)
    project = data.get("project", {})
    poetry = data.get("tool", {}).get("poetry", {})
    return {
        "dependencies": project.get("dependencies"),
        "optional": project.get("optional-dependencies"),
        "requires-python": project.get("requires-python"),
        "build": data.get("build-system", {}).get("requires"),
        "groups": data.get("dependency-groups"),
        "poetry": [poetry.get("dependencies"), poetry.get("dev-dependencies"),
                   poetry.get("group")],
    }


def _setup_cfg(text: str) -> Any:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(text)
    opts = dict(cp["options"]) if cp.has_section("options") else {}
    extras = dict(cp["options.extras_require"]) if cp.has_section(
        "options.extras_require") else {}
    return {k: opts.get(k) for k in _SETUP_KEYS} | {"extras": extras}


def _setup_py(text: str) -> Any:
    tree = ast.parse(text)
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in _SETUP_KEYS:
            found[node.arg] = ast.dump(node.value)
        elif isinstance(node, ast.Assign):  # REQUIRES = [...] passed by name
            for t in node.targets:
                if isinstance(t, ast.Name) and "require" in t.id.lower():
                    found[t.id] = ast.dump(node.value)
    return found


def _requirements(text: str) -> Any:
    lines = (x.split("#", 1)[0].strip() for x in text.splitlines())
    return sorted(x.replace(" ", "") for x in lines if x)


def declared(path: str, data: bytes | None) -> Any:
    """What the manifest at ``path`` declares (None when absent)."""
    if data is None:
        return None
    text = data.decode("utf-8", errors="replace")
    name = PurePosixPath(path).name
    try:
        if name == "pyproject.toml":
            return _pyproject(text)
        if name == "setup.cfg":
            return _setup_cfg(text)
        if name == "setup.py":
            return _setup_py(text)
        if name.startswith("requirements"):
            return _requirements(text)
    except (ValueError, SyntaxError, configparser.Error):
        pass
    return text


def deps_changed(
    before: Mapping[str, bytes | None], after: Mapping[str, bytes | None]
) -> list[str]:
    """Dependency manifests whose declared requirements differ between two partial trees
    (each maps path -> content, None = absent; a path missing from a map is absent)."""
    paths = sorted(p for p in set(before) | set(after) if is_dependency_path(p))
    return [p for p in paths if declared(p, before.get(p)) != declared(p, after.get(p))]
