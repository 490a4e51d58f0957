"""Packaging metadata of a source tree: PEP 621, Poetry, setup.cfg, setup.py (ast) and an
sdist's PKG-INFO / egg-info, merged with the most explicit source first.

Reads files only. The result feeds :mod:`codemill.repos.detect.project`, which adds test hints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from codemill.repos.detect.files import (
    as_dict,
    as_str_list,
    ini_get,
    ini_lines,
    read_ini,
    read_text,
    read_toml,
    valid_requirement,
)
from codemill.repos.detect.setuppy import parse_setup_py

_PY_CLASSIFIER = re.compile(r"Programming Language :: Python :: (3\.\d{1,2})\s*$")


@dataclass
class PackageMeta:
    """What the packaging files declare (mutable while merging; frozen into ProjectInfo)."""

    name: str = ""
    version: str = ""
    requires_python: str = ""
    python_classifiers: set[str] = field(default_factory=set)
    extras: dict[str, list[str]] = field(default_factory=dict)
    dev_requirements: list[str] = field(default_factory=list)
    """Test/dev requirements declared outside extras: Poetry dev groups, tests_require."""
    dependency_groups: list[str] = field(default_factory=list)
    build_backend: str = ""
    build_requires: list[str] = field(default_factory=list)
    setup_requires: list[str] = field(default_factory=list)
    """``setup_requires`` of setup.py / setup.cfg: fetched by setuptools at build time,
    which fails where pip is absent; the builder installs them up front."""
    has_pyproject_build: bool = False
    has_setup_py: bool = False
    has_setup_cfg_metadata: bool = False
    has_pkg_info: bool = False
    version_tools: set[str] = field(default_factory=set)
    requirement_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fill(self, attr: str, value: Any) -> None:
        """Set ``attr`` only when it is still empty (earlier sources win)."""
        if value and not getattr(self, attr):
            setattr(self, attr, value)

    def add_extras(self, extras: dict[str, Any]) -> None:
        for name, reqs in extras.items():
            if isinstance(name, str) and name not in self.extras:
                self.extras[name] = as_str_list(reqs) if not isinstance(reqs, str) \
                    else ini_lines(reqs)

    def add_classifiers(self, classifiers: Any) -> None:
        for c in as_str_list(classifiers):
            m = _PY_CLASSIFIER.match(c.strip())
            if m:
                self.python_classifiers.add(m.group(1))


def _poetry_specifier(spec: str) -> str:
    """A Poetry version constraint (``^1.2``, ``~1.2``, ``1.2.*``, ``>=1,<2``) as a PEP 440
    specifier string ("" for any version). ``^`` and ``~`` become explicit bounds; of
    alternatives (``^2.7 || ^3.5``) the last, newest one is kept."""
    parts = []
    for piece in spec.split("||")[-1].split(","):
        piece = piece.strip()
        if piece in ("*", ""):
            continue
        if piece[0] in "^~" and not piece.startswith("~="):
            base = piece.lstrip("^~").strip()
            nums = [int(x) if x.isdigit() else 0 for x in base.split(".")[:3]]
            if piece[0] == "^":
                idx = next((i for i, n in enumerate(nums) if n), len(nums) - 1)
            else:
                idx = min(1, len(nums) - 1)
            upper = nums[: idx + 1]
            upper[-1] += 1
            parts += [f">={base}", "<" + ".".join(map(str, upper))]
        elif piece[0].isdigit():
            parts.append(f"=={piece}")
        else:
            parts.append(piece)
    return ",".join(parts)


def _poetry_requirement(name: str, spec: Any) -> str | None:
    """A Poetry dependency entry as PEP 508, or None for path/git/url dependencies."""
    extras = ""
    if isinstance(spec, dict):
        if any(k in spec for k in ("path", "git", "url", "file")):
            return None
        extras = ",".join(as_str_list(spec.get("extras")))
        spec = spec.get("version", "*")
    text = _poetry_specifier(spec) if isinstance(spec, str) else ""
    return valid_requirement(name + (f"[{extras}]" if extras else "") + text)


def _read_pyproject(root: Path, meta: PackageMeta) -> None:
    data = read_toml(root, "pyproject.toml")
    if not data:
        return
    build = as_dict(data.get("build-system"))
    meta.build_backend = str(build.get("build-backend") or "")
    meta.build_requires = as_str_list(build.get("requires"))
    project = as_dict(data.get("project"))
    meta.has_pyproject_build = bool(build) or bool(project)
    meta.fill("name", project.get("name"))
    meta.fill("version", project.get("version"))
    meta.fill("requires_python", project.get("requires-python"))
    meta.add_classifiers(project.get("classifiers"))
    meta.add_extras(as_dict(project.get("optional-dependencies")))
    meta.dependency_groups = [g for g in as_dict(data.get("dependency-groups"))
                              if isinstance(g, str)]
    tool = as_dict(data.get("tool"))
    poetry = as_dict(tool.get("poetry"))
    if poetry:
        meta.fill("name", poetry.get("name"))
        meta.fill("version", poetry.get("version"))
        deps = as_dict(poetry.get("dependencies"))
        py = deps.get("python")
        if isinstance(py, str):
            meta.fill("requires_python", _poetry_specifier(py))
        meta.add_classifiers(poetry.get("classifiers"))
        groups = [as_dict(poetry.get("dev-dependencies"))]
        for gname, group in as_dict(poetry.get("group")).items():
            if any(w in gname.lower() for w in ("test", "dev")):
                groups.append(as_dict(as_dict(group).get("dependencies")))
        for group in groups:
            for dep, spec in group.items():
                req = _poetry_requirement(dep, spec)
                if req:
                    meta.dev_requirements.append(req)
        for extra, names in as_dict(poetry.get("extras")).items():
            meta.extras.setdefault(extra, [
                r for n in as_str_list(names) if (r := _poetry_requirement(n, deps.get(n, "*")))])
    pdm_dev = as_dict(as_dict(tool.get("pdm")).get("dev-dependencies"))
    for gname, reqs in pdm_dev.items():
        if "test" in gname.lower() or "dev" in gname.lower():
            meta.dev_requirements += [r for r in as_str_list(reqs) if valid_requirement(r)]
    tools_seen = " ".join(meta.build_requires).lower().replace("_", "-")
    if "setuptools-scm" in tools_seen or "setuptools_scm" in tool or "flit-scm" in tools_seen:
        meta.version_tools.add("setuptools-scm")
    if "hatch-vcs" in tools_seen or \
            as_dict(as_dict(tool.get("hatch")).get("version")).get("source") == "vcs":
        meta.version_tools.add("hatch-vcs")
    if "pdm" in meta.build_backend and \
            as_dict(as_dict(tool.get("pdm")).get("version")).get("source") == "scm":
        meta.version_tools.add("pdm-scm")
    if "poetry-dynamic-versioning" in tools_seen:
        meta.version_tools.add("poetry-dynamic-versioning")
    if "versioneer" in tools_seen or "versioneer" in tool:
        meta.version_tools.add("versioneer")
    if "pbr" in tools_seen:
        meta.version_tools.add("pbr")


def _read_setup_cfg(root: Path, meta: PackageMeta) -> None:
    cfg = read_ini(root, "setup.cfg")
    if cfg is None:
        return
    meta.has_setup_cfg_metadata = cfg.has_section("metadata") or cfg.has_section("options")
    meta.fill("name", ini_get(cfg, "metadata", "name"))
    version = ini_get(cfg, "metadata", "version")
    meta.fill("version", version if not version.startswith(("attr:", "file:")) else "")
    meta.fill("requires_python", ini_get(cfg, "options", "python_requires"))
    meta.add_classifiers(ini_lines(ini_get(cfg, "metadata", "classifiers")))
    if cfg.has_section("options.extras_require"):
        meta.add_extras({k: ini_lines(v) for k, v in cfg.items("options.extras_require")})
    meta.dev_requirements += [r for r in ini_lines(ini_get(cfg, "options", "tests_require"))
                              if valid_requirement(r)]
    if cfg.has_section("versioneer"):
        meta.version_tools.add("versioneer")
    if cfg.has_section("pbr") or "pbr" in ini_get(cfg, "options", "setup_requires"):
        meta.version_tools.add("pbr")
    meta.setup_requires += [r for r in ini_lines(ini_get(cfg, "options", "setup_requires"))
                            if valid_requirement(r)]
    if "setuptools_scm" in ini_get(cfg, "options", "setup_requires").replace("-", "_"):
        meta.version_tools.add("setuptools-scm")


def _read_setup_py(root: Path, meta: PackageMeta) -> None:
    text = read_text(root, "setup.py")
    if text is None:
        return
    meta.has_setup_py = True
    found = parse_setup_py(text)
    if not found and text.strip():
        meta.notes.append("setup.py: not parseable as Python 3")
    for key, attr in (("name", "name"), ("python_requires", "requires_python")):
        if isinstance(found.get(key), str):
            meta.fill(attr, found[key])
    if isinstance(found.get("version"), str):
        meta.fill("version", found["version"])
    meta.add_classifiers(found.get("classifiers"))
    if isinstance(found.get("extras_require"), dict):
        meta.add_extras(found["extras_require"])
    meta.dev_requirements += [r for r in as_str_list(found.get("tests_require"))
                              if valid_requirement(r)]
    meta.setup_requires += [r for r in as_str_list(found.get("setup_requires"))
                            if valid_requirement(r)]
    setup_requires = " ".join(as_str_list(found.get("setup_requires"))).replace("-", "_")
    if found.get("use_scm_version") or "setuptools_scm" in setup_requires or \
            "setuptools_scm" in found.get("uses", []):
        meta.version_tools.add("setuptools-scm")
    if found.get("pbr") or "pbr" in setup_requires:
        meta.version_tools.add("pbr")
    if "versioneer" in found.get("uses", []):
        meta.version_tools.add("versioneer")
    meta.requirement_files += found.get("requirement_files", [])


def _read_pkg_info(root: Path, meta: PackageMeta) -> None:
    """An sdist's PKG-INFO (and egg-info requires.txt): the metadata as the release
    built it, which fills what a dynamic setup.py hides from the ast reader."""
    text = read_text(root, "PKG-INFO")
    if text is None:
        return
    meta.has_pkg_info = True
    msg = HeaderParser().parsestr(text)
    meta.fill("name", msg.get("Name", ""))
    meta.fill("version", msg.get("Version", ""))
    meta.fill("requires_python", msg.get("Requires-Python", ""))
    meta.add_classifiers(msg.get_all("Classifier") or [])
    extras: dict[str, list[str]] = {e.strip(): [] for e in msg.get_all("Provides-Extra") or []}
    for dist in msg.get_all("Requires-Dist") or []:
        m = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", dist)
        if m and m.group(1) in extras:
            req = valid_requirement(dist.split(";", 1)[0])
            if req:
                extras[m.group(1)].append(req)
    for egg in sorted(root.glob("*.egg-info/requires.txt")) + \
            sorted(root.glob("src/*.egg-info/requires.txt")):
        section = ""
        for line in (read_text(root, egg.relative_to(root).as_posix()) or "").splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].split(":", 1)[0]
                if section:
                    extras.setdefault(section, [])
            elif line and section and (req := valid_requirement(line)):
                extras[section].append(req)
    meta.add_extras(extras)


def read_package_meta(root: Path) -> PackageMeta:
    """Merge the packaging metadata of ``root``; pyproject first, then setup.cfg,
    setup.py and last the sdist's own PKG-INFO."""
    meta = PackageMeta()
    _read_pyproject(root, meta)
    _read_setup_cfg(root, meta)
    _read_setup_py(root, meta)
    _read_pkg_info(root, meta)
    meta.requires_python = meta.requires_python.strip() if meta.requires_python else ""
    return meta


def runtime_requirements(root: Path) -> list[str]:
    """The requirements ``root``'s packaging files declare for running the project (no
    extras, no dev groups): PEP 621 ``dependencies``, Poetry ``dependencies`` (Python left
    out), setup.cfg and setup.py ``install_requires``. Every source is read, not only the
    first, so a tree that declares them twice is held to both. Reads files only."""
    out: list[str] = []
    data = read_toml(root, "pyproject.toml")
    out += as_str_list(as_dict(data.get("project")).get("dependencies"))
    poetry = as_dict(as_dict(data.get("tool")).get("poetry"))
    out += [r for name, spec in as_dict(poetry.get("dependencies")).items()
            if name.lower() != "python" and (r := _poetry_requirement(name, spec))]
    cfg = read_ini(root, "setup.cfg")
    out += ini_lines(ini_get(cfg, "options", "install_requires")) if cfg is not None else []
    text = read_text(root, "setup.py")
    if text is not None:
        out += as_str_list(parse_setup_py(text).get("install_requires"))
    return [r for text in out if (r := valid_requirement(text))]
