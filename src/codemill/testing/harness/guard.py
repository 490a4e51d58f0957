"""codemill's in-sandbox guard: the result stream and the audit hook (stdlib only).

Runs inside the sandbox with the project's interpreter, as part of a runner's ``python -c``
program (after ``safe_start.PRELUDE``, before anything of the workspace is imported). Its
one entry point, ``_cm_guard(cwd)``, is called once and removed from the program's globals:

- **Stream.** The runner sends ``codemill-stream TOKEN`` as the first line of stdin (the
  rest: node ids). The guard reads all of stdin, truncates it (a memfd: nothing left to
  re-read), duplicates stderr (a pipe to the host) and returns ``emit``, which writes one
  line per record: ``\\x1e`` ``cm1 TOKEN JSON``. A pipe cannot be rewritten: a record, once
  written, stays; the host believes only lines carrying the token, which lives only in
  closures of the guard (reaching them takes frame or gc access, which the hook records
  before it happens).
- **Audit hook** (PEP 578, Python >= 3.8; it cannot be removed). It records, as ``a``
  records on the stream, what *non-test workspace code* does (the innermost frame of the
  workspace on the stack is not a test file): ``exec`` (compile of text that is not a file's
  own source, code or function objects built by hand, marshal outside imports), ``frame``
  (``sys._getframe`` and stack helpers, ``sys._current_frames``, traceback/generator frame
  attributes and a function's ``__code__`` read by workspace code itself, ``gc`` object
  walks), ``test_read`` (opening or listing test files),
  ``runner`` (importing pytest, pluggy or unittest modules; changed runner functions and
  plugins defined in the workspace, reported by the runners' checks), ``trace``
  (``sys.settrace``/``setprofile``/``addaudithook``) and ``ctypes``.

A record is ``[class, detail]`` (detail: ``file:function`` of the frame it is blamed on, or
what was touched); each is written once. The grader compares them with the gold run's.

Not protected: code that reaches the token (or the runner's report objects) without any
audited step; the interpreter's C level (ctypes is recorded, not prevented).
"""


def _cm_guard(cwd, stream=True):
    import contextlib
    import json
    import os
    import sys

    data = sys.stdin.read() if not sys.stdin.isatty() else ""
    lines = data.splitlines()
    token = None
    if lines and lines[0].startswith("codemill-stream "):
        token = lines[0].split(" ", 1)[1].strip()
        lines = lines[1:]
    with contextlib.suppress(OSError):  # stdin is a memfd the host filled: nothing to re-read
        os.ftruncate(0, 0)
    ids = [i for i in lines if i]
    fd = os.dup(2) if token and stream else None
    root = cwd.rstrip("/") + "/"
    test_dirs = ("tests", "test", "testing")

    def emit(kind, payload):
        if fd is None:
            return
        line = f"\n\x1ecm1 {token} {json.dumps([kind, payload])}\n"
        with contextlib.suppress(OSError):
            os.write(fd, line.encode("ascii", "replace"))

    def rel(path):
        if not isinstance(path, str) or not path.startswith(root):
            return None
        return path[len(root):]

    def is_test(path):  # the rule of codemill.core.testpaths.is_test_path
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not parts:
            return False
        if any(p in test_dirs for p in parts[:-1]):
            return True
        name = parts[-1]
        return name.endswith(".py") and (
            name.startswith("test_") or name.endswith("_test.py")
            or name in ("conftest.py", "test.py", "tests.py"))

    def place(frame):
        """The workspace path a frame's code belongs to, or None. Code run from text
        (``<string>``) belongs to the module whose globals it runs in."""
        name = frame.f_code.co_filename
        if name.startswith("<") and not name.startswith("<frozen"):
            name = frame.f_globals.get("__file__")
        return rel(name) if isinstance(name, str) else None

    def blame(frame):
        """``file:function`` of the innermost workspace frame, or None (test code or no
        workspace code on the stack)."""
        while frame is not None:
            r = place(frame)
            if r is not None:
                return None if is_test(r) else r + ":" + frame.f_code.co_name
            frame = frame.f_back
        return None

    own = globals()  # the runner program's: frames of the guard's own wrappers

    def raised_by():
        """The frame that raised the event being checked (past the guard's wrappers)."""
        frame = getframe(3)  # check <- hook <- the event's frame
        while frame is not None and frame.f_globals is own:
            frame = frame.f_back
        return frame

    def direct(frame):
        """Blame only when ``frame`` itself is non-test workspace code."""
        r = place(frame) if frame is not None else None
        return None if r is None or is_test(r) else r + ":" + frame.f_code.co_name

    seen = set()
    busy = []
    runner_names = ("pytest", "_pytest", "pluggy", "unittest")
    frame_attrs = ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "__code__")
    # Standard modules that compile a file's text on request; other standard modules that
    # compile (dataclasses, namedtuple, typing) generate their own code and are not blamed.
    loaders = ("runpy", "code", "codeop", "importlib", "importlib.util", "importlib.machinery")
    getframe = sys._getframe

    def record(cls, detail):
        key = (cls, detail)
        if detail and key not in seen:
            seen.add(key)
            emit("a", [cls, detail])

    def own_source(source, filename):
        if not isinstance(filename, str) or not filename.endswith(".py"):
            return False
        try:
            with open(filename, "rb") as fh:
                text = fh.read()
        except OSError:
            return False
        if isinstance(source, str):
            source = source.encode("utf-8", "replace")
        return source == text

    def path_of(arg):
        if isinstance(arg, bytes):
            arg = arg.decode("utf-8", "replace")
        if not isinstance(arg, str):
            return None
        return rel(os.path.normpath(os.path.join(cwd, arg)))

    def hook(event, args):
        if busy:
            return
        busy.append(1)
        try:
            check(event, args)
        except Exception:  # a hook that raises would break the code under test
            pass
        finally:
            busy.pop()

    def check(event, args):
        if event == "open" or event in ("os.listdir", "os.scandir"):
            r = path_of(args[0]) if args else None
            if r is not None and (is_test(r) or r.split("/")[-1] in test_dirs):
                record("test_read", blame(raised_by()) and r)
        elif event == "compile":
            caller = raised_by()
            who = direct(caller)
            if who is None and (caller.f_code.co_filename.startswith("<frozen importlib")
                                or caller.f_globals.get("__name__") in loaders):
                who = blame(caller)  # a loader asked to run a file: blame who asked
            if who and not own_source(args[0] if args else None, args[1] if len(args) > 1
                                      else None):
                record("exec", who)
        elif event in ("code.__new__", "function.__new__", "marshal.loads"):
            record("exec", direct(raised_by()))
        elif event in ("sys._getframe", "sys._current_frames"):
            caller = raised_by()
            mod = caller.f_globals.get("__name__")
            record("frame", blame(caller) if mod in ("inspect", "traceback")
                   else direct(caller))
        elif event == "object.__getattr__":
            if len(args) > 1 and args[1] in frame_attrs:
                record("frame", direct(raised_by()))
        elif event.startswith("gc.get_"):
            record("frame", blame(raised_by()))
        elif event == "import":
            name = args[0] if args and isinstance(args[0], str) else ""
            top = name.split(".")[0]
            if top in runner_names:
                record("runner", blame(raised_by()) and name)
            elif top in ("ctypes", "_ctypes"):
                record("ctypes", blame(raised_by()))
        elif event == "codemill.import":  # builtins.__import__, from a module's globals
            name, where = args[0], rel(args[1])
            if where is not None and not is_test(where):
                record("runner", where + ":" + name)
        elif event == "codemill.plugin":  # a plugin registered with the runner
            where = rel(args[0]) if args else None
            if where is not None and not is_test(where):
                record("runner", "plugin:" + where)
        elif event == "codemill.modules":  # a runner's name in sys.modules was compared
            who = direct(raised_by())  # past the trap's own compare
            record("runner", who and "asked for " + str(args[0]) + " in " + who)
        elif event == "codemill.runner":  # a runner's own check found a change
            record("runner", "changed:" + str(args[0]))
        elif event in ("sys.settrace", "sys.setprofile", "sys.addaudithook"):
            record("trace", blame(raised_by()))
        elif event.startswith("ctypes."):
            record("ctypes", blame(raised_by()))

    wrap_builtins = globals().pop("_cm_wrap_builtins", None)
    if fd is not None:
        import builtins
        if hasattr(sys, "addaudithook"):
            sys.addaudithook(hook)
        elif wrap_builtins is not None:
            wrap_builtins(builtins, hook)
        real_import = builtins.__import__

        def watched_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and isinstance(name, str) and \
                    name.split(".")[0] in runner_names and isinstance(globals, dict):
                where = globals.get("__file__")
                if isinstance(where, str):
                    sys.audit("codemill.import", name, os.path.abspath(where))
            return real_import(name, globals, locals, fromlist, level)

        builtins.__import__ = watched_import
    return emit, ids, token is not None


def _cm_wrap_builtins(builtins, hook):
    """Python < 3.8 has no audit hook: the guard's events come from wrappers of the
    builtins and ``sys`` functions that raise the most of them (code that kept a reference
    to the originals from before the guard ran goes unseen; nothing of the workspace has
    run by then). ``sys.audit`` is the hook itself, so the runners' events reach it."""
    import sys

    getframe = sys._getframe
    real = {n: getattr(builtins, n) for n in ("exec", "eval", "compile", "open")}
    real_sys = {n: getattr(sys, n) for n in ("_getframe", "settrace", "setprofile")}
    sys.audit = lambda event, *args: hook(event, args)

    def run(name):
        def runner(source, globals=None, locals=None):
            if isinstance(source, (str, bytes)):
                hook("compile", (source, "<string>"))
            if globals is None:
                frame = getframe(1)
                globals, locals = frame.f_globals, frame.f_locals
            return real[name](source, globals, locals)
        return runner

    def compile_(source, filename, *args, **kwargs):
        hook("compile", (source, filename))
        return real["compile"](source, filename, *args, **kwargs)

    def open_(file, *args, **kwargs):
        hook("open", (file,))
        return real["open"](file, *args, **kwargs)

    def getframe_(depth=0):
        hook("sys._getframe", ())
        return real_sys["_getframe"](depth + 1)

    def trace(name):
        def setter(fn):
            hook("sys." + name, ())
            return real_sys[name](fn)
        return setter

    builtins.exec, builtins.eval = run("exec"), run("eval")
    builtins.compile, builtins.open = compile_, open_
    sys._getframe, sys.settrace, sys.setprofile = getframe_, trace("settrace"), trace(
        "setprofile")


def _cm_watch(prefixes, emit_change, extra=()):
    """A check of the runner's own code: the functions and classes of the loaded modules
    named by ``prefixes`` (and the classes in ``extra``) now, compared later by calling the
    returned function; each changed or removed name is reported once. A new value that is
    itself a function of the runner (defined outside the workspace, in a module named by
    ``prefixes``) is the runner patching itself (pytest's legacypath plugin does) and is
    taken as the new reference."""
    import os
    import sys
    import types

    root = os.getcwd().rstrip("/") + "/"
    kinds = (types.FunctionType, type, staticmethod, classmethod, property)
    entries = []
    for name, mod in list(sys.modules.items()):
        if mod is None or name.split(".")[0] not in prefixes:
            continue
        space = getattr(mod, "__dict__", {})
        for key, value in list(space.items()):
            if isinstance(value, kinds) and getattr(value, "__module__", name) == name:
                entries.append([space, key, value, name + "." + key])
                if isinstance(value, type):
                    extra = (*extra, value)
    for cls in extra:
        for key, value in list(vars(cls).items()):
            if isinstance(value, kinds):
                entries.append([cls.__dict__, key, value, cls.__qualname__ + "." + key])
    told = set()
    missing = object()

    def own(value):
        fn = getattr(value, "__func__", value)
        code = getattr(fn, "__code__", None)
        module = getattr(fn, "__module__", None) or ""
        return (isinstance(fn, types.FunctionType) and code is not None
                and not code.co_filename.startswith(root)
                and not code.co_filename.startswith("<")
                and module.split(".")[0] in prefixes)

    def check():
        for entry in entries:
            space, key, value, label = entry
            now = space.get(key, missing)
            if now is value or label in told:
                continue
            if now is not missing and own(now):
                entry[2] = now
                continue
            told.add(label)
            emit_change(label)
    return check


def _cm_trap(names):
    """Key the runner's entries of ``sys.modules`` by strings that report being compared
    (``"pytest" in sys.modules``, ``sys.modules.get(...)``, ``"pytest" in key``): the
    audit hook records it when the code asking is non-test workspace code."""
    import sys

    class Watched(str):
        __slots__ = ()

        def _seen(self):
            sys.audit("codemill.modules", str.__str__(self))

        def __eq__(self, other):
            same = str.__eq__(self, other)
            if same is True:
                self._seen()
            return same

        def __ne__(self, other):
            same = str.__eq__(self, other)
            return same if same is NotImplemented else not same

        def __contains__(self, part):
            self._seen()
            return str.__contains__(self, part)

        def startswith(self, *args):
            self._seen()
            return str.startswith(self, *args)

        def endswith(self, *args):
            self._seen()
            return str.endswith(self, *args)

        __hash__ = str.__hash__

    for name in names:
        module = sys.modules.pop(name, None)
        if module is not None:
            sys.modules[Watched(name)] = module
