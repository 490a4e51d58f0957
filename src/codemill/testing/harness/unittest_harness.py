"""codemill's unittest harness: runs unittest tests and writes their verdicts as JSON.

Runs inside the sandbox with the project's interpreter (any Python >= 3.7; standard
library only). The runner passes this source with ``-c``::

    python -c SOURCE --out RESULTS/unittest.json [--start-dir D] [--pattern P]
                     [--select-stdin | NODE_ID ...]

Node ids have pytest's form ``path/to/test_x.py::Class::test_name``. Outcomes: success
passed; failure or failed subtest failed; error (also in setUp/tearDown) error; skip and
expected failure skipped; unexpected success failed. A module that fails to import and a
failing ``setUpClass``/``setUpModule`` are errors under the module's or class's id.
The file is written once, atomically, at the end; exit code 0 (all passed), 1 (some did
not) or 5 (no tests), as pytest does.

When the runner put the guard (``guard.py``) before this source and sent a stream token,
each verdict also leaves on the result stream as it is decided, the run ends with an
``end`` record, and the code of ``unittest`` and of this harness is checked between tests
(a change is reported as ``runner`` evidence).
"""


import argparse
import json
import os
import re
import sys
import time
import traceback
import unittest

FORMAT = "codemill-unittest/1"
_SEVERITY = {"failed": 3, "error": 2, "skipped": 1, "passed": 0}


def module_path(module_name):
    """The file of an imported module, relative to the working directory."""
    mod = sys.modules.get(module_name)
    file = getattr(mod, "__file__", None)
    if file:
        rel = os.path.relpath(os.path.abspath(file), os.getcwd())
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    return module_name.replace(".", "/") + ".py"


def split_dotted(dotted):
    """``pkg.test_x.TestA`` -> (module path, ``TestA``), using what is imported."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        if ".".join(parts[:cut]) in sys.modules:
            return module_path(".".join(parts[:cut])), "::".join(parts[cut:])
    return module_path(dotted), ""


def node_id(test):
    if type(test).__name__ == "_SubTest":
        test = test.test_case
    if getattr(test, "_codemill_nid", None):  # a selected id that failed to load
        return test._codemill_nid
    if type(test).__name__ == "_FailedTest":  # an import or load error of a module
        return module_path(test._testMethodName)
    if type(test).__name__ == "_ErrorHolder":  # setUpClass / setUpModule failed
        m = re.match(r"^\w+ \((.+)\)$", test.description)
        path, rest = split_dotted(m.group(1) if m else test.description)
        return path + ("::" + rest if rest else "")
    cls = type(test)
    name = getattr(test, "_testMethodName", str(test))
    return "::".join([module_path(cls.__module__), *cls.__qualname__.split("."), name])


def short(err):
    lines = "".join(traceback.format_exception_only(err[0], err[1])).strip().splitlines()
    return "\n".join(lines[:5])[:2000]


class Recorder(unittest.TestResult):
    def __init__(self, emit=None, check=None):
        super().__init__()
        self.rows = {}
        self._t0 = time.perf_counter()
        self._emit, self._check = emit, check

    def _put(self, test, outcome, message=""):
        nid = node_id(test)
        if self._emit is not None:
            self._emit("r", [nid, outcome, message, 0.0])
        row = self.rows.setdefault(nid, {"node_id": nid, "outcome": outcome,
                                         "duration_s": 0.0, "message": message})
        if _SEVERITY[outcome] > _SEVERITY[row["outcome"]]:
            row["outcome"], row["message"] = outcome, message

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.perf_counter()

    def stopTest(self, test):
        super().stopTest(test)
        if self._check is not None:
            self._check()
        row = self.rows.get(node_id(test))
        if row is not None:
            row["duration_s"] += max(0.0, time.perf_counter() - self._t0)

    def addSuccess(self, test):
        self._put(test, "passed")

    def addFailure(self, test, err):
        self._put(test, "failed", short(err))

    def addError(self, test, err):
        self._put(test, "error", short(err))

    def addSkip(self, test, reason):
        self._put(test, "skipped", str(reason)[:2000])

    def addExpectedFailure(self, test, err):
        self._put(test, "skipped", "expected failure")

    def addUnexpectedSuccess(self, test):
        self._put(test, "failed", "unexpected success")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._put(test, "failed" if failed else "error", short(err))


def to_unittest_name(nid):
    path, _, rest = nid.partition("::")
    module = re.sub(r"\.py$", "", path).replace("/", ".")
    return ".".join([module, *[p for p in rest.split("::") if p]])


def load(args, stdin_ids=None):
    loader = unittest.TestLoader()
    ids = list(args.ids)
    if args.select_stdin:
        ids += stdin_ids if stdin_ids is not None else [
            line for line in sys.stdin.read().splitlines() if line]
    if not ids:
        return loader.discover(args.start_dir, pattern=args.pattern, top_level_dir=os.getcwd())
    suite = unittest.TestSuite()
    for nid in ids:
        loaded = loader.loadTestsFromName(to_unittest_name(nid))
        for test in flatten(loaded):
            if type(test).__name__ == "_FailedTest":
                test._codemill_nid = nid
        suite.addTest(loaded)
    return suite


def flatten(suite):
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from flatten(item)
    else:
        yield suite


def main(argv=None):
    guard, watch = globals().pop("_cm_guard", None), globals().pop("_cm_watch", None)
    emit, stdin_ids, streaming = guard(os.getcwd()) if guard else (None, None, False)
    check = None
    if streaming:
        check = watch(("unittest",), lambda label: sys.audit("codemill.runner", label),
                      (Recorder,))
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--start-dir", default=".")
    parser.add_argument("--pattern", default="test*.py")
    parser.add_argument("--select-stdin", action="store_true")
    parser.add_argument("ids", nargs="*")
    args = parser.parse_args(argv)
    if os.getcwd() not in sys.path:  # import the project from the working dir, as unittest does
        sys.path.insert(0, os.getcwd())
    result = Recorder(emit if streaming else None, check)
    load(args, stdin_ids).run(result)
    rows = sorted(result.rows.values(), key=lambda r: r["node_id"])
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "results": rows}, fh)
    os.replace(tmp, args.out)
    code = 0 if all(r["outcome"] in ("passed", "skipped") for r in rows) else 1
    code = code if rows else 5
    if streaming:
        check()
        emit("end", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
