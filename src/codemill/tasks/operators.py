"""The mutation operators: twelve kinds of small, realistic bugs.

Each operator takes a function (``FuncInfo``) and the module's ``SourceIndex`` and yields
``(edits, description)`` pairs. Operators rewrite the smallest span they can: an operator
token between two operands, one constant, one expression. When a token cannot be located
unambiguously (a comment between operands, say) the site is skipped rather than guessed.

| kind                | example                                   |
|---------------------|-------------------------------------------|
| compare_flip        | ``a < b`` -> ``a <= b``; ``==`` -> ``!=``  |
| arith_swap          | ``a + b`` -> ``a - b``; ``x += 1`` -> ``x -= 1`` |
| bool_swap           | ``a and b`` -> ``a or b``                 |
| const_off_by_one    | ``n - 1`` -> ``n - 2``                    |
| slice_off_by_one    | ``xs[:n]`` -> ``xs[:n - 1]``               |
| negate_condition    | ``if ok:`` -> ``if not ok:``              |
| remove_statement    | ``total += x`` -> ``pass``                |
| remove_return       | ``return x`` -> ``return None``           |
| swap_args           | ``f(a, b)`` -> ``f(b, a)``                |
| wrong_variable      | ``use(width)`` -> ``use(height)``         |
| change_default      | ``def f(n=3)`` -> ``def f(n=4)``          |
| swallow_exception   | ``raise ValueError(...)`` -> ``pass``     |
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator

from codemill.tasks.sites import Edit, FuncInfo, SourceIndex

Found = Iterator[tuple[list[Edit], str]]
Operator = Callable[[FuncInfo, SourceIndex], Found]

_COMPARE = {
    ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="), ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"), ast.In: ("in", "not in"), ast.NotIn: ("not in", "in"),
}
_ARITH = {
    ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*"),
    ast.FloorDiv: ("//", "/"), ast.Mod: ("%", "//"), ast.Pow: ("**", "*"),
    ast.LShift: ("<<", ">>"), ast.RShift: (">>", "<<"), ast.BitAnd: ("&", "|"),
    ast.BitOr: ("|", "&"),
}
_SIMPLE = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.Compare)


def _token_pattern(token: str) -> str:
    if token[0].isalpha():
        return r"\b" + r"\s+".join(token.split()) + r"\b"
    # an operator token not glued to other operator characters (`<` is not part of `<=`)
    return r"(?<![<>=!*/%&|^~+\-])" + re.escape(token) + r"(?![<>=*/&|])"


def _locate(idx: SourceIndex, start: int, end: int, token: str) -> tuple[int, int] | None:
    """The one occurrence of ``token`` in source[start:end], a gap that may hold only
    whitespace, parentheses and line continuations besides it."""
    gap = idx.source[start:end]
    hits = list(re.finditer(_token_pattern(token), gap))
    if len(hits) != 1:
        return None
    m = hits[0]
    rest = gap[: m.start()] + gap[m.end() :]
    if not re.fullmatch(r"[\s()\\]*", rest):
        return None
    return start + m.start(), start + m.end()


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))
    )


def _int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def compare_flip(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if not isinstance(node, ast.Compare):
            continue
        for i, op in enumerate(node.ops):
            old, new = _COMPARE[type(op)]
            left = node.left if i == 0 else node.comparators[i - 1]
            right = node.comparators[i]
            at = _locate(idx, idx.span(left)[1], idx.span(right)[0], old)
            if at:
                yield [Edit(at[0], at[1], new)], f"`{old}` -> `{new}`"


def arith_swap(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            if _is_text(node.left) or _is_text(node.right):
                continue  # string concatenation/formatting: not arithmetic
            old, new = _ARITH[type(node.op)]
            at = _locate(idx, idx.span(node.left)[1], idx.span(node.right)[0], old)
            if at:
                yield [Edit(at[0], at[1], new)], f"`{old}` -> `{new}`"
        elif isinstance(node, ast.AugAssign) and type(node.op) in _ARITH:
            if _is_text(node.value):
                continue
            old, new = (t + "=" for t in _ARITH[type(node.op)])
            at = _locate(idx, idx.span(node.target)[1], idx.span(node.value)[0], old)
            if at:
                yield [Edit(at[0], at[1], new)], f"`{old}` -> `{new}`"


def bool_swap(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if isinstance(node, ast.BoolOp):
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            at = _locate(idx, idx.span(node.values[0])[1], idx.span(node.values[1])[0], old)
            if at:
                yield [Edit(at[0], at[1], new)], f"`{old}` -> `{new}`"


def _slice_bounds(fn: FuncInfo) -> set[int]:
    return {id(b) for n in fn.own if isinstance(n, ast.Slice)
            for b in (n.lower, n.upper, n.step) if b is not None}


def const_off_by_one(fn: FuncInfo, idx: SourceIndex) -> Found:
    in_slices = _slice_bounds(fn)
    for node in fn.own:
        if _int(node) and id(node) not in in_slices:
            value = node.value  # type: ignore[attr-defined]
            new = value + 1 if value == 0 else value - 1
            a, b = idx.span(node)
            yield [Edit(a, b, str(new))], f"`{value}` -> `{new}`"


def slice_off_by_one(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if not isinstance(node, ast.Slice):
            continue
        for bound, delta in ((node.lower, 1), (node.upper, -1)):
            if bound is None:
                continue
            text = idx.text(bound)
            if _int(bound):
                new = str(bound.value + (delta if bound.value + delta >= 0 else -delta))
            elif isinstance(bound, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
                new = f"{text} {'+' if delta > 0 else '-'} 1"
            else:
                new = f"({text}) {'+' if delta > 0 else '-'} 1"
            a, b = idx.span(bound)
            yield [Edit(a, b, new)], f"slice bound `{text}` -> `{new}`"


def negate_condition(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if not isinstance(node, (ast.If, ast.While, ast.IfExp)):
            continue
        test = node.test
        text = idx.text(test)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            new = idx.text(test.operand)
            if isinstance(test.operand, (ast.BoolOp, ast.IfExp, ast.NamedExpr, ast.Lambda)):
                new = f"({new})"
        elif isinstance(test, _SIMPLE):
            new = f"not {text}"
        else:
            new = f"not ({text})"
        a, b = idx.span(test)
        yield [Edit(a, b, new)], f"condition `{text}` negated"


def remove_statement(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        removable = isinstance(node, (ast.Assign, ast.AugAssign)) or (
            isinstance(node, ast.AnnAssign) and node.value is not None
        ) or (isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)))
        if removable:
            a, b = idx.span(node)
            first = idx.source[a:b].splitlines()[0]
            yield [Edit(a, b, "pass")], f"statement `{first}` removed"


def remove_return(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if isinstance(node, ast.Return) and node.value is not None:
            if isinstance(node.value, ast.Constant) and node.value.value is None:
                continue
            a, b = idx.span(node.value)
            yield [Edit(a, b, "None")], f"`return {idx.source[a:b][:40]}` -> `return None`"


def swap_args(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if not isinstance(node, ast.Call) or len(node.args) < 2:
            continue
        first, second = node.args[0], node.args[1]
        if isinstance(first, ast.Starred) or isinstance(second, ast.Starred):
            continue
        t1, t2 = idx.text(first), idx.text(second)
        if t1 == t2:
            continue
        (a1, b1), (a2, b2) = idx.span(first), idx.span(second)
        yield [Edit(a1, b1, t2), Edit(a2, b2, t1)], f"arguments `{t1}` and `{t2}` swapped"


def _bindings(fn: FuncInfo) -> dict[str, tuple[int, str | None]]:
    """name -> (line where first bound, annotation text or None); parameters bind at 0."""
    a = fn.node.args
    out: dict[str, tuple[int, str | None]] = {}
    for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
        out[arg.arg] = (0, ast.unparse(arg.annotation) if arg.annotation else None)
    for node in fn.own:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in out:
            out[node.id] = (node.lineno, None)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.setdefault(node.target.id, (node.lineno, ast.unparse(node.annotation)))
    return out


def wrong_variable(fn: FuncInfo, idx: SourceIndex) -> Found:
    bound = _bindings(fn)
    called = {id(n.func) for n in fn.own if isinstance(n, ast.Call)}
    for node in fn.own:
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        if node.id not in bound or node.id in ("self", "cls") or id(node) in called:
            continue
        line, ann = bound[node.id]
        # same type as far as we can tell (same annotation), bound before this use;
        # the nearest such binding reads most like a slip of the keyboard
        options = [
            (abs(node.lineno - ln), name) for name, (ln, other) in bound.items()
            if name not in (node.id, "self", "cls") and other == ann and ln < node.lineno
        ]
        if options:
            _, name = min(options)
            a, b = idx.span(node)
            yield [Edit(a, b, name)], f"`{node.id}` -> `{name}`"


def change_default(fn: FuncInfo, idx: SourceIndex) -> Found:
    a = fn.node.args
    for d in [*a.defaults, *(k for k in a.kw_defaults if k is not None)]:
        if not isinstance(d, ast.Constant) or d.value is None:
            continue
        v = d.value
        if isinstance(v, bool):
            new = repr(not v)
        elif isinstance(v, (int, float)):
            new = repr(v + 1)
        elif isinstance(v, str):
            new = '""' if v else '"x"'
        else:
            continue
        s, e = idx.span(d)
        yield [Edit(s, e, new)], f"default `{idx.source[s:e]}` -> `{new}`"


def swallow_exception(fn: FuncInfo, idx: SourceIndex) -> Found:
    for node in fn.own:
        if isinstance(node, ast.Raise) and node.exc is not None:
            a, b = idx.span(node)
            yield [Edit(a, b, "pass")], f"`{idx.source[a:b][:60]}` swallowed"
        elif isinstance(node, ast.ExceptHandler) and any(
                isinstance(n, ast.Raise) for s in node.body for n in ast.walk(s)):
            a, b = idx.span(node.body[0])[0], idx.span(node.body[-1])[1]
            yield [Edit(a, b, "pass")], "exception handler body replaced by `pass`"


OPERATORS: dict[str, Operator] = {
    "compare_flip": compare_flip,
    "arith_swap": arith_swap,
    "bool_swap": bool_swap,
    "const_off_by_one": const_off_by_one,
    "slice_off_by_one": slice_off_by_one,
    "negate_condition": negate_condition,
    "remove_statement": remove_statement,
    "remove_return": remove_return,
    "swap_args": swap_args,
    "wrong_variable": wrong_variable,
    "change_default": change_default,
    "swallow_exception": swallow_exception,
}
