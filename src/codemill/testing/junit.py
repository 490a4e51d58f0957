"""Parsing pytest's JUnit XML (``-o junit_family=xunit1``) into per-test verdicts.

Node ids. xunit1 gives each ``testcase`` a ``classname`` (the dotted module path plus any
classes), a ``name`` (function plus ``[params]``) and the ``file`` the test was defined in.
When ``file`` (``/`` to ``.``, ``.py`` dropped) is a prefix of ``classname`` the node id is
``file::Class::name``, exactly pytest's node id. Otherwise (a test inherited from a class in
another file, or no ``file`` attribute) the module is the leading components of
``classname`` up to the first one starting with an upper-case letter. A collection error
(``classname=""``) becomes the file's own node id.

Outcomes. No child: passed. ``failure``: failed. ``error``: error (setup or teardown
failures, collection errors). ``skipped``: skipped. pytest writes an xfail as
``skipped`` (so: skipped), a non-strict xpass as a pass (passed) and a strict xpass as a
``failure`` (failed). When one node id appears more than once the worst outcome wins:
failed, then error, then skipped, then passed.

Safety. The file is written by a process running untrusted code: it is size-capped by the
reader, must be UTF-8, may not declare a DOCTYPE or entities, and is parsed as a stream
into only the fields we need (captured output is dropped).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from codemill.core.errors import TestRunError
from codemill.core.records import Outcome, TestCaseResult

PARSER_VERSION = "junit-xunit1/1"
MESSAGE_LINES = 5
MESSAGE_CHARS = 2000
_TEXT_CAP = 20_000
_SEVERITY = {Outcome.FAILED: 3, Outcome.ERROR: 2, Outcome.SKIPPED: 1, Outcome.PASSED: 0}
_CHILD_OUTCOME = {"failure": Outcome.FAILED, "error": Outcome.ERROR,
                  "skipped": Outcome.SKIPPED}


def node_id(classname: str, name: str, file: str | None) -> str:
    """pytest's node id for a JUnit ``testcase`` (see the module docstring)."""
    if file:
        dotted = re.sub(r"\.py$", "", file.replace("/", "."))
        if not classname and name == dotted:
            return file  # a collection error of the whole file
        if classname == dotted:
            return f"{file}::{name}"
        if classname.startswith(dotted + "."):
            classes = classname[len(dotted) + 1:].split(".")
            return "::".join([file, *classes, name])
    if not classname:
        return name.replace(".", "/") + ".py"
    parts = classname.split(".")
    cut = next((i for i, p in enumerate(parts) if i > 0 and p[:1].isupper()), len(parts))
    path = "/".join(parts[:cut]) + ".py"
    return "::".join([path, *parts[cut:], name])


def short_message(message: str, text: str) -> str:
    """The first few lines of a failure: the ``message`` attribute, then the ``E`` lines
    of pytest's report (where a generic message such as "collection failure" hides the
    cause); the body's first lines when neither is there."""
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    for ln in text.splitlines():
        if ln.startswith("E ") and ln[1:].strip() and ln[1:].strip() not in lines:
            lines.append(ln[1:].strip())
    if not lines:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[:MESSAGE_LINES])[:MESSAGE_CHARS]


@dataclass
class _Case:
    attrib: dict[str, str]
    outcome: Outcome = Outcome.PASSED
    message: str = ""


@dataclass
class _Target:
    """An ElementTree parser target that keeps only testcases and their verdict children."""

    cases: list[_Case] = field(default_factory=list)
    saw_suite: bool = False
    _case: _Case | None = None
    _child: tuple[Outcome, str] | None = None
    _text: list[str] = field(default_factory=list)
    _text_len: int = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if tag in ("testsuite", "testsuites"):
            self.saw_suite = True
        elif tag == "testcase":
            self._case = _Case(dict(attrib))
        elif self._case is not None and tag in _CHILD_OUTCOME:
            self._child = (_CHILD_OUTCOME[tag], attrib.get("message", ""))
            self._text, self._text_len = [], 0

    def data(self, text: str) -> None:
        if self._child is not None and self._text_len < _TEXT_CAP:
            self._text.append(text)
            self._text_len += len(text)

    def end(self, tag: str) -> None:
        if tag == "testcase" and self._case is not None:
            self.cases.append(self._case)
            self._case = None
        elif tag in _CHILD_OUTCOME and self._case is not None and self._child is not None:
            outcome, message = self._child
            if _SEVERITY[outcome] > _SEVERITY[self._case.outcome]:
                self._case.outcome = outcome
                self._case.message = short_message(message, "".join(self._text))
            self._child = None

    def close(self) -> None:
        return None


def parse_junit(data: bytes) -> tuple[TestCaseResult, ...]:
    """Parse JUnit XML bytes into results sorted by node id; ``TestRunError`` if unusable."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise TestRunError("result file declares a DOCTYPE or entities: refused")
    target = _Target()
    parser = ET.XMLParser(target=target, encoding="utf-8")  # type: ignore[arg-type]
    try:
        for i in range(0, len(data), 1 << 20):
            parser.feed(data[i:i + (1 << 20)])
        parser.close()
    except ET.ParseError as exc:
        raise TestRunError(f"result file is not well-formed XML: {exc}") from exc
    if not target.saw_suite:
        raise TestRunError("result file is not JUnit XML (no testsuite element)")
    merged: dict[str, TestCaseResult] = {}
    for case in target.cases:
        nid = node_id(case.attrib.get("classname", ""), case.attrib.get("name", ""),
                      case.attrib.get("file"))
        duration = _float(case.attrib.get("time"))
        old = merged.get(nid)
        if old is not None:
            duration += old.duration_s
            if _SEVERITY[old.outcome] >= _SEVERITY[case.outcome]:
                merged[nid] = old.model_copy(update={"duration_s": duration})
                continue
        merged[nid] = TestCaseResult(node_id=nid, outcome=case.outcome, duration_s=duration,
                                     message=case.message)
    return tuple(merged[k] for k in sorted(merged))


def _float(text: str | None) -> float:
    try:
        value = float(text or 0.0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0  # no NaN, inf, negatives
