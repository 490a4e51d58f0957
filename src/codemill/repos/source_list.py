"""A fleet's sources file: one source a line, checked before anything runs.

    # comments and blank lines are ignored
    pypi:toolz==0.12.0
    https://github.com/pytoolz/toolz@0.12.0
    ../projects/mathx

``parse_source_list(text, origin)`` returns the sources in file order, duplicates dropped
(the first occurrence wins). A line is accepted when it has the shape of a source that
``snapshot_source`` takes (``codemill.repos.sources``): ``pypi:NAME[==VERSION]``, a git
URL (``https://``, ``ssh://``, ``git://``, ``file://``, ``user@host:path``, with an
optional ``@REV``) or a local path that exists (a directory, an archive, a git repository,
with an optional ``@REV``). The first bad line is a ``SourceError`` of one line naming the
file and line number. Shape only: whether a PyPI release or a URL exists is found out when
the source is taken in, and a source that fails then is that repository's failure, not the
file's.
"""

from __future__ import annotations

import re
from pathlib import Path

from codemill.core.errors import SourceError
from codemill.repos.sources import split_rev

_PYPI = re.compile(r"^pypi:[A-Za-z0-9][A-Za-z0-9._-]*(==[A-Za-z0-9][A-Za-z0-9.+!_-]*)?$")
_URL_PREFIXES = ("http://", "https://", "ssh://", "git://", "file://", "git+ssh://")
_SCP = re.compile(r"^[\w.-]+@[\w.-]+:\S+$")


def parse_source_list(text: str, origin: str = "sources") -> list[str]:
    """The sources listed in ``text`` (``origin`` names the file in errors)."""
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        why = _problem(line)
        if why:
            raise SourceError(f"{origin}:{number}: {line!r}: {why}")
        if line not in out:
            out.append(line)
    return out


def read_source_list(path: str | Path) -> list[str]:
    """``parse_source_list`` of a file; an unreadable file is a ``SourceError``."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read the sources file {path}: {exc}") from None
    return parse_source_list(text, str(path))


def _problem(line: str) -> str | None:
    if any(c.isspace() for c in line):
        return "one source a line, without spaces"
    if line.startswith("pypi:"):
        return None if _PYPI.match(line) else "not pypi:NAME or pypi:NAME==VERSION"
    location, _rev = split_rev(line)
    if location.startswith(_URL_PREFIXES) or _SCP.match(location):
        return None
    if Path(location).expanduser().exists():
        return None
    return "no such path, and not a git URL or pypi:NAME[==VERSION]"
