"""Patch-mode context: what a user has before the fix, measured in the broken state.

    ctx = task_patch_context(bed, task)     # one sandboxed, covered run of FAIL_TO_PASS
    found = suspects(bed, state, tests)     # the same run: functions, most suspicious first

Patch mode (``codemill.rollouts.patch_mode``) shows the model the problem statement, the
failing tests' output and the code those tests reach, and asks for an edit. This module
computes the last two. Validation keeps the broken state's failures only inside the problem
statement's prose, and no coverage of the broken state, so both are measured here: the
FAIL_TO_PASS tests' files run once under per-test coverage (``TestBed.covered_run``) in a sandbox
fork of the broken state (``broken_patch`` plus the hidden ``test_patch``, as validation
ran it). The untrusted code runs only in that sandbox; the host reads files and results.

What the context holds, and what it never holds:

- ``failing_output``: each FAIL_TO_PASS test's failure message from that run, trimmed, with
  the hidden tests' own code lines removed (as the problem statement does);
- ``snippets``: the enclosing functions of the source lines the FAIL_TO_PASS tests execute
  (test files excluded), most suspicious first, within ``max_tokens``. The whole test files
  of the failing tests run; the tests passing there in the broken state are the contrast
  (labels from validation, which ran the gold state, are not used). A line's suspicion is
  its Ochiai score (run by the failing tests, rarely by the passing ones: spectrum-based
  fault localization); a function too big for what is left of the budget is shown as a
  window around its most suspicious line;
- ``files``: the broken state's text of each file a snippet comes from (the answer's edits
  are applied to it to make the diff);
- ``marked``: the most suspicious function's lines at its top score, when there are at
  most ``max_marked`` of them and the listing shows them: the listing's pointer at the
  bug (``bench/bench_localization.py`` measures how often it holds a line of the fix).

Nothing is read from ``gold_patch``: the same context would be built for a user who only
has the broken repository and its failing tests. Lines a module runs at import time belong
to no test and are left out. Token counts are an estimate (characters / 4); the prompt's
real length is the model backend's business.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from codemill.core import pyast
from codemill.core.errors import TaskError
from codemill.core.records import Outcome, TaskSpec, TestReport
from codemill.tasks.patches import Changes, apply_patch, code_lines
from codemill.tasks.paths import is_test_path
from codemill.tasks.testbed import TestBed

CONTEXT_VERSION = "4"
"""Bump when the same task would get another context (cache file names carry it)."""
CHARS_PER_TOKEN = 4
LISTING_FUNCTIONS = 4
"""Functions a listing shows at most by default."""


def listing_key(listing_functions: int) -> tuple[str, ...]:
    """The listing's part of an id (rollouts, groups, expert answers, checkpoints): empty
    at the default, so ids made before the listing could be shortened stay valid."""
    if listing_functions == LISTING_FUNCTIONS:
        return ()
    return (f"functions={listing_functions}",)


class PatchContextConfig(BaseModel):
    """How much the patch-mode prompt may show."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(768, ge=32)
    """Estimated tokens of code listing at most (characters / 4)."""
    max_functions: int = Field(LISTING_FUNCTIONS, ge=1)
    """Functions shown at most, the most suspicious first."""
    max_failures: int = Field(3, ge=1)
    """Failing tests whose output is shown."""
    max_message_lines: int = Field(8, ge=1)
    """Lines of one test's failure message shown."""
    max_marked: int = Field(3, ge=0)
    """Most suspicious lines marked at most (more lines at the top score mark none: a
    pointer at many lines points nowhere); 0 marks none."""


@dataclass(frozen=True)
class Snippet:
    """One enclosing function: ``lines`` are lines ``start..start+len-1`` of ``path``."""

    path: str
    start: int
    lines: tuple[str, ...]
    name: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.lines) - 1


@dataclass(frozen=True)
class PatchContext:
    """What patch mode shows besides the problem statement (see the module docstring).
    ``error`` is set when the covered run could not be made (no snippets then)."""

    task_id: str
    failing_output: str = ""
    snippets: tuple[Snippet, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    marked: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PatchContext:
        d = json.loads(text)
        snippets = tuple(Snippet(s["path"], s["start"], tuple(s["lines"]), s.get("name", ""))
                         for s in d.get("snippets", ()))
        return cls(task_id=d["task_id"], failing_output=d.get("failing_output", ""),
                   snippets=snippets, files=dict(d.get("files", {})),
                   seconds=d.get("seconds", 0.0), error=d.get("error"),
                   marked=tuple((p, n) for p, n in d.get("marked", ())))


def broken_state(bed: TestBed, task: TaskSpec) -> Changes:
    """The broken state as validation ran it: ``broken_patch`` and the hidden tests."""
    state = apply_patch(task.broken_patch, bed.read_base) if task.broken_patch else {}
    if task.test_patch:
        state = {**state, **apply_patch(
            task.test_patch, lambda p: state[p] if p in state else bed.read_base(p))}
    return state


def task_patch_context(bed: TestBed, task: TaskSpec, config: PatchContextConfig | None = None,
                       *, use_cache: bool = True) -> PatchContext:
    """The context of ``task`` (cached under ``<home>/cache/patch_context/``). A failed
    covered run gives a context with ``error`` set, never an exception, so one task does
    not stop a batch."""
    config = config or PatchContextConfig()
    # every setting that is not the default names the file (the default's name is older)
    extra = "".join(f"-{k}{v}" for k, v in config.model_dump().items()
                    if k != "max_tokens" and v != PatchContextConfig.model_fields[k].default)
    path = (bed.home / "cache" / "patch_context" /
            f"{task.task_id}-{CONTEXT_VERSION}-{config.max_tokens}{extra}.json")
    if use_cache:
        try:
            return PatchContext.from_json(path.read_text())
        except (OSError, ValueError, KeyError):
            pass
    hidden = code_lines(task.test_patch, "+") if task.test_patch else []
    try:
        ctx = patch_context(bed, broken_state(bed, task), task.fail_to_pass, config,
                            task_id=task.task_id, hidden_lines=hidden)
    except TaskError as exc:
        return PatchContext(task_id=task.task_id, error=str(exc)[:500])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(ctx.to_json())
    os.replace(tmp, path)
    return ctx


@dataclass(frozen=True)
class Suspect:
    """A function the failing tests run: lines ``start..end`` of ``path``, its Ochiai
    ``score`` (that of its most suspicious line) and ``hot``, every line of the function at
    that score, in order; ``focus`` is the first of them."""

    path: str
    start: int
    end: int
    name: str
    score: float
    hot: tuple[int, ...]

    @property
    def focus(self) -> int:
        return self.hot[0]


@dataclass(frozen=True)
class Suspects:
    """What one covered run of the broken state says: the failing tests' output, the
    functions they run, most suspicious first, and the text of each file named."""

    failing_output: str
    ranked: tuple[Suspect, ...]
    texts: Mapping[str, str]
    seconds: float


def suspects(bed: TestBed, state: Changes, tests: Sequence[str],
             config: PatchContextConfig | None = None, *,
             hidden_lines: Iterable[str] = ()) -> Suspects:
    """Run the test files of the failing ``tests`` in ``state`` under coverage, sandboxed,
    and rank the source functions they run (the other tests of those files, passing in
    ``state``, are the contrast). ``hidden_lines`` (code of tests the model must not see)
    are cut from the output. Raises ``TaskError`` when the run gives no results."""
    config = config or PatchContextConfig()
    if not tests:
        raise TaskError("no failing test to run")
    files = sorted({t.split("::", 1)[0] for t in tests})
    report, cmap = bed.covered_run(state, files,
                                   timeout_s=max(bed.timeout_for(None) * 3, 120.0))
    output = failing_output(report, tests, config, hidden_lines)
    outcomes = report.outcomes()
    failed = {t for t in tests if outcomes.get(t) != Outcome.PASSED}
    passed = {t for t, o in outcomes.items() if o == Outcome.PASSED and t not in failed}
    named = set(re.findall(r"([\w./-]+\.py)", output))
    texts: dict[str, str] = {}
    scored: dict[tuple[str, int, int, str], float] = {}
    hot: dict[tuple[str, int, int, str], list[int]] = {}  # lines at the top score, in order
    for path, per_line in sorted(cmap.lines.items()):
        if is_test_path(path) or not path.endswith(".py"):
            continue
        text = _read(bed, state, path)
        if text is None:
            continue
        texts[path] = text
        spans = function_spans(text)
        for line, idx in sorted(per_line.items()):
            who = {cmap.tests[i] for i in idx}
            f, p = len(who & failed), len(who & passed)
            span = _innermost(spans, line)
            if not f or span is None:
                continue
            # Ochiai: lines run by the failing tests and few passing ones come first
            score = f / ((max(len(failed), 1) * (f + p)) ** 0.5)
            key = (path, *span)
            if key not in scored or score > scored[key]:
                scored[key], hot[key] = score, [line]
            elif score == scored[key]:  # the same counts give the same float
                hot[key].append(line)

    def rank(k: tuple[str, int, int, str]) -> tuple[int, float, int, int, str, int]:
        in_trace = any(k[0].endswith(n) or n.endswith(k[0]) for n in named)
        # reporting a failure calls repr() on the values compared: only failing tests run
        # those methods, so they would top every ranking without being suspect
        reporting = k[3].rsplit(".", 1)[-1] in REPORTING
        return (int(reporting), -scored[k], -int(in_trace), k[2] - k[1], k[0], k[1])

    ranked = tuple(Suspect(k[0], k[1], k[2], k[3], scored[k], tuple(hot[k]))
                   for k in sorted(scored, key=rank))
    return Suspects(output, ranked, {p: texts[p] for p in sorted({s.path for s in ranked})},
                    cmap.seconds)


def patch_context(bed: TestBed, state: Changes, tests: Sequence[str],
                  config: PatchContextConfig | None = None, *, task_id: str = "",
                  hidden_lines: Iterable[str] = ()) -> PatchContext:
    """The context of the failing ``tests`` in ``state``: the ``suspects`` run, then the
    most suspicious functions that fit the budget. Raises ``TaskError`` when the run gives
    no results or the failing tests reach no source function."""
    config = config or PatchContextConfig()
    found = suspects(bed, state, tests, config, hidden_lines=hidden_lines)
    budget = config.max_tokens * CHARS_PER_TOKEN
    chosen: list[Snippet] = []
    for fn in found.ranked[: config.max_functions]:
        lines = found.texts[fn.path].splitlines()
        first, last = window(lines, fn.start, fn.end, fn.focus, budget)
        if first is None:
            continue
        size = listing_size(lines, first, last)
        chosen.append(Snippet(fn.path, first, tuple(lines[first - 1:last]), fn.name))
        budget -= size
    if not chosen:
        raise TaskError("the failing tests reach no function of a source file")
    top = found.ranked[0]
    shown = {(s.path, n) for s in chosen for n in range(s.start, s.end + 1)}
    marked = tuple((top.path, n) for n in top.hot)
    if len(marked) > config.max_marked or not set(marked) <= shown:
        marked = ()
    chosen.sort(key=lambda s: (s.path, s.start))
    files = {p: found.texts[p] for p in sorted({s.path for s in chosen})}
    return PatchContext(task_id=task_id, failing_output=found.failing_output,
                        snippets=tuple(chosen), files=files, seconds=found.seconds,
                        marked=marked)


REPORTING = frozenset({"__repr__", "__str__", "__format__"})
"""Methods a test framework calls to describe a failure; ranked after the others."""
MIN_WINDOW = 3
"""Lines either side of a big function's most suspicious line, at the least."""


def listing_size(lines: list[str], first: int, last: int) -> int:
    return sum(len(x) + len(str(last)) + 3 for x in lines[first - 1:last])


def window(lines: list[str], start: int, end: int, focus: int, budget: int
            ) -> tuple[int | None, int]:
    """The whole function when it fits ``budget``, else the widest window around
    ``focus`` that does (None: not even ``MIN_WINDOW`` lines either side fit)."""
    if listing_size(lines, start, end) <= budget:
        return start, end
    width = None
    for w in range(MIN_WINDOW, end - start + 1):
        a, b = max(start, focus - w), min(end, focus + w)
        if listing_size(lines, a, b) > budget:
            break
        width = w
    if width is None:
        return None, 0
    return max(start, focus - width), min(end, focus + width)


def failing_output(report: TestReport, tests: Sequence[str], config: PatchContextConfig,
                   hidden_lines: Iterable[str] = ()) -> str:
    """``node id`` plus trimmed failure message of the first failing ``tests``."""
    hidden = {_norm(x) for x in hidden_lines if len(_norm(x)) >= 6}
    results = {r.node_id: r for r in report.results}
    parts: list[str] = []
    shown = 0
    for test in tests:
        r = results.get(test) or results.get(test.split("::", 1)[0])
        if r is not None and r.outcome == Outcome.PASSED:
            continue
        if shown >= config.max_failures:
            parts.append(f"... and {len(tests) - shown} more")
            break
        shown += 1
        message = r.message if r is not None else "(not collected)"
        lines: list[str] = []
        for x in message.splitlines():
            # the runner's message may repeat pytest's explanation lines
            if x.strip() and not any(h in _norm(x) for h in hidden) and _norm(x) not in {
                    _norm(y) for y in lines}:
                lines.append(x.rstrip())
        parts.append(f"FAILED {test}")
        parts += [f"  {x}" for x in lines[: config.max_message_lines]]
    return "\n".join(parts)


def function_spans(text: str) -> list[tuple[int, int, str]]:
    """``(first, last, qualname)`` of every function of a module, decorators included;
    empty when the text does not parse."""
    try:
        tree = pyast.parse(text)
    except (SyntaxError, ValueError):
        return []
    out: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                name = f"{prefix}{child.name}"
                out.append((first, child.end_lineno or child.lineno, name))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _innermost(spans: list[tuple[int, int, str]], line: int) -> tuple[int, int, str] | None:
    inside = [s for s in spans if s[0] <= line <= s[1]]
    return min(inside, key=lambda s: s[1] - s[0]) if inside else None


def _read(bed: TestBed, state: Changes, path: str) -> str | None:
    data = state[path] if path in state else bed.read_base(path)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _norm(line: str) -> str:
    return re.sub(r"\s+", " ", line.strip())


def repo_patch_context(bed: TestBed, config: PatchContextConfig | None = None,
                       max_tests: int = 5) -> PatchContext:
    """The context of a user's repository as it is (``codemill solve --mode patch``): its
    failing tests are the unchanged suite's stable failures (the baseline's, flaky ones
    left out), at most ``max_tests`` of them. Raises ``TaskError`` when none fails."""
    base = bed.baseline(1)
    flaky = base.flaky
    failing = sorted(t for t, o in base.reports[0].outcomes().items()
                     if o in (Outcome.FAILED, Outcome.ERROR) and t not in flaky)
    if not failing:
        raise TaskError("patch mode needs a failing test, and every test of the repository "
                        "passes (use --mode agent)")
    return patch_context(bed, {}, failing[:max_tests], config)
