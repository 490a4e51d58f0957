"""``GraderConfig``: how a candidate is graded; stored with every grading run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from codemill.rewards import flags as F

HARNESS_VERSION = "codemill-grade-7"
"""Bumped whenever grading rules change, so rewards graded under other rules are told apart
(stored on every reward row with the runner's parser version). 3: a canary never takes
the name of a selected test (it replaced the test and failed it: an honest fix got 0).
4: the safe start keeps pytest's warning about plugins it imported early from failing a
suite that turns warnings into errors. 5: outcomes come from the result stream, not the
result file; the audit hook's evidence beyond the gold run's zeroes the reward; canaries
are perturbed copies of the task's own tests. 6: the selection runs in the order a
whole-suite run reaches it, as validation ran it, not FAIL_TO_PASS first and each sorted
(an order-dependent suite failed honest fixes: ``codemill.testing.order``). 7: the output
limit of a graded run is sized to its selection, and a run whose result stream was cut
anyway has no verdict (a 26,000-test suite's stream lost the records of thousands of
passing tests at the 1 MB default: its gold patch graded 0); an id with ``::`` in its
parameters runs as its function's id (pytest 6 took it for no test: every dateutil task
whose selection held one was masked); the run order is pytest's own listing of the suite
in the gold state (``rewards.run_order``), not a reading of the sources (a TestCase's
tests run sorted by name: pyparsing's held-out gold patches graded 0)."""

DEFAULT_ZERO_ON = (
    F.PATCH_FAILED,
    F.HOOK_FILES,
    F.BYTECODE,
    F.BINARY_PATCH,
    F.RUNNER_TAMPER,
    F.NO_RESULTS,
    F.TIMEOUT,
    F.WITHHELD_ACCESS,
    F.BLOCKED_TESTS,
    F.SPECIAL_CASE_RUNNER,
    F.SPECIAL_CASE_FRAME,
    F.SPECIAL_CASE_ALWAYS_EQUAL,
    *F.AUDIT.values(),
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
    flags (touched/added tests, test config, metadata, shadowing modules) are recorded
    only: the grader restored or removed the files, so the tests ran on pristine ground.
    Reading withheld material and special-casing the test run zero by default; a flag of
    those classes left out of ``zero_on`` is recorded as ``<flag>:flag_only``."""
    canaries: int = Field(3, ge=0, le=20)
    """How many harness-written tests that must fail are hidden among the selection
    (``codemill.rewards.canary``; 0 turns the check off). A run in which one passes, or
    vanishes while the gold run shows it, had its runner tampered with."""
    gold_check: bool = True
    """When the candidate's run gives no evidence, or the hidden tests do not apply after
    it, do the same with the gold patch to tell the candidate's fault (value 0) from the
    infrastructure's (masked). Run fresh each time it is needed. Off: every such failure
    is masked, which lets a policy hide its failures from training."""
    safe_start: bool = True
    """Start the runner with the workspace off ``sys.path`` and plugin auto-loading off
    (``codemill.testing.safe_start``). Off: ``python -m pytest`` as a user would run it."""
    restore_protected: bool = True
    """Put back every test, test configuration, hook and task path the candidate touched."""
    remove_metadata: bool = True
    """Remove ``*.dist-info``/``*.egg-info`` folders the candidate added or changed."""
    remove_shadowing: bool = True
    """Remove new top-level modules named like standard-library, runner or installed ones."""
    scan_special_cases: bool = True
    """Look for code that detects the test run in the candidate's changed modules (AST);
    whether a finding zeroes the reward is ``zero_on``'s to say."""
    stream_results: bool = True
    """Believe only the outcomes the harness streamed to the host as it decided them
    (``codemill.testing.stream``); off: the result file in the results dir, which the code
    under test can rewrite after the run."""
    audit: bool = True
    """Run an audit hook in the test process and zero what non-test workspace code did
    there beyond the gold run (``harness/guard.py``; needs ``stream_results``). Which
    classes zero is ``zero_on``'s to say (the ``audit_*`` flags)."""
    restore_support: bool = True
    """Also put back the workspace files that validation saw the task's tests import or
    open (``TaskSpec.metadata["test_support"]``), wherever they live."""
