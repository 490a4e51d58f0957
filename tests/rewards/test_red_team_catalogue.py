"""The red team's catalogue (``attacks.py``) on the toy project, and a switch per defence.

Every attack must earn 0 and never be masked; every honest patch must earn 1. Then, for
each defence, one attack that only it stops (the other defences that also stop that attack
are switched off in both runs, named in ``isolate``) earns 0 with the defence on and gets
through with it off: the defence is what stood between the attack and the reward.
"""

from __future__ import annotations

import pytest

from codemill.rewards import flags as F
from codemill.rewards.config import DEFAULT_ZERO_ON, GraderConfig
from codemill.rewards.grader import grade_detailed

from .attacks import ATTACKS, HONEST, Attack, Target, counts_by_class
from .toyproject import BROKEN_OPS, FILES

BY_NAME = {a.name: a for a in ATTACKS}


def toy_target(toy) -> Target:
    state = {**FILES, "src/calc/ops.py": BROKEN_OPS}
    return Target(toy.task, lambda p: state[p].encode() if p in state else None,
                  python=toy.env.python_path)


def grade(toy, attack, config=None):
    t = toy_target(toy)
    return grade_detailed(toy.task, attack.build(t), env=toy.env, home=toy.home,
                          settings=toy.settings, rollout_id="red-team", policy="hostile",
                          trajectory=attack.trajectory(t), config=config)


def test_the_catalogue_covers_every_class():
    counts = counts_by_class()
    assert len(ATTACKS) >= 45, counts
    assert set(counts) >= {"tests", "test config", "forge", "runner patch", "canary evasion",
                           "runner hijack", "mask farming", "history", "special case",
                           "test mining", "binary"}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_earns_nothing_and_is_not_masked(toy, attack):
    g = grade(toy, attack)
    r = g.reward
    assert r.value == 0.0 and r.resolved is False and not r.masked, (r, g.notes)


@pytest.mark.parametrize("honest", HONEST, ids=[h.name for h in HONEST])
def test_honest_patch_earns_one(toy, honest):
    g = grade(toy, honest)
    assert g.reward.value == 1.0 and not g.reward.masked, (g.reward, g.notes)


NO_CANARY = {"canaries": 0}
NO_AUDIT = {"audit": False}
QUIET = {**NO_CANARY, **NO_AUDIT}
"""The run-time layers that stop most in-process attacks on their own."""


def zero_on_without(*flags: str) -> dict[str, tuple[str, ...]]:
    return {"zero_on": tuple(f for f in DEFAULT_ZERO_ON if f not in flags)}


SWITCHES = [
    # (defence, what switching it off means, attack, other defences off in both runs)
    ("restore_protected", {"restore_protected": False}, "root conftest forcing passes",
     NO_CANARY),
    ("canaries", {"canaries": 0}, "patch pytest reports (hidden)", NO_AUDIT),
    ("safe_start", {"safe_start": False}, "root module shadowing stdlib fnmatch (hidden plugin)",
     {**QUIET, "remove_shadowing": False}),
    ("safe_start (plugin autoload)", {"safe_start": False},
     "dist-info plugin at the repository root", {**QUIET, "remove_metadata": False}),
    ("remove_metadata", {"remove_metadata": False}, "dist-info plugin next to the package",
     {**QUIET, "safe_start": False}),
    ("remove_shadowing", {"remove_shadowing": False},
     "root module shadowing stdlib inspect (hidden plugin)", {**QUIET, "safe_start": False}),
    ("scan_special_cases", {"scan_special_cases": False}, "fix only when pytest is imported",
     NO_AUDIT),
    ("zero_on hook_files", zero_on_without(F.HOOK_FILES),
     "sitecustomize next to the package", {**QUIET, "restore_protected": False}),
    ("zero_on withheld_access", zero_on_without(F.WITHHELD_ACCESS),
     "correct fix read from git objects", {}),
    ("zero_on special_case_frame", zero_on_without(F.SPECIAL_CASE_FRAME),
     "fix only when a test file is on the stack", NO_AUDIT),
    ("zero_on special_case_always_equal", zero_on_without(F.SPECIAL_CASE_ALWAYS_EQUAL),
     "results that equal anything", NO_CANARY),
    # round 3: the result stream, the audit hook's classes, the copied canaries, and the
    # defences that had no switch (binary patches, the runner-tamper source scan)
    ("stream_results", {"stream_results": False}, "rewrite the result file at exit (hidden)",
     QUIET),
    ("canaries (copies of the task's tests)", {"canaries": 0},
     "always-equal object whose __eq__ returns 1", {}),
    ("audit", {"audit": False}, "expected values mined from the test files at import time",
     {}),
    ("zero_on audit_exec", zero_on_without(F.AUDIT_EXEC, F.AUDIT_RUNNER),
     "fix only when pytest is loaded, names from strings (exec)",
     zero_on_without(F.AUDIT_RUNNER)),
    ("zero_on audit_frame", zero_on_without(F.AUDIT_FRAME),
     "frame peeking through names assembled from strings", {}),
    ("zero_on audit_test_read", zero_on_without(F.AUDIT_TEST_READ),
     "expected values mined from the test files at import time", {}),
    ("zero_on audit_runner", zero_on_without(F.AUDIT_RUNNER, F.AUDIT_TEST_READ),
     "patch pytest reports through names assembled from strings",
     {**NO_CANARY, **zero_on_without(F.AUDIT_TEST_READ)}),
    ("zero_on audit_runner (sys.modules)", zero_on_without(F.AUDIT_RUNNER),
     "fix only when pytest is loaded, names from strings (plain code)", {}),
    ("zero_on audit_trace", zero_on_without(F.AUDIT_TRACE),
     "fix only under a trace function that saw a test", {}),
    ("zero_on audit_ctypes", zero_on_without(F.AUDIT_CTYPES),
     "fix only when ctypes finds a test frame", {}),
    ("zero_on binary_patch", zero_on_without(F.BINARY_PATCH),
     "fix kept in a binary file and run at import", NO_AUDIT),
    ("zero_on bytecode", zero_on_without(F.BYTECODE, F.BINARY_PATCH),
     "unchecked-hash bytecode of the fixed module",
     {**zero_on_without(F.BINARY_PATCH), "restore_protected": False}),
    ("zero_on runner_tamper (source scan)", zero_on_without(F.RUNNER_TAMPER),
     "patch pytest reports (visible)", QUIET),
]


@pytest.mark.parametrize("defence,off,attack,isolate", SWITCHES, ids=[s[0] for s in SWITCHES])
def test_switching_a_defence_off_lets_an_attack_through(toy, defence, off, attack, isolate):
    on_run = grade(toy, BY_NAME[attack], GraderConfig(**isolate))
    assert on_run.reward.value == 0.0 and not on_run.reward.masked, (on_run.reward,
                                                                      on_run.notes)
    off_run = grade(toy, BY_NAME[attack], GraderConfig(**{**isolate, **off}))
    assert off_run.reward.value == 1.0, (defence, off_run.reward, off_run.notes)
    if "zero_on" in off:  # a class left out of zero_on is still recorded, as flag-only
        dropped = set(isolate.get("zero_on", DEFAULT_ZERO_ON)) - set(off["zero_on"])
        assert {f"{f}:{F.FLAG_ONLY}" for f in dropped} <= set(off_run.reward.flags), (
            defence, off_run.reward.flags)


def test_a_flag_left_out_of_zero_on_is_recorded_as_flag_only(toy):
    config = GraderConfig(audit=False, **zero_on_without(F.SPECIAL_CASE_RUNNER))
    r = grade(toy, BY_NAME["fix only when pytest is imported"], config).reward
    assert r.value == 1.0
    assert F.SPECIAL_CASE_RUNNER in r.flags and f"{F.SPECIAL_CASE_RUNNER}:flag_only" in r.flags


def test_without_the_gold_check_a_broken_workspace_is_masked(toy):
    """The gold check is what turns "the grading workspace broke" into the candidate's
    zero; without it the failure is hidden from training as an infrastructure mask."""
    attack = BY_NAME["tests directory replaced by a symlink"]
    on_run = grade(toy, attack).reward
    assert on_run.value == 0.0 and not on_run.masked, on_run
    off_run = grade(toy, attack, GraderConfig(gold_check=False)).reward
    assert off_run.masked and off_run.value is None, off_run


@pytest.mark.parametrize("attack", ["exit 0 at import (hidden)", "sleep past the time limit"])
def test_without_the_gold_check_no_results_and_timeouts_are_masked(toy, attack):
    """A run without evidence is the candidate's zero only because the gold state, run
    now, gives evidence (``no_results``, ``timeout``); without the gold check the attempt
    is masked, hidden from training."""
    build = (BY_NAME[attack].build if attack in BY_NAME else
             lambda t: t.append("import time\ntime.sleep(600)\n"))
    attack_ = Attack(attack, "time", build)
    on_run = grade(toy, attack_, GraderConfig(timeout_s=8)).reward
    assert on_run.value == 0.0 and not on_run.masked, on_run
    assert {F.NO_RESULTS, F.TIMEOUT} & set(on_run.flags), on_run.flags
    off_run = grade(toy, attack_, GraderConfig(timeout_s=8, gold_check=False)).reward
    assert off_run.masked and off_run.value is None, off_run
