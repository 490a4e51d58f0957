"""Canaries copied from the task's tests: the copy fails wherever the original passes, and
reads like its neighbours (same decorators, fixtures, names from its module)."""

from __future__ import annotations

import random

import pytest

from codemill.rewards.canary_source import defined_names, perturbed_copy

PYTEST_FILE = '''import math

SCALE = 3


def area(r):
    return round(math.pi * r * r, 2)


def test_area():
    r = 2
    assert area(r) == 12.57


def test_scaled(tmp_path):
    assert SCALE * 2 == 6
    assert (SCALE, "x") == (3, "x")


def test_name():
    assert "ab" + "c" == "abc"
'''

UNITTEST_FILE = '''import unittest


class TestOps(unittest.TestCase):
    def setUp(self):
        self.base = 10

    def test_plus(self):
        self.assertEqual(self.base + 1, 11)

    def test_other(self):
        self.assertTrue(True)
'''


def run_tests(source: str, names: list[str]) -> dict[str, bool]:
    """Run module-level test functions of ``source``: name -> passed."""
    space: dict[str, object] = {}
    exec(compile(source, "<canary test>", "exec"), space)
    out = {}
    for name in names:
        fn = space[name]
        try:
            fn(*([None] * fn.__code__.co_argcount))  # type: ignore[attr-defined]
            out[name] = True
        except AssertionError:
            out[name] = False
    return out


@pytest.mark.parametrize("original", ["test_area", "test_scaled", "test_name"])
@pytest.mark.parametrize("seed", range(5))
def test_a_copy_fails_where_its_original_passes(original, seed):
    new = perturbed_copy(PYTEST_FILE, original, f"{original}_roundtrip",
                         random.Random(seed))
    assert new is not None
    assert run_tests(new, [original, f"{original}_roundtrip"]) == {
        original: True, f"{original}_roundtrip": False}


def test_the_copy_sits_after_its_original_with_its_arguments_and_names():
    new = perturbed_copy(PYTEST_FILE, "test_scaled", "test_scaled_compat", random.Random(1))
    assert new is not None
    assert new.index("def test_scaled(") < new.index("def test_scaled_compat(tmp_path):") \
        < new.index("def test_name(")
    copy = new[new.index("def test_scaled_compat"):new.index("def test_name")]
    assert "assert SCALE * 2 == 6" in copy  # only the last expectation changes
    assert '(SCALE, "x") == (3, "x")' not in copy and '(SCALE, "x") ==' in copy
    assert new.count("SCALE") == PYTEST_FILE.count("SCALE") + 2


def test_the_cached_parse_of_a_file_serves_every_copy_and_name_lookup_unchanged():
    # Planting asks for one file's tree once per test it tries; the parse is shared, so no
    # copy may alter it for the next one.
    first = [perturbed_copy(PYTEST_FILE, t, f"{t}_x", random.Random(3))
             for t in ("test_area", "test_scaled", "test_name")]
    again = [perturbed_copy(PYTEST_FILE, t, f"{t}_x", random.Random(3))
             for t in ("test_area", "test_scaled", "test_name")]
    assert first == again and all(first)
    assert defined_names(PYTEST_FILE) == {"area", "test_area", "test_scaled", "test_name"}
    assert "test_area_x" in defined_names(first[0])


def test_a_unittest_method_is_copied_into_its_class():
    new = perturbed_copy(UNITTEST_FILE, "TestOps::test_plus", "test_plus_edge_cases",
                         random.Random(3))
    assert new is not None
    space: dict[str, object] = {}
    exec(compile(new, "<canary test>", "exec"), space)
    import unittest

    result = unittest.TestResult()
    cases = unittest.defaultTestLoader.loadTestsFromTestCase(space["TestOps"])  # type: ignore[arg-type]
    cases.run(result)
    failed = [t.id().rsplit(".", 1)[-1] for t, _ in result.failures]
    assert result.testsRun == 3 and failed == ["test_plus_edge_cases"], result.errors


@pytest.mark.parametrize("source", [
    "import pytest\n\n\n@pytest.mark.parametrize('x', [1])\ndef test_p(x):\n"
    "    assert x == 1\n",
    "def test_p():\n    if True:\n        return\n    assert 1 == 1\n",
    "def test_p():\n    assert len([]) == len(())\n",
])
def test_tests_that_cannot_be_copied_safely_are_refused(source):
    assert perturbed_copy(source, "test_p", "test_p_errors", random.Random(0)) is None
