"""Node ids in the order a whole-suite run of pytest reaches them.

``run_order(selection, collected)`` is the exact one: ``collected`` is what pytest itself
listed for the whole suite (``PytestRunner.collect``), so every rule of the project's pytest
version and plugins holds (pytest before 8 lists a directory's files before its
subdirectories, pytest 8 sorts them together by name; a ``unittest.TestCase``'s methods
come sorted by name, not in the order they are defined; a conftest may reorder items).
``collection_order`` is the fallback when pytest could not list the suite: a reading of
the sources, described below.

pytest runs node ids given on its command line in argument order. Validation runs the whole
suite, in collection order, and a task's PASS_TO_PASS lists what passed there; some suites
depend on that order (a test that sets a module attribute breaks one that runs after it),
so the same tests run in another order (FAIL_TO_PASS first, each list sorted) can fail an
honest fix. ``collection_order`` sorts node ids as pytest collects them: files by path, a
directory's entries by name, and within a file by where each test's definition starts (a
class's line, then a method's within it). Parametrized variants and ids it cannot place
keep their relative order, the unplaced after the placed of their file.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from codemill.core import pyast

_UNPLACED = 10 ** 9


def run_order(selection: Sequence[str], collected: Sequence[str]) -> list[str]:
    """``selection`` in the order of ``collected``. An id pytest did not list (a variant
    whose parameters are named at run time) goes after its file's listed tests, or at the
    end when the file was not listed; such ids keep their relative order."""
    index = {node_id: i for i, node_id in enumerate(collected)}
    file_end: dict[str, int] = {}
    for i, node_id in enumerate(collected):
        file_end[node_id.partition("::")[0]] = i

    def key(item: tuple[int, str]) -> tuple[int, int]:
        at, node_id = item
        pos = index.get(node_id)
        if pos is None:
            pos = file_end.get(node_id.partition("::")[0], len(collected))
            return pos, 1 + at
        return pos, 0

    return [node_id for _, node_id in sorted(enumerate(selection), key=key)]


def collection_order(selection: Sequence[str],
                     read: Callable[[str], str | None]) -> list[str]:
    """``selection`` in collection order; ``read(path)`` gives a test file's source (None
    when it cannot be read). Each file is read once."""
    defined: dict[str, dict[tuple[str, ...], int]] = {}

    def key(item: tuple[int, str]) -> tuple:
        index, node_id = item
        path, _, rest = node_id.partition("::")
        if path not in defined:
            text = read(path) if path.endswith(".py") else None
            defined[path] = definitions(text) if text is not None else {}
        names = tuple(rest.split("[", 1)[0].split("::")) if rest else ()
        lines = tuple(defined[path].get(names[:depth], _UNPLACED)
                      for depth in range(1, len(names) + 1))
        return PurePosixPath(path).parts, lines, index

    return [node_id for _, node_id in sorted(enumerate(selection), key=key)]


def definitions(source: str) -> dict[tuple[str, ...], int]:
    """Line of each class and function of ``source`` by its qualified name: ``("test_x",)``,
    ``("TestA", "test_y")``; empty when it does not parse."""
    try:
        tree = pyast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    out: dict[tuple[str, ...], int] = {}

    def visit(body: list[ast.stmt], prefix: tuple[str, ...]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = (*prefix, node.name)
                out.setdefault(name, node.lineno)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name)

    visit(tree.body, ())
    return out
