"""Safe, forgiving readers for the files project detection looks at.

Everything here reads text and never executes project code. A file that is missing,
unreadable, too big, a symlink pointing outside the tree or malformed reads as empty (and
the caller may note it); detection must never fail because a project ships an odd file.
"""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

MAX_BYTES = 2_000_000
"""Files larger than this are not configuration; skip them."""


def read_text(root: Path, rel: str) -> str | None:
    """The text of ``root/rel`` when it is a regular file inside ``root``; else None."""
    path = root / rel
    try:
        if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
            return None
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_toml(root: Path, rel: str) -> dict[str, Any]:
    text = read_text(root, rel)
    if not text:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def read_ini(root: Path, rel: str) -> configparser.RawConfigParser | None:
    """An ini file (setup.cfg, tox.ini, pytest.ini) without interpolation, tolerant of
    duplicate sections and keys (both occur in the wild)."""
    text = read_text(root, rel)
    if text is None:
        return None
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return parser


def ini_get(parser: configparser.RawConfigParser | None, section: str, key: str) -> str:
    if parser is None or not parser.has_section(section):
        return ""
    return parser.get(section, key, fallback="") or ""


def ini_lines(value: str) -> list[str]:
    """Split a multi-line ini value (or a one-line, comma-free list) into stripped lines."""
    out = []
    for line in value.replace("\r", "").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def valid_requirement(text: str) -> str | None:
    """``text`` when it is a PEP 508 requirement on an index package (no URLs, no local
    paths); None otherwise. URLs and VCS links fail offline and are not reproducible."""
    text = text.strip()
    if not text or text.startswith(("-", ".", "/", "#")):
        return None
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    if req.url:
        return None
    return str(req)


def requirement_name(text: str) -> str:
    """The normalized distribution name of a requirement string ('' when invalid)."""
    try:
        return Requirement(text).name.lower().replace("_", "-").replace(".", "-")
    except InvalidRequirement:
        return ""


def read_requirements_file(root: Path, rel: str, _seen: set[str] | None = None) -> list[str]:
    """Requirements from a pip requirements file, following ``-r`` includes inside the
    tree. Options, editables, hashes, URLs and constraint files are dropped: the project
    itself is installed separately and anything not on the index is not reproducible."""
    seen = _seen if _seen is not None else set()
    if rel in seen or len(seen) > 20:
        return []
    seen.add(rel)
    text = read_text(root, rel)
    if text is None:
        return []
    base = Path(rel).parent
    out: list[str] = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for opt in ("-r ", "--requirement ", "-r", "--requirement="):
            if line.startswith(opt):
                target = line[len(opt):].strip().replace("{toxinidir}/", "")
                include = (base / target).as_posix() if not target.startswith("/") else ""
                if include:
                    out += read_requirements_file(root, include, seen)
                break
        else:
            req = valid_requirement(line.split(" --", 1)[0])  # drop --hash and the like
            if req:
                out.append(req)
    return out
