"""Read ``setup.py`` with ``ast`` only: the literal arguments of its ``setup(...)`` call.

A ``setup.py`` is a program; running it on the host would run untrusted code. Most of them
pass literals (or names bound to literals at module level) for the fields detection needs,
so a small constant folder over the syntax tree recovers ``python_requires``,
``install_requires``, ``extras_require``, ``tests_require``, ``classifiers``, ``name`` and
``version`` in the common cases and reports nothing (never guesses) otherwise.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from codemill.core import pyast

FIELDS = ("name", "version", "python_requires", "install_requires", "extras_require",
          "tests_require", "classifiers", "setup_requires", "use_scm_version", "pbr")

_REQ_FILE = re.compile(
    r"^[\w./-]*requirements[\w./-]*\.(txt|in)$|^[\w./-]*(test|dev)[\w./-]*\.txt$")


class _Unknown(ValueError):
    """A value that is not a constant expression."""


def fold_constant(node: ast.AST, names: dict[str, ast.AST], depth: int = 0) -> Any:
    """The value of a constant expression (literals, names bound to them, ``+``, ``dict()``);
    raises ``ValueError`` for anything that would need running code."""
    if depth > 20:
        raise _Unknown

    def sub(child: ast.AST) -> Any:
        return fold_constant(child, names, depth + 1)

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return fold_constant(names[node.id], names, depth + 1)
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise _Unknown
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        out: list[Any] = []
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                out += list(fold_constant(elt.value, names, depth + 1))
            else:
                out.append(fold_constant(elt, names, depth + 1))
        return out
    if isinstance(node, ast.Dict):
        result: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                result.update(fold_constant(value, names, depth + 1))
            else:
                result[sub(key)] = sub(value)
        return result
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return sub(node.left) + sub(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "dict" and not node.args:
            return {kw.arg: fold_constant(kw.value, names, depth + 1) for kw in node.keywords
                    if kw.arg is not None}
        if node.func.id in ("list", "tuple", "sorted", "set") and len(node.args) == 1:
            return list(fold_constant(node.args[0], names, depth + 1))
    raise _Unknown


def module_bindings(tree: ast.Module) -> dict[str, ast.AST]:
    """Simple ``name = expr`` bindings anywhere in the file (last one wins), plus
    ``name += expr`` folded in as concatenation."""
    names: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                names[target.id] = node.value
        elif (isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name)
              and isinstance(node.op, ast.Add) and node.target.id in names):
            names[node.target.id] = ast.BinOp(
                left=names[node.target.id], op=ast.Add(), right=node.value)
    return names


def _setup_call(tree: ast.Module) -> ast.Call | None:
    calls = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and (
            (isinstance(n.func, ast.Name) and n.func.id == "setup")
            or (isinstance(n.func, ast.Attribute) and n.func.attr == "setup"))
    ]
    return max(calls, key=lambda c: len(c.keywords), default=None)


def parse_setup_py(text: str) -> dict[str, Any]:
    """The constant ``setup()`` fields of a setup.py, plus ``uses`` (version tools seen in
    imports) and ``requirement_files`` (requirements-like file names it mentions)."""
    try:
        tree = pyast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    names = module_bindings(tree)
    out: dict[str, Any] = {}
    call = _setup_call(tree)
    if call is not None:
        keywords = list(call.keywords)
        for kw in call.keywords:  # setup(**kwargs) with kwargs bound to a dict literal
            if kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id in names:
                bound = names[kw.value.id]
                if isinstance(bound, ast.Dict):
                    keywords += [ast.keyword(arg=k.value, value=v)
                                 for k, v in zip(bound.keys, bound.values, strict=True)
                                 if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        for kw in keywords:
            if kw.arg in FIELDS:
                try:
                    out[kw.arg] = fold_constant(kw.value, names)
                except (_Unknown, TypeError, ValueError):
                    if kw.arg in ("use_scm_version", "pbr"):
                        out[kw.arg] = True  # present but computed: still in use
    uses = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            for mod in mods:
                root = mod.split(".")[0]
                if root in ("versioneer", "setuptools_scm", "pbr"):
                    uses.add(root)
    out["uses"] = sorted(uses)
    out["requirement_files"] = sorted({
        n.value for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) < 200
        and _REQ_FILE.match(n.value)
    })
    return out
