"""The selection runs in the order pytest itself lists the suite in the task's gold state,
so an order-dependent suite does not fail an honest fix: here a ``unittest.TestCase``
whose first-defined test sets a module flag that a later-defined test checks. pytest
runs a TestCase's tests sorted by name (``test_a`` first), as validation did; read from
the sources, in definition order, ``test_b`` ran first and the gold patch graded 0."""

from __future__ import annotations

import pytest

from codemill.rewards import flags as F
from codemill.rewards.grader import grade_detailed
from codemill.tasks.patches import file_diff
from codemill.testing.order import collection_order

ORDERED = (
    "import unittest\n\nimport calc\n\n\n"
    "class TestOrder(unittest.TestCase):\n"
    "    def test_b_sets(self):\n        calc.FLAG = True\n\n"
    "    def test_a_checks(self):\n        self.assertFalse(getattr(calc, 'FLAG', False))\n"
)
IDS = ("tests/test_order.py::TestOrder::test_a_checks",
       "tests/test_order.py::TestOrder::test_b_sets")


@pytest.fixture(scope="module")
def ordered_task(toy):
    return toy.task.model_copy(update={
        "task_id": toy.task.task_id + "-run-order",
        "test_patch": toy.task.test_patch + file_diff("tests/test_order.py", None,
                                                      ORDERED.encode()),
        "pass_to_pass": (*toy.task.pass_to_pass, *IDS),
        "hidden_paths": (*toy.task.hidden_paths, "tests/test_order.py")})


def test_the_gold_patch_of_an_order_dependent_suite_grades_1(toy, ordered_task):
    # read from the sources, the TestCase's tests would run in definition order
    assert collection_order(IDS, {"tests/test_order.py": ORDERED}.get) == list(reversed(IDS))
    g = grade_detailed(ordered_task, ordered_task.gold_patch, env=toy.env, home=toy.home,
                       settings=toy.settings, rollout_id="order-gold", policy="gold")
    assert g.reward.value == 1.0 and F.MISSING_TESTS not in g.reward.flags, (g.reward, g.notes)
    listings = list((toy.home / "cache" / "run_order").glob("*.json"))
    assert listings, "the listing is kept for the next grading of the task"
    again = grade_detailed(ordered_task, ordered_task.gold_patch, env=toy.env, home=toy.home,
                           settings=toy.settings, rollout_id="order-gold-2", policy="gold")
    assert again.reward.value == 1.0
    assert sorted((toy.home / "cache" / "run_order").glob("*.json")) == sorted(listings)
