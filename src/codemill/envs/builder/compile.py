"""Byte-compile a finished venv on the host, with the trusted base interpreter.

Why: the venv is read-only in every sandbox, so without bytecode each test run would
compile pytest and the dependencies again (seconds per run). Why here and not in the build
sandbox: bytecode is not reproducible (marshal's reference flags depend on what the
compiling process did before), so it cannot be part of the digest that decides whether
two builds may share one venv, and bytecode a build wrote itself could say anything
(``unchecked-hash`` pycs are used without looking at the source). So every
``__pycache__`` a build left is deleted, and the pycs are made again from the venv's
sources by the interpreter the venv is based on, run isolated (``-I -S``: no site, no
``.pth``, nothing of the venv executes) by a script of ours that never follows a link.
Compiling parses source; it runs none of it. The digest then covers the sources and
leaves ``__pycache__`` out, and a shared venv's bytecode is always ours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from codemill.core.errors import BuildError

CACHE_DIR = "__pycache__"

_SCRIPT = r"""
import importlib.util, os, py_compile, sys
root, inside = sys.argv[1], sys.argv[2]
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
done = 0
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames
                         if d != "__pycache__" and not os.path.islink(os.path.join(dirpath, d)))
    for name in sorted(filenames):
        src = os.path.join(dirpath, name)
        if not name.endswith(".py") or os.path.islink(src) or not os.path.isfile(src):
            continue
        try:
            py_compile.compile(src, cfile=importlib.util.cache_from_source(src),
                               dfile=inside + src[len(root):], doraise=True,
                               invalidation_mode=mode)
            done += 1
        except Exception:
            pass  # a file that does not parse (Python 2 leftovers) stays uncompiled
print(done)
"""


def drop_caches(root: Path) -> int:
    """Delete every ``__pycache__`` entry under ``root`` (dir, file or link), never
    following links; how many were removed."""
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            if name != CACHE_DIR:
                continue
            path = os.path.join(dirpath, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed += 1
        dirnames[:] = [d for d in dirnames if d != CACHE_DIR]
    return removed


def recompile(venv: Path, python: str, inside: str = "/env", timeout_s: float = 900) -> int:
    """Replace the venv's bytecode with bytecode compiled here by ``python`` (the venv's
    base interpreter); the number of modules compiled. Paths inside the pycs read
    ``inside`` (where sandboxes mount the venv), so staging dirs leave no trace."""
    lib = Path(venv) / "lib"
    if not lib.is_dir() or lib.is_symlink():
        return 0
    drop_caches(Path(venv))
    try:
        proc = subprocess.run([python, "-I", "-S", "-B", "-c", _SCRIPT, str(lib),
                               f"{inside}/lib"], capture_output=True, text=True,
                              timeout=timeout_s, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError("byte-compiling the environment failed", str(exc)) from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError("byte-compiling the environment failed", tail)
    return int(proc.stdout.strip() or 0)
