"""``parse``: ``ast.parse`` that is safe to call from several threads of one process.

CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state. When a
conversion is interrupted (a garbage collection runs a finalizer that lets another thread
run) and that thread converts a tree too, the depth no longer matches and ``ast.parse``
raises ``SystemError: AST constructor recursion depth mismatch`` for valid source (cpython
gh-106905; reproduced here on 3.11.7 with four threads and finalizers). The grader parses
test files in many threads at once, and a grading that raised blamed the candidate's diff:
an honest fix graded 0. Every parse in codemill goes through this one lock instead.
"""

from __future__ import annotations

import ast
import threading

_lock = threading.Lock()


def parse(source: str | bytes) -> ast.Module:
    """``ast.parse(source)``, one conversion at a time in this process."""
    with _lock:
        return ast.parse(source)
