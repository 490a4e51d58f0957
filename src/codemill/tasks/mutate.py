"""Minimal source mutations: what a mutation is, where it applies, and how it is checked.

A ``Mutation`` is a handful of character-span ``Edit``s on one file's text: only the text
of the changed node (or operator token) is rewritten, so formatting, comments and every
other line stay byte-identical and the resulting diff is as small as the bug. Spans come
from ``ast`` positions (``lineno``/``col_offset``/``end_*``, which count UTF-8 bytes; the
``SourceIndex`` converts them to character offsets).

Operators live in ``codemill.tasks.operators``; ``enumerate_mutations`` runs them over the
functions of a module (module-level code is never mutated: it runs at import time, where
no test owns it). ``check_mutation`` rejects a candidate that does not compile or that
leaves the AST unchanged, with the reason as a short string.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from codemill.core.ids import content_id

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Edit:
    start: int
    """Character offset in the source where the replaced text starts."""
    end: int
    text: str


@dataclass(frozen=True)
class Mutation:
    """One candidate bug: edits in one function of one file."""

    kind: str
    path: str
    function: str
    """Qualified name of the enclosing function (``Class.method``, ``outer.inner``)."""
    edits: tuple[Edit, ...]
    lines: tuple[int, int]
    """First and last line (1-based) the edits touch."""
    func_lines: tuple[int, int]
    """The enclosing function's lines, used when ``lines`` run at import time (defaults)."""
    description: str

    @property
    def mutation_id(self) -> str:
        return content_id(self.path, self.kind, [(e.start, e.end, e.text) for e in self.edits])

    def apply(self, source: str) -> str:
        return apply_edits(source, self.edits)


def apply_edits(source: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits (any order) to ``source``."""
    out = source
    last = len(source) + 1
    for e in sorted(edits, key=lambda e: e.start, reverse=True):
        if e.end > last:
            raise ValueError("overlapping edits")
        out = out[: e.start] + e.text + out[e.end :]
        last = e.start
    return out


class SourceIndex:
    """Maps ``ast`` positions (line, UTF-8 byte column) to character offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.starts = [0]
        for m in _EOL.finditer(source):
            self.starts.append(m.end())
        self._lines = [
            source[a:b] for a, b in zip(self.starts, [*self.starts[1:], len(source)], strict=True)
        ]

    def offset(self, lineno: int, col: int) -> int:
        line = self._lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def text(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.source[a:b]

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1


@dataclass
class FuncInfo:
    """A function and the nodes that belong to it (not to nested functions or classes)."""

    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    own: list[ast.AST]
    body_lines: tuple[int, int]


_SKIP_FIELDS = frozenset({"annotation", "returns", "type_comment", "decorator_list",
                          "type_params"})


def _docstring(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[0], ast.Expr) and isinstance(
        body[0].value, ast.Constant) and isinstance(body[0].value.value, str)


def _own_nodes(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    body = func.body[1:] if _docstring(func.body) else func.body
    out: list[ast.AST] = []
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # nested definitions are functions of their own
        out.append(node)
        if isinstance(node, ast.JoinedStr):
            continue  # positions inside f-strings are unreliable before Python 3.12
        children: list[ast.AST] = []
        for name, value in ast.iter_fields(node):
            if name in _SKIP_FIELDS:
                continue
            if isinstance(value, ast.AST):
                children.append(value)
            elif isinstance(value, list):
                children.extend(v for v in value if isinstance(v, ast.AST))
        stack.extend(reversed(children))
    return out


def functions(tree: ast.Module) -> Iterator[FuncInfo]:
    """Every function and method of a module with its qualified name, outermost first."""

    def walk(nodes: list[ast.stmt], prefix: str) -> Iterator[FuncInfo]:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{node.name}"
                first = node.body[0].lineno
                yield FuncInfo(qual, node, _own_nodes(node), (first, node.end_lineno or first))
                yield from walk(node.body, f"{qual}.")
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                # defs under `if TYPE_CHECKING`, try/except imports, etc.
                for field in ("body", "orelse", "finalbody"):
                    yield from walk(getattr(node, field, []), prefix)
                for h in getattr(node, "handlers", []):
                    yield from walk(h.body, prefix)

    yield from walk(tree.body, "")


def enumerate_mutations(
    path: str, source: str, kinds: Iterable[str] | None = None
) -> list[Mutation]:
    """All candidate mutations of a module, in source order; [] when it does not parse."""
    from codemill.tasks.operators import OPERATORS

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    wanted = list(OPERATORS) if kinds is None else list(kinds)
    unknown = [k for k in wanted if k not in OPERATORS]
    if unknown:
        from codemill.core.errors import TaskError

        raise TaskError(f"unknown mutation kinds: {', '.join(unknown)} "
                        f"(known: {', '.join(OPERATORS)})")
    idx = SourceIndex(source)
    out: list[Mutation] = []
    for fn in functions(tree):
        for kind in wanted:
            for edits, description in OPERATORS[kind](fn, idx):
                first = min(idx.line_of(e.start) for e in edits)
                last = max(idx.line_of(max(e.end - 1, e.start)) for e in edits)
                out.append(Mutation(kind, path, fn.qualname, tuple(edits), (first, last),
                                    fn.body_lines, description))
    out.sort(key=lambda m: (m.lines, m.kind, m.edits[0].start))
    return out


def check_mutation(source: str, mutation: Mutation) -> str | None:
    """None when the mutated module compiles and differs semantically; else a reason."""
    try:
        new = mutation.apply(source)
        new_tree = ast.parse(new)
        compile(new_tree, mutation.path, "exec")
    except (SyntaxError, ValueError):
        return "does not compile"
    if ast.dump(new_tree) == ast.dump(ast.parse(source)):
        return "no semantic change"
    return None
