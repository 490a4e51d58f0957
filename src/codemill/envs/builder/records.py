"""The records a build returns: ``BuildStep`` (one command) and ``BuildResult``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from codemill.core.records import EnvSpec, EnvStatus, TestReport
from codemill.envs.interpreters import Interpreter
from codemill.repos.detect.project import ProjectInfo

BUILDER_VERSION = "3"
"""Part of every environment id; bump when a change to the builder changes what it makes."""


class BuildStep(BaseModel):
    """One command of a build, kept for the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    argv: tuple[str, ...] = ()
    exit_code: int | None = None
    seconds: float = 0.0
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class BuildResult(BaseModel):
    """What ``build_env`` made: the environment record plus everything behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: EnvSpec
    project: ProjectInfo | None = None
    interpreter: Interpreter | None = None
    python_reason: str = ""
    steps: tuple[BuildStep, ...] = ()
    reports: tuple[TestReport, ...] = ()
    """The baseline's full runs, in order (one ``test_results`` row per test per run)."""
    repeats: tuple[TestReport, ...] = ()
    """The baseline's runs of a sample of the suite after its full runs (``test_results``
    rows with phase ``baseline-repeat``)."""
    flakiness: str = ""
    """How far the baseline checked for flaky tests, in words (``Baseline.confidence``)."""
    flaky: tuple[str, ...] = ()
    disk_bytes: int = 0
    """Bytes on disk of the installed venv (shared by environments with the same venv)."""
    shared_venv: bool = False
    """The venv was already on disk from an earlier build with an identical install."""
    layer: str = ""
    attempt: str = ""
    """Which install attempt succeeded (``full, latest``, ``lean, as of 2020-01-02``...)."""

    @property
    def status(self) -> EnvStatus:
        return self.env.status

    @property
    def log(self) -> str:
        lines = []
        for step in self.steps:
            code = "-" if step.exit_code is None else step.exit_code
            lines.append(f"## {step.name} (exit {code}, {step.seconds:.1f}s)")
            if step.argv:
                lines.append("$ " + " ".join(step.argv)[:2000])
            if step.output_tail:
                lines.append(step.output_tail)
        return "\n".join(lines)
