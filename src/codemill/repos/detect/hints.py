"""Hints about how a project is tested upstream: tox, nox, requirements files and CI.

Upstream test commands vary (tox.ini, noxfile, CI workflows, Makefiles); none is
authoritative, so each contributes *hints*: test requirements, test extras, Python versions
the project is tested on and the commands it runs. Nothing here executes project code (the
noxfile is read with ``ast``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from codemill.core import pyast
from codemill.repos.detect.files import (
    as_dict,
    ini_get,
    ini_lines,
    read_ini,
    read_requirements_file,
    read_text,
    read_toml,
    valid_requirement,
)
from codemill.repos.detect.setuppy import fold_constant, module_bindings

_PY_DOTTED = re.compile(r"(?<![\w.-])(?<!pypy)(?<!pypy-)3\.(\d{1,2})(?![\d])")
_PY_TOX = re.compile(r"\bpy3(\d{1,2})\b")
_CI_FILES = (".travis.yml", ".gitlab-ci.yml", "azure-pipelines.yml", "appveyor.yml",
             ".circleci/config.yml", ".cirrus.yml")


@dataclass
class Hints:
    """Hints gathered from tox, nox, requirements files and CI configuration."""

    requirements: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)
    pythons: set[str] = field(default_factory=set)
    commands: list[str] = field(default_factory=list)


def _pythons_in(text: str) -> set[str]:
    """Python versions named in CI text: ``3.9``, ``"3.10"``, ``py38`` (not PyPy)."""
    found = set()
    for line in text.splitlines():
        low = line.lower()
        if "pypy" in low:
            low = re.sub(r"pypy-?3\.\d+", "", low)
        if "python" in low or "py3" in low or re.match(r"\s*-\s*['\"]?3\.\d", low):
            found |= {f"3.{m}" for m in _PY_DOTTED.findall(low)}
            found |= {f"3.{m}" for m in _PY_TOX.findall(low)}
    return {v for v in found if 6 <= int(v.split(".")[1]) <= 20}


def _expand_envlist(text: str) -> str:
    """``py3{8,9}-django`` -> ``py38 py39`` (one level of braces is enough for versions)."""
    return re.sub(r"py(\d*)\{([\d, ]+)\}",
                  lambda m: " ".join(f"py{m.group(1)}{p.strip()}" for p in m.group(2).split(",")),
                  text)


def _commands_in(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip().lstrip("-").strip()
        if re.search(r"\b(pytest|py\.test|unittest|nosetests|nose2)\b", line) and len(line) < 300:
            out.append(line.removeprefix("run:").strip())
    return out


def _read_tox(root: Path, hints: Hints) -> None:
    ini = read_ini(root, "tox.ini")
    if ini is None:
        legacy = as_dict(as_dict(read_toml(root, "pyproject.toml").get("tool")).get("tox"))
        text = legacy.get("legacy_tox_ini")
        if isinstance(text, str):
            import configparser

            ini = configparser.RawConfigParser(strict=False, interpolation=None)
            try:
                ini.read_string(text)
            except configparser.Error:
                return
    if ini is None:
        return
    hints.pythons |= _pythons_in(_expand_envlist(
        "python " + ini_get(ini, "tox", "envlist").replace("\n", " ")))
    for line in ini_lines(ini_get(ini, "testenv", "deps")):
        if re.match(r"^[\w{},.!-]+:\s", line) or "{[" in line:
            continue  # factor-conditional deps belong to one env of the matrix only
        if line.startswith("-r"):
            hints.requirement_files.append(
                line[2:].strip().replace("{toxinidir}/", "").lstrip("/"))
        elif (req := valid_requirement(line)) is not None:
            hints.requirements.append(req)
    hints.extras += [e.strip() for e in re.split(r"[,\s]+", ini_get(ini, "testenv", "extras"))
                     if e.strip() and ":" not in e]
    hints.commands += _commands_in(ini_get(ini, "testenv", "commands"))


def _read_nox(root: Path, hints: Hints) -> None:
    text = read_text(root, "noxfile.py")
    if not text:
        return
    try:
        tree = pyast.parse(text)
    except (SyntaxError, ValueError):
        return
    names = module_bindings(tree)
    sessions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.decorator_list]
    tests = [s for s in sessions if "test" in s.name.lower()]
    for func in sessions:
        for deco in func.decorator_list:
            if isinstance(deco, ast.Call):
                for kw in deco.keywords:
                    if kw.arg in ("python", "py"):
                        try:
                            value = fold_constant(kw.value, names)
                        except ValueError:
                            continue
                        for v in value if isinstance(value, list) else [value]:
                            hints.pythons |= _pythons_in(f"python {v}")
    for func in tests:
        for call in ast.walk(func):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            args: list[str] = []
            for arg in call.args:
                try:
                    value = fold_constant(arg.value if isinstance(arg, ast.Starred) else arg,
                                          names)
                except ValueError:
                    continue
                args += [v for v in (value if isinstance(value, list) else [value])
                         if isinstance(v, str)]
            if call.func.attr == "install":
                _nox_install(args, hints)
            elif call.func.attr == "run" and args:
                hints.commands += _commands_in(" ".join(args))


def _nox_install(args: list[str], hints: Hints) -> None:
    take_file = False
    for arg in args:
        if take_file:
            hints.requirement_files.append(arg)
            take_file = False
        elif arg in ("-r", "--requirement"):
            take_file = True
        elif m := re.fullmatch(r"\.\[([\w,\s-]+)\]", arg):
            hints.extras += [e.strip() for e in m.group(1).split(",")]
        elif (req := valid_requirement(arg)) is not None:
            hints.requirements.append(req)


REQUIREMENT_FILE_PATTERNS = (
    "*requirements*.txt", "requirements/*.txt", "reqs/*.txt", "requirements/*.in",
    "ci/*requirements*.txt", "tests/requirements*.txt", "test/requirements*.txt",
    "*requirements*/*.txt")
"""Root-relative globs (``*`` stays inside one path segment) of the only requirement files
a build may install from; history mining compares exactly these (``codemill.tasks.paths``)."""


def _requirement_files(root: Path, installable: bool) -> list[str]:
    """Test requirement files by name: test-named ones first, else dev-named ones; a plain
    ``requirements.txt`` only for a project that cannot be installed itself."""
    candidates = []
    for pattern in REQUIREMENT_FILE_PATTERNS:
        candidates += [p.relative_to(root).as_posix() for p in sorted(root.glob(pattern))]
    candidates = list(dict.fromkeys(candidates))

    def words(rel: str) -> set[str]:
        return set(re.split(r"[^a-z]+", rel.lower()))

    test = [c for c in candidates if words(c) & {"test", "tests", "testing"}]
    dev = [c for c in candidates if words(c) & {"dev", "develop", "development", "ci"}]
    chosen = test or dev
    if not installable:
        chosen += [c for c in candidates if c.endswith(("requirements.txt", "base.txt"))]
    return list(dict.fromkeys(chosen))


def read_hints(root: Path, installable: bool) -> Hints:
    """Gather the hints of ``root``."""
    hints = Hints()
    _read_tox(root, hints)
    _read_nox(root, hints)
    workflows = root / ".github" / "workflows"
    ci_files = [p.relative_to(root).as_posix() for p in sorted(workflows.glob("*.y*ml"))] \
        if workflows.is_dir() else []
    for rel in [*ci_files, *_CI_FILES, "Makefile"]:
        text = read_text(root, rel)
        if text:
            if rel != "Makefile":
                hints.pythons |= _pythons_in(text)
            hints.commands += _commands_in(text)
    hints.requirement_files += _requirement_files(root, installable)
    hints.requirement_files = [f for f in dict.fromkeys(hints.requirement_files)
                               if (root / f).is_file()]
    for rel in hints.requirement_files:
        hints.requirements += read_requirements_file(root, rel)
    hints.commands = list(dict.fromkeys(hints.commands))[:20]
    hints.extras = list(dict.fromkeys(e for e in hints.extras if e))
    return hints

