"""A canary made from a test of the task: the same test, renamed, one expectation changed.

``perturbed_copy(source, qualname, new_name, rng)`` finds the test function ``qualname``
(``test_x`` or ``TestCase::test_x``) in a test file's source and returns the file with a
copy of it inserted right after it: the same decorators, fixtures, body and indentation,
its name ``new_name``, and its last top-level expectation changed (``assert X == C`` or
``self.assertEqual(X, C)`` with ``C`` a literal: ``C`` becomes another literal of the same
type). The original passes in the gold state, so ``X == C``; the copy asks ``X == C'`` with
``C' != C`` and fails there, and a candidate that made it pass would fail the original. The
copy uses the names, imports and fixtures of its neighbours because it is one of them.

Pure (text in, text out). Tests that cannot be copied this way (parametrized, with a
``return`` or ``yield``, no top-level literal expectation, a nested def) give None, and the
caller picks another or falls back to a written canary (``codemill.rewards.canary``).
"""

from __future__ import annotations

import ast
import functools
import random
import re
from collections.abc import Iterator

from codemill.core import pyast

_EQUALS = ("assertEqual", "assertEquals", "failUnlessEqual")


def _find(tree: ast.Module, qualname: str) -> ast.FunctionDef | None:
    parts = qualname.split("::")
    body: list[ast.stmt] = tree.body
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        node = next((n for n in body if isinstance(n, ast.ClassDef if not last
                                                   else ast.FunctionDef) and n.name == part),
                    None)
        if node is None:
            return None
        if last:
            return node  # type: ignore[return-value]
        body = node.body
    return None


def _literal(node: ast.expr) -> object:
    """The value of a literal (constants, signed numbers, tuples/lists of them)."""
    return ast.literal_eval(node)


def _expectations(func: ast.FunctionDef) -> Iterator[ast.expr]:
    """The literal sides of the top-level equality expectations, last first."""
    for stmt in reversed(func.body):
        sides: list[ast.expr] = []
        if (isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare)
                and len(stmt.test.ops) == 1 and isinstance(stmt.test.ops[0], ast.Eq)):
            sides = [stmt.test.comparators[0], stmt.test.left]
        elif (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
              and isinstance(stmt.value.func, ast.Attribute)
              and stmt.value.func.attr in _EQUALS and len(stmt.value.args) >= 2):
            sides = [stmt.value.args[1], stmt.value.args[0]]
        for side in sides:
            try:
                value = _literal(side)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if _perturb(value, random.Random(0)) is not None:
                yield side
                break


def _perturb(value: object, rng: random.Random) -> object:
    """Another literal of the same kind, never equal to ``value``; None when not handled."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice((-1, 1)) * rng.randint(1, 9)
    if isinstance(value, float):
        return value + rng.choice((-1, 1)) * rng.randint(1, 9) / 4 if value == value else None
    if isinstance(value, str):
        return value + rng.choice("aeinorst") if not value else (
            value[:-1] + ("x" if value[-1] != "x" else "y"))
    if isinstance(value, bytes):
        return value + b"x" if not value else value[:-1] + (b"x" if value[-1:] != b"x"
                                                            else b"y")
    if value is None:
        return 0
    if isinstance(value, (tuple, list)):
        if not value:
            return type(value)([0])
        i = rng.randrange(len(value))
        new = _perturb(value[i], rng)
        if new is None:
            return None
        out = list(value)
        out[i] = new
        return type(value)(out)
    return None


def copyable(func: ast.FunctionDef) -> bool:
    if any(isinstance(d, ast.Call) and "parametrize" in ast.unparse(d.func)
           for d in func.decorator_list):
        return False
    for node in ast.walk(func):
        if node is not func and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                  ast.Lambda, ast.ClassDef)):
            return False
        if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)):
            return False
    return True


@functools.lru_cache(maxsize=4)
def _parsed(source: str) -> ast.Module | None:
    """The syntax tree of ``source``, None when it does not parse. Cached: planting asks for
    the same file's tree once per test it tries, often dozens of times, and a test file of
    a few thousand lines takes a tenth of a second to parse. Read-only for callers."""
    try:
        return pyast.parse(source)
    except (SyntaxError, ValueError):
        return None


def perturbed_copy(source: str, qualname: str, new_name: str,
                   rng: random.Random) -> str | None:
    """``source`` with a perturbed copy of ``qualname`` named ``new_name`` right after it;
    None when that test cannot be copied this way (module docstring)."""
    tree = _parsed(source)
    if tree is None:
        return None
    func = _find(tree, qualname)
    if func is None or not copyable(func) or func.end_lineno is None:
        return None
    side = next(_expectations(func), None)
    if side is None or side.end_lineno is None or side.end_col_offset is None:
        return None
    new_value = _perturb(_literal(side), rng)
    lines = source.splitlines(keepends=True)
    start = min([func.lineno, *(d.lineno for d in func.decorator_list)]) - 1
    block = [line.encode() for line in lines[start:func.end_lineno]]
    # Splice the new literal in (ast offsets are UTF-8 byte offsets) on the copy's lines.
    first, last = side.lineno - 1 - start, side.end_lineno - 1 - start
    head, tail = block[first][:side.col_offset], block[last][side.end_col_offset:]
    block[first:last + 1] = [head + repr(new_value).encode() + tail]
    text = b"".join(block).decode()
    text, renamed = re.subn(rf"(\bdef\s+){re.escape(func.name)}\b", rf"\g<1>{new_name}",
                            text, count=1)
    if not renamed:
        return None
    if not text.endswith("\n"):
        text += "\n"
    indent = re.match(r"[ \t]*", lines[func.lineno - 1]).group(0)  # type: ignore[union-attr]
    gap = "\n" if indent else "\n\n"
    before = "".join(lines[:func.end_lineno])
    if not before.endswith("\n"):
        before += "\n"
    return before + gap + text + "".join(lines[func.end_lineno:])


def defined_names(source: str) -> set[str]:
    """Every function and class name ``source`` defines (a canary must take none)."""
    tree = _parsed(source)
    if tree is None:
        return set()
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
