"""Where mutations apply: character-span edits, a module's source index and its functions.

The vocabulary the mutation operators (``codemill.tasks.operators``) and mutations
(``codemill.tasks.mutate``) share; kept on its own so neither imports the other back.
``SourceIndex`` converts ``ast`` positions (UTF-8 byte columns) to character offsets;
``functions(tree)`` yields each function with the nodes it owns.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Edit:
    start: int
    """Character offset in the source where the replaced text starts."""
    end: int
    text: str


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
