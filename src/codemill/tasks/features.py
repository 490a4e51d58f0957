"""Feature tasks: take a tested function away and ask for it back.

Two shapes, both pure functions over source text:

* ``stub_body``: the function keeps its decorators, signature and docstring; its body
  becomes ``raise NotImplementedError``. The agent implements it from those and from its
  call sites.
* ``remove_function``: the whole definition goes (decorators included); the agent writes
  it from the call sites and the problem statement's description of the signature.

Each returns a ``FeatureCut``: the new module text plus what the problem statement may say
(signature, docstring, call sites in *source* files; never the removed body and never a
test). Only functions with at least one statement of real code are cut: a function whose
body is already ``pass``/``...``/``raise NotImplementedError`` has nothing to implement.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from codemill.core import pyast
from codemill.tasks.mutate import FuncInfo, SourceIndex, functions


@dataclass(frozen=True)
class FeatureCut:
    kind: str
    """``stub_body`` or ``remove_function``."""
    path: str
    function: str
    new_source: str
    signature: str
    docstring: str
    lines: tuple[int, int]
    """The function's lines in the original file (for coverage and difficulty)."""
    n_body_lines: int


def _trivial(fn: FuncInfo) -> bool:
    body = fn.node.body[1:] if ast.get_docstring(fn.node, clean=False) is not None else \
        fn.node.body
    if not body:
        return True
    if len(body) == 1:
        s = body[0]
        if isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(
                s.value, ast.Constant) and s.value.value is Ellipsis):
            return True
        if isinstance(s, ast.Raise) and s.exc is not None and "NotImplementedError" in \
                ast.unparse(s.exc):
            return True
    return False


def signature(fn: FuncInfo) -> str:
    """``def name(args) -> ret`` as written in the source (decorators excluded)."""
    node = fn.node
    head = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    text = f"{head} {node.name}({ast.unparse(node.args)})"
    if node.returns is not None:
        text += f" -> {ast.unparse(node.returns)}"
    return text


def _indent_of(idx: SourceIndex, line: int) -> str:
    text = idx.source[idx.starts[line - 1] :].split("\n", 1)[0]
    return text[: len(text) - len(text.lstrip())]


def _header_end(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Last line of the ``def`` header (arguments and return annotation)."""
    parts: list[ast.AST] = [node.args, *(n for n in ast.walk(node.args) if hasattr(n, "lineno"))]
    if node.returns is not None:
        parts.append(node.returns)
    ends = [getattr(p, "end_lineno", None) or node.lineno for p in parts]
    return min(max([node.lineno, *ends]), node.body[0].lineno - 1)


def _eol(idx: SourceIndex) -> str:
    return "\r\n" if "\r\n" in idx.source[:2000] else "\n"


def stub_body(path: str, source: str, fn: FuncInfo, idx: SourceIndex) -> FeatureCut | None:
    node = fn.node
    doc = ast.get_docstring(node, clean=False)
    body = node.body[1:] if doc is not None else node.body
    if _trivial(fn):
        return None
    first, last = body[0], body[-1]
    if first.lineno == node.lineno or (doc is not None and first.lineno == node.body[0].end_lineno):
        # body shares a line with the header or docstring: replace the statements' span
        a, b = idx.span(first)[0], idx.span(last)[1]
        new = source[:a] + "raise NotImplementedError" + source[b:]
    else:
        # whole lines, so comments that describe the implementation go with it
        start_line = (node.body[0].end_lineno or first.lineno) + 1 if doc is not None \
            else _header_end(node) + 1
        a = idx.starts[start_line - 1]
        end_line = last.end_lineno or last.lineno
        b = idx.starts[end_line] if end_line < len(idx.starts) else len(source)
        keep_eol = _eol(idx) if source[a:b].endswith(("\n", "\r")) else ""
        new = (source[:a] + _indent_of(idx, first.lineno) + "raise NotImplementedError"
               + keep_eol + source[b:])
    n_body = (last.end_lineno or last.lineno) - first.lineno + 1
    return FeatureCut("stub_body", path, fn.qualname, new, signature(fn), doc or "",
                      (node.lineno, node.end_lineno or node.lineno), n_body)


def remove_function(path: str, source: str, fn: FuncInfo, idx: SourceIndex,
                    parent_body: list[ast.stmt]) -> FeatureCut | None:
    node = fn.node
    if _trivial(fn):
        return None
    start_line = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    end_line = node.end_lineno or node.lineno
    a = idx.starts[start_line - 1]
    b = idx.starts[end_line] if end_line < len(idx.starts) else len(source)
    if source[a : idx.offset(start_line, 0) + len(_indent_of(idx, start_line))].strip():
        return None  # something else shares the first line; do not guess
    only_child = len(parent_body) == 1
    filler = _indent_of(idx, start_line) + "pass" + _eol(idx) if only_child else ""
    new = source[:a] + filler + source[b:]
    doc = ast.get_docstring(node, clean=False) or ""
    return FeatureCut("remove_function", path, fn.qualname, new, signature(fn), doc,
                      (start_line, end_line), end_line - node.body[0].lineno + 1)


def _parents(tree: ast.Module) -> Mapping[int, list[ast.stmt]]:
    out: dict[int, list[ast.stmt]] = {}
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list):
                for s in stmts:
                    if isinstance(s, ast.stmt):
                        out[id(s)] = stmts
    return out


def feature_cuts(path: str, source: str, kinds: tuple[str, ...] = ("stub_body",)) -> \
        Iterator[FeatureCut]:
    """Every feature cut of a module's non-trivial, non-nested functions."""
    try:
        tree = pyast.parse(source)
    except (SyntaxError, ValueError):
        return
    idx = SourceIndex(source)
    parents = _parents(tree)
    for fn in functions(tree):
        if fn.node.name.startswith("__") and fn.node.name.endswith("__") and \
                fn.node.name != "__init__":
            continue  # dunder protocols are better left to mutation tasks
        if "stub_body" in kinds:
            cut = stub_body(path, source, fn, idx)
            if cut:
                yield cut
        if "remove_function" in kinds:
            cut = remove_function(path, source, fn, idx, parents.get(id(fn.node), []))
            if cut:
                yield cut


def call_sites(name: str, sources: Mapping[str, str], limit: int = 5) -> list[str]:
    """``path:line: code`` for lines of source (non-test) files that call ``name``."""
    out: list[str] = []
    for path in sorted(sources):
        try:
            tree = pyast.parse(sources[path])
        except (SyntaxError, ValueError):
            continue
        lines = sources[path].splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(
                f, ast.Attribute) else None
            if called == name and node.lineno <= len(lines):
                out.append(f"{path}:{node.lineno}: {lines[node.lineno - 1].strip()}")
                if len(out) >= limit:
                    return out
    return out
