"""No module names a module of an upper layer in a string it could import by (a registry
entry, an ``importlib`` path): the layer contract of ``.importlinter`` would not see such
an import. Docstrings may mention upper layers; other string constants may not."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "codemill"
NAME = re.compile(r"\bcodemill\.([a-z_]+)")


def _layers() -> dict[str, int]:
    """Package -> layer index (0 = lowest) from the layers contract."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    rows = [r.strip() for r in cfg["importlinter:contract:layers"]["layers"].splitlines()
            if r.strip()]
    return {pkg.strip().removeprefix("codemill."): len(rows) - 1 - i
            for i, row in enumerate(rows) for pkg in row.split("|")}


def _strings(tree: ast.Module) -> list[tuple[int, str]]:
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}
    # A bare string statement after an assignment documents it: not an import path either.
    docs |= {id(n.value) for n in ast.walk(tree)
             if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_no_module_names_an_upper_layer_by_string() -> None:
    layers = _layers()
    found = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).parts
        own = layers.get(parts[0]) if len(parts) > 1 else None
        if own is None:
            continue
        for line, text in _strings(ast.parse(path.read_text())):
            for pkg in NAME.findall(text):
                if layers.get(pkg, -1) > own:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert found == []


def test_the_check_sees_a_registry_entry(tmp_path: Path) -> None:
    """The scan above would catch the registry ``core`` used to hold."""
    tree = ast.parse('"""doc: codemill.envs is fine here."""\n'
                     'SANDBOXES = {"bwrap": "codemill.sandbox.bwrap:BwrapSandbox"}\n')
    named = [pkg for _, text in _strings(tree) for pkg in NAME.findall(text)]
    assert named == ["sandbox"]
    assert _layers()["sandbox"] > _layers()["core"]
