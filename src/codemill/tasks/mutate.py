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
from collections.abc import Iterable
from dataclasses import dataclass

from codemill.core import pyast
from codemill.core.errors import TaskError
from codemill.core.ids import content_id
from codemill.tasks.operators import OPERATORS
from codemill.tasks.sites import Edit, FuncInfo, SourceIndex, apply_edits, functions

__all__ = ["Edit", "FuncInfo", "Mutation", "SourceIndex", "apply_edits", "check_mutation",
           "enumerate_mutations", "functions"]


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


def enumerate_mutations(
    path: str, source: str, kinds: Iterable[str] | None = None
) -> list[Mutation]:
    """All candidate mutations of a module, in source order; [] when it does not parse."""
    try:
        tree = pyast.parse(source)
    except (SyntaxError, ValueError):
        return []
    wanted = list(OPERATORS) if kinds is None else list(kinds)
    unknown = [k for k in wanted if k not in OPERATORS]
    if unknown:
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
        new_tree = pyast.parse(new)
        compile(new_tree, mutation.path, "exec")
    except (SyntaxError, ValueError):
        return "does not compile"
    if ast.dump(new_tree) == ast.dump(pyast.parse(source)):
        return "no semantic change"
    return None
