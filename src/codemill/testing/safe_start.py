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

from importlib import resources

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

GUARD = (resources.files("codemill.testing") / "harness" / "guard.py").read_text()
"""The in-sandbox guard (``harness/guard.py``): result stream and audit hook. Every runner
program runs it before anything of the workspace can be imported."""

PYTEST_STREAM = r'''
def _cm_pytest_plugin(pytest, emit, watch, trap):
    # The plugin that streams each report as pytest decides it, and checks between tests
    # that pytest's own code and the registered plugins are the ones the run started with.
    import importlib, sys, types
    import _pytest.config as _cfg
    for _n in getattr(_cfg, "default_plugins", ()):
        try:
            importlib.import_module("_pytest." + _n)
        except Exception:
            pass
    state = {"config": None, "seen": set()}
    calls = {"passed": "passed", "failed": "failed", "skipped": "skipped"}

    def message(report):
        lr = report.longrepr
        if lr is None:
            return ""
        if isinstance(lr, tuple) and len(lr) == 3:
            return str(lr[2])[:2000]
        crash = getattr(lr, "reprcrash", None)
        text = getattr(crash, "message", None) if crash is not None else None
        text = str(lr) if text is None else text
        return "\n".join(text.strip().splitlines()[:5])[:2000]

    def plugins():
        config = state["config"]
        if config is None:
            return
        for p in config.pluginmanager.get_plugins():
            if id(p) in state["seen"]:
                continue
            state["seen"].add(id(p))
            mod = p if isinstance(p, types.ModuleType) else sys.modules.get(
                getattr(type(p), "__module__", ""))
            where = getattr(mod, "__file__", None)
            if isinstance(where, str):
                sys.audit("codemill.plugin", where)

    class CodemillStream:
        @pytest.hookimpl(tryfirst=True)
        def pytest_configure(self, config):
            state["config"] = config
            plugins()

        @pytest.hookimpl(hookwrapper=True, tryfirst=True)
        def pytest_runtest_makereport(self, item, call):
            if call.when == "call":
                check()
                plugins()
            yield

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_logreport(self, report):
            if report.when == "call":
                check()
                out = calls.get(report.outcome)
            else:
                out = {"failed": "error", "skipped": "skipped"}.get(report.outcome)
            if out and report.nodeid:
                emit("r", [report.nodeid, out, message(report) if out != "passed" else "",
                           round(float(report.duration or 0.0), 6)])

        @pytest.hookimpl(tryfirst=True)
        def pytest_collectreport(self, report):
            out = {"failed": "error", "skipped": "skipped"}.get(report.outcome)
            if out and report.nodeid:
                emit("r", [report.nodeid, out, message(report), 0.0])

    check = watch(("pytest", "_pytest", "pluggy"),
                  lambda label: sys.audit("codemill.runner", label), (CodemillStream,))
    trap(("pytest", "_pytest"))
    return CodemillStream(), lambda: (check(), plugins())
'''

PYTEST_START = PRELUDE + GUARD + RECORD_OPENS + PYTEST_STREAM + r'''

def _cm_main():
    guard, watch = globals().pop("_cm_guard"), globals().pop("_cm_watch")
    make_plugin, trap = globals().pop("_cm_pytest_plugin"), globals().pop("_cm_trap")
    emit, stdin_ids, streaming = guard(_cwd)
    try:
        import pytest
    except ImportError:
        # The project is one of the runner's own dependencies (iniconfig, pluggy,
        # packaging), installed from the workspace: the runner cannot start without it.
        # Its installed paths come back; the working directory stays out until the runner
        # is loaded.
        _sys.path[:] = [p for p in _orig if p not in ("", ".", _cwd)]
        import pytest
    plugins = []
    for name in _env_plugins():
        try:
            __import__(name)
            plugins += ["-p", name]
        except Exception:
            pass
    if plugins:
        # Imported before pytest's assert rewriting starts, the plugins cannot be
        # rewritten and pytest warns so; a suite that turns warnings into errors would die
        # on that warning of our own making. A command-line filter outranks the ini's.
        plugins = ["-W", "ignore::pytest.PytestAssertRewriteWarning"] + plugins
    own, final = make_plugin(pytest, emit, watch, trap) if streaming else (None, None)
    _os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    _restore_path()
    record = _os.environ.pop("CODEMILL_RECORD_OPENS", "")
    if record:
        _record_opens(record)
    args = _sys.argv[1:]
    if args[:1] == ["--ids-on-stdin"]:
        args = args[1:] + stdin_ids
    code = int(pytest.main(plugins + args, plugins=[own] if own else []))
    if final:
        final()
        emit("end", code)
    return code


raise SystemExit(_cm_main())
'''
"""``python -c PYTEST_START [--ids-on-stdin] [pytest args]``: pytest started safely. With
``--ids-on-stdin`` first, node ids are read from stdin (one a line) and appended. A first
stdin line ``codemill-stream TOKEN`` turns on the result stream and the audit hook
(``harness/guard.py``). With ``CODEMILL_RECORD_OPENS`` set to a path, the workspace files
the run opened or imported are written there at exit (validation records what the task's
tests use)."""

PLAIN_START = GUARD + PYTEST_STREAM + r'''

def _cm_main():
    import os, sys
    guard, watch = globals().pop("_cm_guard"), globals().pop("_cm_watch")
    emit, stdin_ids, streaming = guard(os.getcwd())
    import pytest
    make_plugin, trap = globals().pop("_cm_pytest_plugin"), globals().pop("_cm_trap")
    own, final = make_plugin(pytest, emit, watch, trap) if streaming else (None, None)
    args = sys.argv[1:]
    if args[:1] == ["--ids-on-stdin"]:
        args = args[1:] + stdin_ids
    code = int(pytest.main(args, plugins=[own] if own else []))
    if final:
        final()
        emit("end", code)
    return code


raise SystemExit(_cm_main())
'''
"""What ``python -m pytest`` does (the working directory first on ``sys.path``, plugins
auto-loaded), with the same guard and ``--ids-on-stdin`` convention: only for showing what
the safe start defends against (``GraderConfig.safe_start=False``)."""
