"""Starting a test runner so that nothing in the workspace is imported before it.

``python -m pytest`` puts the working directory first on ``sys.path``: a module the
candidate adds at the repository root (``json.py``, ``pluggy/``) is imported instead of the
real one, and pytest's plugin auto-loading reads the entry points of any ``*.dist-info``
folder on the path. ``PRELUDE`` (the start of every runner's ``python -c`` program) closes
both by construction, on every Python 3 the projects use (``-P`` needs 3.11):

1. every workspace entry (``''``, the working directory and anything under it, such as an
   editable install's ``/repo/src``) leaves ``sys.path`` while the runner is imported;
2. the runner imports itself and the environment's own pytest plugins (the ``pytest11``
   entry points of distributions outside the workspace, found while the workspace is off
   the path) and turns auto-loading off, so the run loads exactly those, by ``-p``;
3. the workspace comes back: the working directory just before the first
   ``site-packages`` entry (after the standard library, which it can then never shadow),
   the other workspace entries where they were.

When the project is itself a dependency of the runner (iniconfig, pluggy), installed from
the workspace, its installed paths come back before the runner is imported (the working
directory still stays out). What stays open: an installed module the runner has not
imported yet can still be shadowed by a workspace module of the same name; the grader
removes such new names (``codemill.rewards.shadow``).
"""

from __future__ import annotations

PRELUDE = r'''
import os as _os, sys as _sys
_cwd = _os.getcwd()


def _in_ws(p):
    p = _os.path.abspath(p or ".")
    return p == _cwd or p.startswith(_cwd.rstrip("/") + "/")


_orig = list(_sys.path)
_sys.path[:] = [p for p in _orig if not _in_ws(p)]


def _env_plugins():
    """Module names of the pytest11 entry points visible without the workspace."""
    try:
        from importlib import metadata as _md
    except ImportError:
        try:
            import importlib_metadata as _md
        except ImportError:
            _md = None
    eps = []
    if _md is not None:
        found = _md.entry_points()
        eps = (found.select(group="pytest11") if hasattr(found, "select")
               else found.get("pytest11", ()))
        eps = [e.value for e in eps]
    else:
        try:
            import pkg_resources
            eps = [e.module_name for e in pkg_resources.iter_entry_points("pytest11")]
        except ImportError:
            pass
    return list(dict.fromkeys(v.split(":")[0].strip() for v in eps if v))


def _restore_path():
    rest = [p for p in _orig if p not in ("", ".", _cwd)]
    at = next((i for i, p in enumerate(rest)
               if p.rstrip("/").endswith(("site-packages", "dist-packages"))), len(rest))
    _sys.path[:] = rest[:at] + [_cwd] + rest[at:]
'''

RECORD_OPENS = r'''
def _record_opens(out):
    """Write, at exit, every workspace file this process opened or imported (JSON list
    of paths relative to the working directory)."""
    import atexit, json
    seen = set()

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            p = _os.path.abspath(_os.fsdecode(args[0]))
            if _in_ws(p) and p != _cwd:
                seen.add(p)

    if hasattr(_sys, "addaudithook"):
        _sys.addaudithook(hook)

    def dump():
        for mod in list(_sys.modules.values()):
            f = getattr(mod, "__file__", None)
            if isinstance(f, str) and _in_ws(f):
                seen.add(_os.path.abspath(f))
        rel = sorted({_os.path.relpath(p, _cwd) for p in seen if _os.path.isfile(p)})
        with open(out, "w") as fh:
            json.dump(rel, fh)

    atexit.register(dump)
'''

PYTEST_START = PRELUDE + RECORD_OPENS + r'''
try:
    import pytest
except ImportError:
    # The project is one of the runner's own dependencies (iniconfig, pluggy, packaging),
    # installed from the workspace: the runner cannot start without it. Its installed
    # paths come back; the working directory stays out until the runner is loaded.
    _sys.path[:] = [p for p in _orig if p not in ("", ".", _cwd)]
    import pytest
_plugins = []
for _name in _env_plugins():
    try:
        __import__(_name)
        _plugins += ["-p", _name]
    except Exception:
        pass
if _plugins:
    # Imported before pytest's assert rewriting starts, the plugins cannot be rewritten
    # and pytest warns so; a suite that turns warnings into errors would die on that
    # warning of our own making. A command-line filter outranks the ini's.
    _plugins = ["-W", "ignore::pytest.PytestAssertRewriteWarning"] + _plugins
_os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
_restore_path()
_record = _os.environ.pop("CODEMILL_RECORD_OPENS", "")
if _record:
    _record_opens(_record)
_args = _sys.argv[1:]
if _args[:1] == ["--ids-on-stdin"]:
    _args = _args[1:] + [i for i in _sys.stdin.read().splitlines() if i]
raise SystemExit(int(pytest.main(_plugins + _args)))
'''
"""``python -c PYTEST_START [--ids-on-stdin] [pytest args]``: pytest started safely. With
``--ids-on-stdin`` first, node ids are read from stdin (one a line) and appended. With
``CODEMILL_RECORD_OPENS`` set to a path, the workspace files the run opened or imported
are written there at exit (validation records what the task's tests use)."""

PLAIN_START = r'''
import sys, pytest
args = sys.argv[1:]
if args[:1] == ["--ids-on-stdin"]:
    args = args[1:] + [i for i in sys.stdin.read().splitlines() if i]
raise SystemExit(int(pytest.main(args)))
'''
"""What ``python -m pytest`` does, with the same ``--ids-on-stdin`` convention: only for
showing what the safe start defends against (``GraderConfig.safe_start=False``)."""
