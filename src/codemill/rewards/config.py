"""``GraderConfig``: how a candidate is graded; stored with every grading run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from codemill.rewards import flags as F

HARNESS_VERSION = "codemill-grade-1"
"""Bumped whenever grading rules change, so rewards graded under other rules are told apart
(stored on every reward row with the runner's parser version)."""

DEFAULT_ZERO_ON = (
    F.PATCH_FAILED,
    F.HOOK_FILES,
    F.BYTECODE,
    F.BINARY_PATCH,
    F.RUNNER_TAMPER,
    F.NO_RESULTS,
    F.TIMEOUT,
)


class GraderConfig(BaseModel):
    """Knobs of the grader. The defaults are the honest ones; loosen them knowingly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(600.0, gt=0)
    """Wall-clock limit of one graded test run (the whole process tree is killed)."""
    zero_on: tuple[str, ...] = DEFAULT_ZERO_ON
    """Flags that force the value to 0 whatever the tests say: what restoring pristine
    files cannot undo (interpreter hooks, bytecode, binary content, code reaching into the
    runner) and what the candidate's code did to the run (no results, timeout). The other
    flags (touched/added tests, test config, withheld access) are recorded only: the
    grader restored the files, so the tests ran on pristine ground."""
    canary: bool = True
    """Run a harness-written test that must fail next to the selection: a run in which it
    passes, or vanishes while the gold run shows it, had its runner tampered with."""
    gold_check: bool = True
    """When the candidate's run gives no evidence, run the gold state to tell the
    candidate's fault (value 0) from the infrastructure's (masked). Run fresh each time
    it is needed (rare: only runs without evidence and vanished canaries)."""
