"""The requirements a build asks for, as they apply to the chosen interpreter.

Detection reads requirement lines from many places (requirements files, tox deps, Poetry dev
groups, the pytest config's plugins), often with environment markers
(``freezegun; python_version != "3.3"``, ``mock; python_version < "3"``). The builder
evaluates those markers with ``packaging`` for the interpreter the venv is built on (not
the host's Python, which may be another version), keeps the requirements that apply and
records the others as skipped; it never hand-parses a marker. Requirements that do not
parse stay out (detection already drops them; this is a second guard).

Names are compared in their canonical form (``Foo_Bar`` = ``foo-bar``), the form uv prints
in its errors.
"""

from __future__ import annotations

from packaging.markers import (
    InvalidMarker,
    UndefinedComparison,
    UndefinedEnvironmentName,
    default_environment,
)
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from codemill.repos.detect.project import ProjectInfo


def marker_environment(python_version: str) -> dict[str, str]:
    """The marker environment of a CPython ``python_version`` (``3.9.18``) on this
    platform: the host's, with the interpreter's own versions."""
    env = dict(default_environment())
    parts = (python_version.split(".") + ["0", "0"])[:3]
    env.update(python_version=".".join(parts[:2]), python_full_version=".".join(parts),
               implementation_version=".".join(parts), implementation_name="cpython",
               platform_python_implementation="CPython")
    return env


def requirement_key(text: str) -> str:
    """The canonical distribution name of a requirement ('' when it does not parse)."""
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return ""


def applicable(requirements: tuple[str, ...], python_version: str
               ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(kept, skipped)``: the requirements whose markers hold for ``python_version``
    (or that have none), and those whose markers do not (or cannot be evaluated)."""
    env = marker_environment(python_version)
    kept, skipped = [], []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            skipped.append(text)
            continue
        try:
            holds = req.marker is None or req.marker.evaluate({**env, "extra": ""})
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            holds = False
        (kept if holds else skipped).append(text)
    return tuple(kept), tuple(skipped)


def for_interpreter(project: ProjectInfo, python_version: str
                    ) -> tuple[ProjectInfo, tuple[str, ...]]:
    """``project`` with only the outside test requirements and harness requirements that
    apply to ``python_version``; and the skipped ones."""
    tests, skipped_tests = applicable(project.test_requirements, python_version)
    harness, skipped_harness = applicable(project.harness_requirements, python_version)
    updated = project.model_copy(update={"test_requirements": tests,
                                         "harness_requirements": harness})
    return updated, skipped_tests + skipped_harness


def without(requirements: tuple[str, ...], names: set[str]) -> list[str]:
    """``requirements`` less those on a distribution in ``names`` (canonical names)."""
    return [r for r in requirements if requirement_key(r) not in names]
