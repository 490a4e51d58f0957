"""Test support outside the test directories: recorded at validation, restored at grading.

A toy task whose hidden test compares ``add`` with a golden file, ``data/expected_add.txt``,
that lives outside ``tests/``. Validation (the real ``validate``) runs the tests with the
runner's open/import recorder and stores the golden file under ``test_support``; grading
puts it back, so a candidate that edits the golden file to match the bug earns 0, and
earns 1 when that defence (``restore_support``) is switched off.
"""

from __future__ import annotations

import pytest

from codemill.core.records import TaskKind
from codemill.rewards.config import GraderConfig
from codemill.rewards.grader import grade_detailed
from codemill.tasks.patches import file_diff
from codemill.tasks.testbed import TestBed
from codemill.tasks.validate import Candidate, ValidationConfig, validate

from .toyproject import BROKEN_OPS, BROKEN_PATCH, GOLD_PATCH, P2P

DATA = "data/expected_add.txt"
GOLDEN_TEST = (
    "from pathlib import Path\n\nfrom calc import add\n\n\n"
    "def test_add_matches_golden():\n"
    f"    assert add(2, 3) == int(Path('{DATA}').read_text())\n"
)
F2P = ("tests/test_golden.py::test_add_matches_golden",)


@pytest.fixture(scope="module")
def golden_task(toy):
    bed = TestBed.from_env(toy.env, toy.home, toy.settings.sandbox)
    gold_state = {DATA: b"5\n", "tests/test_golden.py": GOLDEN_TEST.encode()}
    candidate = Candidate(
        kind=TaskKind.SYNTH, candidate_id="golden-file", gold_state=gold_state,
        broken_state={**gold_state, "src/calc/ops.py": BROKEN_OPS.encode()},
        broken_patch=BROKEN_PATCH + file_diff(DATA, None, b"5\n"), gold_patch=GOLD_PATCH,
        test_patch=file_diff("tests/test_golden.py", None, GOLDEN_TEST.encode()),
        fail_to_pass=F2P, pass_to_pass=P2P, selection=(*F2P, *P2P), labels="check",
        hidden_paths=("tests/test_golden.py",))
    task, row = validate(bed, candidate, ValidationConfig(runs=1, max_mutants=0,
                                                          p2p_scope="selection"))
    assert task is not None, row
    return task


def test_validation_records_the_golden_file_outside_tests(golden_task):
    assert DATA in golden_task.metadata["test_support"], golden_task.metadata
    assert "src/calc/ops.py" not in golden_task.metadata["test_support"]


def _grade(toy, task, diff, config=None):
    return grade_detailed(task, diff, env=toy.env, home=toy.home, settings=toy.settings,
                          rollout_id="support", policy="hostile", config=config).reward


def test_editing_the_golden_file_earns_nothing_unless_restoring_is_off(toy, golden_task):
    attack = file_diff(DATA, b"5\n", b"-1\n")  # what the broken add(2, 3) returns
    assert _grade(toy, golden_task, attack).value == 0.0
    assert _grade(toy, golden_task, attack, GraderConfig(restore_support=False)).value == 1.0


def test_the_fix_still_earns_one(toy, golden_task):
    assert _grade(toy, golden_task, GOLD_PATCH).value == 1.0

