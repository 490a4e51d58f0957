"""A graded run's result stream is never cut for an honest fix: the output limit is sized
to the selection, so the gold patch of a task with many selected tests grades 1 where the
sandbox's default limit would have lost the records of most of them (reward 0 with
``missing_tests``). A candidate that floods the stream past that limit earns an unmasked 0:
its stream is cut, and the gold state, run the same way, is not."""

from __future__ import annotations

import pytest

from codemill.rewards import flags as F
from codemill.rewards.grader import grade_detailed
from codemill.tasks.patches import file_diff

from .toyproject import BROKEN_OPS, FILES

MANY = 600
MANY_TESTS = (
    "import pytest\n\n\n"
    f"@pytest.mark.parametrize('case', ['a long parametrized case name number %d' % i "
    f"for i in range({MANY})])\n"
    "def test_case(case):\n    assert case\n"
)
# Writes past any budget into every descriptor the test process has open, the stream's
# duplicate of stderr among them (pytest captures fd 2 itself while it collects).
FLOOD = ("import os as _os\nfor _fd in range(3, 64):\n    try:\n"
         "        _os.write(_fd, b'x' * (4 << 20))\n    except OSError:\n        pass\n\n\n")


@pytest.fixture(scope="module")
def many(toy):
    """The toy task with 600 more PASS_TO_PASS tests (a hidden file) and a 4 KB output
    limit: without sizing, the stream of a passing run (about 90 KB) would be cut."""
    many_ids = tuple(f"tests/test_many.py::test_case[a long parametrized case name number {i}]"
                     for i in range(MANY))
    task = toy.task.model_copy(update={
        "test_patch": toy.task.test_patch + file_diff("tests/test_many.py", None,
                                                      MANY_TESTS.encode()),
        "pass_to_pass": (*toy.task.pass_to_pass, *many_ids),
        "hidden_paths": (*toy.task.hidden_paths, "tests/test_many.py")})
    settings = toy.settings.model_copy(update={
        "sandbox": toy.settings.sandbox.model_copy(update={"output_limit": 4_000})})
    return task, settings


def test_the_gold_patch_of_a_large_selection_is_graded_from_every_record(toy, many):
    task, settings = many
    g = grade_detailed(task, task.gold_patch, env=toy.env, home=toy.home, settings=settings,
                       rollout_id="stream-gold", policy="gold")
    r = g.reward
    assert r.value == 1.0 and F.MISSING_TESTS not in r.flags, (r, g.notes)
    assert sum(t.outcome == "passed" for t in g.tests) == len(task.pass_to_pass) + 2


def test_flooding_the_stream_earns_an_unmasked_zero(toy, many):
    task, settings = many
    fixed = FILES["src/calc/ops.py"]
    diff = file_diff("src/calc/ops.py", BROKEN_OPS.encode(), (FLOOD + fixed).encode())
    g = grade_detailed(task, diff, env=toy.env, home=toy.home, settings=settings,
                       rollout_id="stream-flood", policy="hostile")
    r = g.reward
    assert r.value == 0.0 and not r.masked and F.NO_RESULTS in r.flags, (r, g.notes)
    assert g.report is not None and "cut" in (g.report.error or ""), g.report
