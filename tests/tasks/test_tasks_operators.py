"""Mutation operators: each kind yields compiling, semantically different programs with
minimal edits that keep formatting."""

import ast
import difflib

import pytest

from codemill.tasks.mutate import check_mutation, enumerate_mutations
from codemill.tasks.operators import OPERATORS

SAMPLE = '''"""Sample module."""
import math


def clamp(x: int, lo: int = 0, hi: int = 10) -> int:
    """Clamp x into [lo, hi]."""
    if x < lo:  # below the range
        return lo
    if x > hi and hi >= lo:
        return hi
    return x


def total(xs, scale=2, strict=True):
    acc = 0
    for x in xs[1:]:
        acc += x * scale
    if not xs:
        raise ValueError("empty")
    try:
        v = math.sqrt(acc)
    except ValueError:
        raise
    return max(v, acc - 1)


class Box:
    def area(self, width, height):
        # multiply the sides
        result = width * height
        return result if width else 0
'''


@pytest.mark.parametrize("kind", sorted(OPERATORS))
def test_each_operator_compiles_and_changes_the_program(kind):
    found = enumerate_mutations("sample.py", SAMPLE, kinds=[kind])
    assert found, f"{kind} found no site in the sample"
    for m in found:
        assert check_mutation(SAMPLE, m) is None, (kind, m.description)
        new = m.apply(SAMPLE)
        assert ast.dump(ast.parse(new)) != ast.dump(ast.parse(SAMPLE))
        # minimal: only the lines the mutation names differ, comments survive
        changed = [
            ln for ln in difflib.unified_diff(SAMPLE.splitlines(), new.splitlines(), n=0)
            if ln.startswith("-") and not ln.startswith("---")
        ]
        assert len(changed) == m.lines[1] - m.lines[0] + 1
        assert "# below the range" in new and "# multiply the sides" in new


def test_at_least_twelve_kinds():
    assert len(OPERATORS) >= 12


def test_only_the_operator_token_is_rewritten():
    src = "def f(a, b):\n    return (a  <  b)  # keep  spacing\n"
    (m,) = enumerate_mutations("m.py", src, kinds=["compare_flip"])
    assert m.apply(src) == "def f(a, b):\n    return (a  <=  b)  # keep  spacing\n"


def test_non_ascii_and_crlf_sources_map_columns_correctly():
    src = 'def f(s):\r\n    t = "héllo→" + s\r\n    return len(t) > 3\r\n'
    ms = enumerate_mutations("u.py", src, kinds=["compare_flip", "const_off_by_one"])
    outs = {m.apply(src) for m in ms}
    assert 'def f(s):\r\n    t = "héllo→" + s\r\n    return len(t) >= 3\r\n' in outs
    assert 'def f(s):\r\n    t = "héllo→" + s\r\n    return len(t) > 2\r\n' in outs


def test_module_level_code_and_docstrings_are_not_mutated():
    src = 'X = 1 + 2\n\ndef f():\n    """Doc 1 < 2."""\n    return X\n'
    ms = enumerate_mutations("m.py", src)
    assert all(m.function == "f" for m in ms)
    assert all(m.lines[0] >= 5 for m in ms)


def test_unparsable_source_yields_nothing():
    assert enumerate_mutations("bad.py", "def f(:\n") == []


def test_ambiguous_token_sites_are_skipped():
    src = "def f(a, b):\n    return (a  # a < b here\n            < b)\n"
    assert enumerate_mutations("m.py", src, kinds=["compare_flip"]) == []


def test_wrong_variable_respects_annotations_and_binding_order():
    src = ("def f(a: int, b: str, c: int):\n"
           "    return a + c\n")
    ms = enumerate_mutations("m.py", src, kinds=["wrong_variable"])
    assert {m.description for m in ms} == {"`a` -> `c`", "`c` -> `a`"}
