"""Can the environment run a commit of the repository's past?

Mining runs a commit's parent (and the commit) in the environment built for the snapshot,
so the question for each commit is whether that environment meets what those trees declare
(``unmet_requirements``), not whether their manifests equal the snapshot's. Held to the
installed distributions and interpreter (``Installed``, from ``EnvSpec.lock``):

* ``requires-python`` must contain the environment's Python;
* every runtime requirement (PEP 621 / Poetry ``dependencies``, ``install_requires``) must
  be installed at a version its specifier allows (markers evaluated for that Python);
* optional requirements (extras, dev groups, ``tests_require``, requirement files a build
  reads) do not block: they are mostly tools (linters, docs, pinned CI versions), and
  where a test does depend on one, validation runs both states in this environment and
  rejects the candidate if the gold state fails. A project's requirement on itself is
  always met.

An unparseable specifier is read the way installers read legacy ones (``>=3.6.*`` as
``>=3.6``) and otherwise ignored. So a move from ``setup.py`` to ``pyproject.toml``, a
dropped old Python, a raised lower bound the environment already meets, or a re-pinned
lint tool no longer block the past; a runtime dependency the environment lacks does.

``deps_changed`` is the older byte-free comparison of two partial trees (manifests reduced
to what they declare), for an environment whose lock is unknown. Anything that cannot be
parsed is compared as raw text, which errs towards skipping.
"""

from __future__ import annotations

import ast
import configparser
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from codemill.core import pyast
from codemill.core.records import EnvSpec
from codemill.envs.lock import Lock, normalize
from codemill.repos.detect.meta import read_package_meta, runtime_requirements
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
    tree = pyast.parse(text)
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


@dataclass(frozen=True)
class Installed:
    """What an environment offers a tree: its interpreter and its distributions."""

    python: str
    """Interpreter version, e.g. ``3.13.0``."""
    versions: Mapping[str, str] = field(default_factory=dict)
    """Normalized distribution name -> installed version."""
    project: str = ""
    """Normalized name of the editable project itself."""

    @classmethod
    def of(cls, env: EnvSpec) -> Installed | None:
        """From a built environment; None when it recorded no lock (nothing to hold to)."""
        lock = Lock(tuple(x for x in env.lock.splitlines() if x.strip()))
        if not lock.lines:
            return None
        editable = next((x for x in lock.lines if x.startswith("-e ")), "")
        project = editable.split("#", 1)[1].strip().partition("==")[0] if editable else ""
        return cls(env.python, lock.versions(), normalize(project) if project else "")


def _contains(spec: str, version: str) -> bool:
    """``version`` in ``spec``; True when the spec cannot be read even leniently."""
    lenient = re.sub(r"(>=|<=|>|<|~=)\s*([\w.]+?)\.\*", r"\1\2", spec)
    try:
        return SpecifierSet(lenient).contains(Version(version), prereleases=True)
    except InvalidSpecifier:
        return True
    except InvalidVersion:
        return False


def _declared(files: Mapping[str, bytes | None]) -> tuple[str, list[str]]:
    """(requires-python, runtime requirements) of the dependency manifests in ``files``,
    read by the same readers an environment build uses."""
    with tempfile.TemporaryDirectory(prefix="codemill-deps-") as tmp:
        root = Path(tmp)
        for rel, data in files.items():
            parts = PurePosixPath(rel).parts
            if data is None or not is_dependency_path(rel) or ".." in parts or not parts:
                continue
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return read_package_meta(root).requires_python, runtime_requirements(root)


def unmet_requirements(files: Mapping[str, bytes | None], env: Installed) -> list[str]:
    """The declarations of the dependency manifests in ``files`` (path -> content, None =
    absent) that ``env`` does not meet, as short strings (``python>=3.14``, ``attrs>=99
    (have 23.1.0)``, ``six (missing)``); empty when the environment can run the tree."""
    requires_python, runtime = _declared(files)
    out = []
    if requires_python and not _contains(requires_python, env.python):
        out.append(f"python{requires_python}")
    marker_env = {**default_environment(), "python_version": ".".join(
        env.python.split(".")[:2]), "python_full_version": env.python, "extra": ""}
    for text in runtime:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        name = normalize(req.name)
        if name == env.project or (req.marker and not req.marker.evaluate(marker_env)):
            continue
        have, shown = env.versions.get(name), f"{req.name}{req.specifier}"
        if have is None:
            out.append(f"{shown} (missing)")
        elif req.specifier and not _contains(str(req.specifier), have):
            out.append(f"{shown} (have {have})")
    return sorted(set(out))
