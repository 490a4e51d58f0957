"""Interpreter discovery on this machine and the choice rules (requires-python, declared
versions, era)."""

from __future__ import annotations

import subprocess

import pytest

from codemill.core.errors import BuildError
from codemill.envs.interpreters import Interpreter, choose_interpreter, find_interpreters

POOL = tuple(Interpreter(path=f"/opt/py{v}/bin/python3", version=v, prefix=f"/opt/py{v}")
             for v in ("3.7.16", "3.8.18", "3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0"))


def pick(**kw: object) -> str:
    return choose_interpreter(available=POOL, **kw).interpreter.version  # type: ignore[arg-type]


def test_found_interpreters_report_their_own_version() -> None:
    found = find_interpreters()
    assert found, "no Python 3.7+ on this machine"
    for interp in found[:3]:
        out = subprocess.run([interp.path, "-c", "import platform, sys; "
                              "print(platform.python_version(), sys.base_prefix)"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        assert out.split() == [interp.version, interp.prefix]
        assert interp.path.startswith(interp.prefix)


def test_newest_allowed_without_other_hints() -> None:
    assert pick() == "3.13.0"
    assert pick(requires_python=">=3.8,<3.12") == "3.11.7"


def test_not_newer_than_declared_versions() -> None:
    assert pick(requires_python=">=3.7", declared=("3.7", "3.8", "3.9", "3.10")) == "3.10.13"


def test_era_prefers_pythons_of_the_snapshot_date() -> None:
    assert pick(requires_python=">=3.6", created_at="2019-06-01T00:00:00Z") == "3.7.16"
    assert pick(requires_python=">=3.6", created_at="2019-12-01T00:00:00Z") == "3.8.18"
    assert pick(created_at="2020-11-20") == "3.9.18"
    assert pick(created_at="2015-01-01") == "3.7.16"  # older than all: the oldest
    # requires-python is a hard limit even against the era
    assert pick(requires_python=">=3.10", created_at="2019-06-01") == "3.10.13"


def test_requested_and_impossible() -> None:
    assert pick(requested="3.9") == "3.9.18"
    with pytest.raises(BuildError, match="not found"):
        pick(requested="3.4")
    with pytest.raises(BuildError, match="requires-python"):
        pick(requires_python=">=3.20")
    assert pick(requires_python=">=3.8.*, <4") == "3.13.0"  # a sloppy specifier still reads
