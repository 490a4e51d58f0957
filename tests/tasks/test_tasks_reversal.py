"""Mutation reversals: patch-mode examples whose answer is the released line."""

from __future__ import annotations

from codemill.core.diffs import parse_diff
from codemill.rollouts.patch_mode import expert_answer, patch_prompt, read_answer
from codemill.tasks.coverage_map import CoverageMap
from codemill.tasks.patches import apply_patch
from codemill.tasks.reversal import reversal_examples

SOURCE = '''"""A small module."""


def clamp(x, low, high):
    """Keep x within [low, high]."""
    if x < low:
        return low
    if x > high:
        return high
    return x


def mean(values):
    total = 0
    for v in values:
        total = total + v
    return total / len(values)


def never_tested(a, b):
    return a - b
'''


def _cmap() -> CoverageMap:
    """Tests ``t_clamp`` run lines 6-11, ``t_mean`` lines 14-17; line 21 is run by none."""
    lines = {n: (0,) for n in range(6, 12)} | {n: (1,) for n in range(14, 18)}
    return CoverageMap("env", ("tests/test_m.py::t_clamp", "tests/test_m.py::t_mean"),
                       {"pkg/m.py": lines})


def test_each_example_answers_with_the_released_line_of_a_tested_function():
    examples = reversal_examples({"pkg/m.py": SOURCE}, _cmap(), want=50, seed=1)
    assert len(examples) >= 4
    assert len({e.example_id for e in examples}) == len(examples)
    for e in examples:
        change = parse_diff(e.gold_patch)[0]
        removed = [n for h in change.hunks for n, ln in enumerate(h.lines) if ln[:1] == "-"]
        assert len(removed) == 1  # one line, changed in place
        broken = e.context.files["pkg/m.py"]
        assert broken != SOURCE and broken.count("\n") == SOURCE.count("\n")
        # the gold patch restores the released module exactly
        assert apply_patch(e.gold_patch, lambda _p, b=broken: b.encode())["pkg/m.py"] == \
            SOURCE.encode()
        shown = {s.start + i for s in e.context.snippets for i in range(len(s.lines))}
        answer = expert_answer(e.context, e.gold_patch)
        assert answer is not None and read_answer(answer, e.context).ok
        line = int(answer.split(":", 1)[0])
        assert line in shown
        marks = [n for _, n in e.context.marked]
        assert not marks or line in marks  # marked lines always hold the changed one
        prompt = patch_prompt(e.statement, e.context)
        assert "may fail" in prompt and "tests/test_m.py::t_" in prompt
        assert SOURCE.splitlines()[line - 1] != broken.splitlines()[line - 1]


def test_no_function_gives_more_than_its_share_and_untested_code_gives_none():
    examples = reversal_examples({"pkg/m.py": SOURCE}, _cmap(), want=50, seed=2,
                                 per_function=1)
    lines = [int(expert_answer(e.context, e.gold_patch).split(":")[0]) for e in examples]
    assert len([n for n in lines if 6 <= n <= 11]) == 1
    assert len([n for n in lines if 14 <= n <= 17]) == 1
    assert not [n for n in lines if n >= 20]  # never_tested: no test runs it


def test_the_same_seed_gives_the_same_examples():
    a = reversal_examples({"pkg/m.py": SOURCE}, _cmap(), want=5, seed=3)
    b = reversal_examples({"pkg/m.py": SOURCE}, _cmap(), want=5, seed=3)
    assert [e.example_id for e in a] == [e.example_id for e in b]
    assert [e.context.marked for e in a] == [e.context.marked for e in b]
