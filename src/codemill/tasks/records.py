"""Records the task layer returns besides ``TaskSpec``: rejections, validations, funnels.

Nothing is dropped silently: every candidate ends in a ``TaskValidation`` (valid, with its
``TaskSpec``, or rejected with a stage and a reason), and a ``Funnel`` counts them. The CLI
(or the factory) persists them: ``TaskSpec`` rows to ``tasks``, ``TaskValidation`` rows
(one per candidate, accepted or not) to ``task_validations``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import Field

from codemill.core.ids import content_id
from codemill.core.records import Record

STAGES = ("candidates", "compiled", "broke_a_test", "passed_validation", "not_flaky", "strong")
"""The funnel, in order. A candidate counted at a stage was counted at every earlier one."""


class TaskValidation(Record):
    """The verdict on one candidate, accepted or rejected (a row of ``task_validations``).

    A rejected candidate has no task id; its ``task_id`` column holds the candidate id
    (``details["candidate_id"]`` is always set), so a resumed run finds it and skips it.
    """

    task_id: str
    env_id: str
    valid: bool
    reason: str = ""
    """Short and stable, so rejections group (``no test broke``, ``timeout``, ...); for a
    valid task, empty or ``weak tests``."""
    runs: int = 0
    """Repetitions per state (k)."""
    fail_to_pass_ok: bool | None = None
    """The broken state failed and the gold state passed every FAIL_TO_PASS test."""
    pass_to_pass_ok: bool | None = None
    """Both states passed every PASS_TO_PASS test."""
    flaky_tests: tuple[str, ...] = ()
    """Tests excluded because their outcome changed between identical runs."""
    test_strength: float | None = None
    """Kill rate of mutants of the gold change's lines by the FAIL_TO_PASS tests."""
    seconds: float = 0.0
    """Wall time spent deciding this candidate (screening plus validation)."""
    details: dict[str, Any] = Field(default_factory=dict)
    """``candidate_id``, ``kind``, ``stage`` reached, ``detail``, ``n_mutants``, counts."""

    @property
    def candidate_id(self) -> str:
        return str(self.details.get("candidate_id", self.task_id))


class Funnel(Record):
    """How many candidates reached each stage, and why the others stopped."""

    env_id: str
    kind: str
    candidates: int = 0
    compiled: int = 0
    broke_a_test: int = 0
    passed_validation: int = 0
    not_flaky: int = 0
    strong: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)
    test_seconds: float = 0.0
    """Test time spent screening candidates (selected tests only)."""
    test_seconds_full: float = 0.0
    """What screening would have cost running the full suite per candidate (baseline
    durations); the ratio is the saving of coverage-based selection."""
    skipped_known: int = 0
    """Candidates already decided in an earlier run (resumed), not redone."""

    def summary(self) -> dict[str, Any]:
        return self.model_dump()


class FunnelCounter:
    """Mutable tally that freezes into a ``Funnel``."""

    def __init__(self, env_id: str, kind: str) -> None:
        self.env_id, self.kind = env_id, kind
        self.stages: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.test_seconds = 0.0
        self.test_seconds_full = 0.0
        self.skipped_known = 0

    def reached(self, stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.stages[stage] += 1

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def merge(self, other: Funnel) -> None:
        for s in STAGES:
            self.stages[s] += getattr(other, s)
        self.rejected.update(other.rejected)
        self.test_seconds += other.test_seconds
        self.test_seconds_full += other.test_seconds_full
        self.skipped_known += other.skipped_known

    def freeze(self) -> Funnel:
        return Funnel(
            env_id=self.env_id, kind=self.kind, rejected=dict(sorted(self.rejected.items())),
            test_seconds=round(self.test_seconds, 3),
            test_seconds_full=round(self.test_seconds_full, 3),
            skipped_known=self.skipped_known, **{s: self.stages[s] for s in STAGES},
        )


def task_id(env_id: str, broken_patch: str, test_patch: str, fail_to_pass: Any,
            pass_to_pass: Any) -> str:
    """The id of a task (``TaskSpec.task_id``): what defines it, hashed."""
    return content_id(env_id, broken_patch, test_patch, sorted(fail_to_pass),
                      sorted(pass_to_pass))


def candidate_id(env_id: str, kind: str, broken_patch: str, test_patch: str) -> str:
    """The id of a candidate before its tests are known: a resumed run skips candidates
    whose id was already decided (accepted or rejected)."""
    return content_id("candidate", env_id, kind, broken_patch, test_patch)
