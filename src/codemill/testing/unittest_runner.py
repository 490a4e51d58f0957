"""Running unittest suites, for projects that cannot run under pytest.

``UnittestRunner(...).run(sandbox, selection)`` runs the harness script shipped in
``codemill/testing/harness/`` with the project's interpreter (its source passed with
``python -c``, after ``safe_start.PRELUDE``, so nothing in the workspace is imported
before the harness and the standard library are) and parses only the JSON
file it writes into the sandbox's results dir (never stdout). Node ids have the same
``path::Class::test`` form as pytest's, so tasks and baselines do not care which runner
produced them. Long selections go on stdin, as with ``PytestRunner``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from codemill.core.errors import TestRunError
from codemill.core.protocols import Sandbox
from codemill.core.records import ExecResult, TestCaseResult, TestReport
from codemill.testing.pytest_runner import (
    DEFAULT_RESULTS_INSIDE,
    PytestRunner,
    check_selection,
    results_dir,
    stdin_ids,
)
from codemill.testing.reports import make_report
from codemill.testing.resultfile import clear_dir
from codemill.testing.safe_start import GUARD, PRELUDE
from codemill.testing.stream import FORMAT as STREAM_FORMAT
from codemill.testing.stream import new_token, stdin_text, stream_report

# The harness imports only the standard library: with the workspace off the path while
# it does, and put back (after the standard library) before the tests load. The guard
# (result stream, audit hook) comes with every start, safe or not.
UNITTEST_PRELUDE = (PRELUDE + GUARD + "import argparse, json, re, time, traceback, unittest\n"
                    "_restore_path()\n")

HARNESS_NAME = "unittest_harness.py"
RESULT_NAME = "unittest.json"
FORMAT = "codemill-unittest/1"
PARSER_VERSION = FORMAT
MAX_RESULT_BYTES = 64 << 20


def harness_source() -> bytes:
    """The harness script, as shipped in the package."""
    return (resources.files("codemill.testing") / "harness" / HARNESS_NAME).read_bytes()


def parse_results(data: bytes) -> tuple[TestCaseResult, ...]:
    """Validate the harness's JSON; ``TestRunError`` when it is not what the harness writes."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TestRunError(f"result file is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TestRunError(f"result file is not in the {FORMAT} format")
    rows = doc.get("results")
    if not isinstance(rows, list):
        raise TestRunError("result file has no results list")
    try:
        results = [TestCaseResult.model_validate(row) for row in rows]
    except ValidationError as exc:
        raise TestRunError(f"result file has a bad row: {exc.errors()[0]['msg']}") from exc
    by_id = {r.node_id: r for r in results}
    return tuple(by_id[k] for k in sorted(by_id))


class UnittestRunner:
    """A ``TestRunner`` for unittest suites: discovery from ``start_dir`` with ``pattern``."""

    def __init__(self, python: str = "/env/bin/python", *, start_dir: str = ".",
                 pattern: str = "test*.py", env: Mapping[str, str] | None = None,
                 safe_start: bool = True, stream: bool = False) -> None:
        self.python = python
        self.start_dir = start_dir
        self.pattern = pattern
        self.env = dict(env or {})
        self.safe_start = safe_start
        self.stream = stream
        """Believe only the result stream, as ``PytestRunner.stream``."""

    @property
    def parser_version(self) -> str:
        return f"{STREAM_FORMAT}+unittest" if self.stream else PARSER_VERSION

    def command(self, selection: Sequence[str] | None = None, *,
                results_dir: str = DEFAULT_RESULTS_INSIDE) -> tuple[str, ...]:
        check_selection(selection)
        prelude = UNITTEST_PRELUDE if self.safe_start else GUARD
        argv = [self.python, "-c", prelude + harness_source().decode(), "--out",
                f"{results_dir}/{RESULT_NAME}", "--start-dir", self.start_dir,
                "--pattern", self.pattern]
        if PytestRunner.inline(selection):
            return (*argv, *(selection or ()))
        return (*argv, "--select-stdin")

    def run(self, sandbox: Sandbox, selection: Sequence[str] | None = None, *,
            timeout_s: float = 600.0) -> TestReport:
        host_dir, inside = results_dir(sandbox)
        clear_dir(host_dir)
        argv = self.command(selection, results_dir=inside)
        env = {"PYTHONDONTWRITEBYTECODE": "1", **self.env}
        token = new_token() if self.stream else ""
        ids = stdin_ids(selection)
        res = sandbox.run(argv, timeout_s=timeout_s, env=env,
                          stdin=stdin_text(token, ids) if token else ids)
        if token:
            return stream_report(argv, res, token, parser_version=self.parser_version,
                                 exit_errors={5: "no tests collected"})
        return self.report(argv, res, host_dir / RESULT_NAME)

    def report(self, argv: Sequence[str], res: ExecResult, path: Path) -> TestReport:
        return make_report(argv, res, path, parse_results, parser_version=self.parser_version,
                           max_bytes=MAX_RESULT_BYTES, exit_errors={5: "no tests collected"})
