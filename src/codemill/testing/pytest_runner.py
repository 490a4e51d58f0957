"""Running pytest in a sandbox and reading only its JUnit file.

``PytestRunner(...).run(sandbox, selection)`` empties the sandbox's results dir (a
harness-only dir outside ``/repo``), runs::

    python -c <safe start> -p no:cacheprovider -o junit_family=xunit1
        --junitxml=<results>/junit.xml -q -rN --no-header --rootdir=/repo
        --continue-on-collection-errors [-k EXPR] [ids...]

and parses ``junit.xml`` from the host side of that dir. Verdicts never come from stdout:
a suite that prints ``100 passed`` or leaves a ``junit.xml`` in the repository is not
believed. When there is no trustworthy result the report's ``error`` says why and keeps
the output tail: a timeout, no result file (collection crashed or the process exited
early), an unreadable file, no tests collected (exit code 5), a usage or internal error.

The safe start (``codemill.testing.safe_start``) imports pytest and the environment's
plugins before anything in the workspace can be imported, turns plugin auto-loading off
and loads those plugins by ``-p``, then puts the workspace on the path after the standard
library (pytest's warning that it cannot rewrite those early-imported plugins is filtered
on the command line, so ``filterwarnings = error`` suites still run). ``--rootdir`` is
pinned so node ids do not depend on the selection. Long
selections do not go on the command line (argv has limits): the node ids are sent on
stdin, one a line (``@argsfile`` needs pytest >= 8.2; this needs no file in the results
dir, which the sandbox empties before each command). ``-rN`` and ``--no-header`` need pytest >= 6.
An id pytest cannot take back from its command line (``::`` inside its parameters) runs as
its function's id (``addressable``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from codemill.core.errors import TestRunError
from codemill.core.protocols import Sandbox
from codemill.core.records import ExecResult, TestReport
from codemill.testing.junit import PARSER_VERSION, parse_junit
from codemill.testing.reports import make_report
from codemill.testing.resultfile import clear_dir
from codemill.testing.safe_start import PLAIN_START, PYTEST_START
from codemill.testing.stream import FORMAT as STREAM_FORMAT
from codemill.testing.stream import new_token, stdin_text, stream_report

JUNIT_NAME = "junit.xml"
# The bwrap and process sandboxes' inside path (codemill.sandbox.workspace.RESULTS_INSIDE);
# only a default for ``command()``: ``run()`` asks the sandbox.
DEFAULT_RESULTS_INSIDE = "/harness/results"
MAX_JUNIT_BYTES = 256 << 20
INLINE_MAX_IDS = 200
INLINE_MAX_CHARS = 32_000
_EXIT_ERRORS = {
    2: "pytest was interrupted (exit code 2)",
    3: "pytest hit an internal error (exit code 3)",
    4: "pytest usage error (exit code 4): bad arguments or a plugin/version mismatch",
    5: "no tests collected",
}


def results_dir(sandbox: Sandbox) -> tuple[Path, str]:
    """The sandbox's harness-only results dir: (host path, path inside)."""
    try:
        host, inside = sandbox.results_dir  # type: ignore[attr-defined]
    except AttributeError as exc:
        raise TestRunError(f"{type(sandbox).__name__} has no results_dir") from exc
    return Path(host), str(inside)


def check_selection(selection: Sequence[str] | None) -> None:
    """Refuse selections that would be read as something else: empty (the whole suite),
    ids that look like options, ids with line breaks (they go one a line in a file)."""
    if selection is None:
        return
    if not selection:
        raise TestRunError("empty test selection (pass None to run the whole suite)")
    for nid in selection:
        if not nid or nid.startswith("-") or "\n" in nid or "\r" in nid or "\0" in nid:
            raise TestRunError(f"not a node id: {nid!r}")


def addressable(selection: Sequence[str] | None) -> list[str] | None:
    """The selection as pytest can take it from its command line. pytest splits an argument
    at every ``::``, so an id whose parameters contain one (dateutil's
    ``test_invalid_GNU_tzstr[,dfughdfuigpu87\\xf1::]``) names no test and the whole run
    stops with a usage error; such an id is replaced by its function's id, which runs every
    parametrization of it. The extra outcomes are reported under their own ids, which no
    verdict reads."""
    if selection is None:
        return None
    out = []
    for nid in selection:
        head, bracket, params = nid.partition("[")
        out.append(head if bracket and "::" in params else nid)
    return list(dict.fromkeys(out))


def stdin_ids(selection: Sequence[str] | None) -> str | None:
    """What a runner sends on stdin: the node ids of a selection too long for argv."""
    if PytestRunner.inline(selection):
        return None
    return "".join(f"{nid}\n" for nid in selection or ())


class PytestRunner:
    """A ``TestRunner`` for pytest suites. ``python`` is the interpreter inside the sandbox;
    ``extra_args`` go before the selection; ``env`` is added to the command's environment."""

    def __init__(
        self,
        python: str = "/env/bin/python",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        rootdir: str = "/repo",
        max_junit_bytes: int = MAX_JUNIT_BYTES,
        safe_start: bool = True,
        stream: bool = False,
    ) -> None:
        self.python = python
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.rootdir = rootdir
        self.max_junit_bytes = max_junit_bytes
        self.safe_start = safe_start
        """False only to show what the safe start defends against: ``python -m pytest``
        (the workspace first on ``sys.path``, plugins auto-loaded)."""
        self.stream = stream
        """Believe only the result stream (``codemill.testing.stream``), never the JUnit
        file, and record what the audit hook saw. Grading turns it on; baselines keep the
        file (a whole suite's stream can outgrow the captured output)."""

    @property
    def parser_version(self) -> str:
        return f"{STREAM_FORMAT}+pytest" if self.stream else PARSER_VERSION

    def _options(self, results_dir: str, keyword: str | None) -> list[str]:
        opts = ["-p", "no:cacheprovider", "-o", "junit_family=xunit1",
                f"--junitxml={results_dir}/{JUNIT_NAME}", "-q", "-rN", "--no-header",
                f"--rootdir={self.rootdir}", "--continue-on-collection-errors"]
        if keyword:
            opts += ["-k", keyword]
        return opts + list(self.extra_args)

    @staticmethod
    def inline(selection: Sequence[str] | None) -> bool:
        """Whether ``selection`` is short enough to pass on the command line."""
        return selection is None or (len(selection) <= INLINE_MAX_IDS
                                     and sum(len(s) + 1 for s in selection) <= INLINE_MAX_CHARS)

    def command(self, selection: Sequence[str] | None = None, *, keyword: str | None = None,
                results_dir: str = DEFAULT_RESULTS_INSIDE) -> tuple[str, ...]:
        """The argv that runs ``selection`` (node ids; None: the whole suite)."""
        opts = self._options(results_dir, keyword)
        check_selection(selection)
        selection = addressable(selection)
        if self.inline(selection):
            return (*self._start(), *opts, *(selection or ()))
        return (*self._start(), "--ids-on-stdin", *opts)

    def _start(self) -> tuple[str, ...]:
        return (self.python, "-c", PYTEST_START if self.safe_start else PLAIN_START)

    def _env(self) -> dict[str, str]:
        return {"PYTHONDONTWRITEBYTECODE": "1", **self.env}

    def run(self, sandbox: Sandbox, selection: Sequence[str] | None = None, *,
            timeout_s: float = 600.0, keyword: str | None = None) -> TestReport:
        """Run the tests in ``sandbox`` and report what the JUnit file says."""
        host_dir, inside = results_dir(sandbox)
        clear_dir(host_dir)
        argv = self.command(selection, keyword=keyword, results_dir=inside)  # checks it
        token = new_token() if self.stream else ""
        ids = stdin_ids(addressable(selection))
        res = sandbox.run(argv, timeout_s=timeout_s, env=self._env(),
                          stdin=stdin_text(token, ids) if token else ids)
        if token:
            return stream_report(argv, res, token, parser_version=self.parser_version,
                                 exit_errors=_EXIT_ERRORS)
        return self.report(argv, res, host_dir / JUNIT_NAME)

    def collect(self, sandbox: Sandbox, *, timeout_s: float = 300.0) -> list[str] | None:
        """The node ids a whole-suite run reaches, in the order it reaches them (pytest's
        ``--collect-only -q``, with this runner's options and safe start), or None when
        pytest did not list them all: it failed, timed out, or its output was cut."""
        _, inside = results_dir(sandbox)
        argv = (*self._start(), *self._options(inside, None), "--collect-only")
        res = sandbox.run(argv, timeout_s=timeout_s, env=self._env())
        if res.timed_out or res.truncated or res.exit_code not in (0, 1):
            return None
        ids: list[str] = []
        for line in res.stdout.splitlines():
            if not line.strip() and ids:
                break  # the listing ends at a blank line; the summary and warnings follow
            if "::" in line and not line.startswith((" ", "\t")):
                ids.append(line)
        return ids or None

    def report(self, argv: Sequence[str], res: ExecResult, junit_path: Path) -> TestReport:
        """Turn a finished command and the host path of its JUnit file into a report."""
        return make_report(argv, res, junit_path, parse_junit,
                           parser_version=self.parser_version,
                           max_bytes=self.max_junit_bytes, exit_errors=_EXIT_ERRORS)
