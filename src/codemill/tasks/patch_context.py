"""Patch-mode context: what a user has before the fix, measured in the broken state.

    ctx = task_patch_context(bed, task)     # one sandboxed, covered run of FAIL_TO_PASS

Patch mode (``codemill.rollouts.patch_mode``) shows the model the problem statement, the
failing tests' output and the code those tests reach, and asks for an edit. This module
computes the last two. Validation keeps the broken state's failures only inside the problem
statement's prose, and no coverage of the broken state, so both are measured here: the
FAIL_TO_PASS tests run once under per-test coverage (``TestBed.covered_run``) in a sandbox
fork of the broken state (``broken_patch`` plus the hidden ``test_patch``, as validation
ran it). The untrusted code runs only in that sandbox; the host reads files and results.

What the context holds, and what it never holds:

- ``failing_output``: each FAIL_TO_PASS test's failure message from that run, trimmed, with
  the hidden tests' own code lines removed (as the problem statement does);
- ``snippets``: the enclosing functions of the source lines the FAIL_TO_PASS tests execute
  (test files excluded), ranked by how many failing tests run them and whether a failure
  message names their file (a traceback frame), kept within ``max_tokens``;
- ``files``: the broken state's text of each file a snippet comes from (the answer's edits
  are applied to it to make the diff).

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

from codemill.core.errors import TaskError
from codemill.core.records import Outcome, TaskSpec, TestReport
from codemill.tasks.patches import Changes, apply_patch, code_lines
from codemill.tasks.paths import is_test_path
from codemill.tasks.testbed import TestBed

CONTEXT_VERSION = "1"
"""Bump when the same task would get another context (cache file names carry it)."""
CHARS_PER_TOKEN = 4


class PatchContextConfig(BaseModel):
    """How much the patch-mode prompt may show."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(768, ge=32)
    """Estimated tokens of code listing at most (characters / 4)."""
    max_failures: int = Field(3, ge=1)
    """Failing tests whose output is shown."""
    max_message_lines: int = Field(8, ge=1)
    """Lines of one test's failure message shown."""


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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PatchContext:
        d = json.loads(text)
        snippets = tuple(Snippet(s["path"], s["start"], tuple(s["lines"]), s.get("name", ""))
                         for s in d.get("snippets", ()))
        return cls(task_id=d["task_id"], failing_output=d.get("failing_output", ""),
                   snippets=snippets, files=dict(d.get("files", {})),
                   seconds=d.get("seconds", 0.0), error=d.get("error"))


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
    path = (bed.home / "cache" / "patch_context" /
            f"{task.task_id}-{CONTEXT_VERSION}-{config.max_tokens}.json")
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


def patch_context(bed: TestBed, state: Changes, tests: Sequence[str],
                  config: PatchContextConfig | None = None, *, task_id: str = "",
                  hidden_lines: Iterable[str] = ()) -> PatchContext:
    """Run ``tests`` in ``state`` under coverage (sandboxed) and build the context.
    ``hidden_lines`` (code of tests the model must not see) are cut from the output.
    Raises ``TaskError`` when the run gives no results or no coverage."""
    config = config or PatchContextConfig()
    if not tests:
        raise TaskError("no failing test to run")
    report, cmap = bed.covered_run(state, list(tests), known=set(tests))
    output = failing_output(report, tests, config, hidden_lines)
    texts: dict[str, str] = {}
    weights: dict[tuple[str, int, int], list[float]] = {}
    names: dict[tuple[str, int, int], str] = {}
    for path, per_line in sorted(cmap.lines.items()):
        if is_test_path(path) or not path.endswith(".py"):
            continue
        text = _read(bed, state, path)
        if text is None:
            continue
        texts[path] = text
        spans = function_spans(text)
        for line, idx in per_line.items():
            span = _innermost(spans, line)
            if span is None:
                continue
            key = (path, span[0], span[1])
            names[key] = span[2]
            w = weights.setdefault(key, [0.0, 0.0])
            w[0] = max(w[0], float(len(idx)))
    named = set(re.findall(r"([\w./-]+\.py)", output))
    for (path, _s, _e), w in weights.items():
        w[1] = 1.0 if any(path.endswith(n) or n.endswith(path) for n in named) else 0.0
    ranked = sorted(weights, key=lambda k: (-weights[k][1], -weights[k][0], k[2] - k[1],
                                            k[0], k[1]))
    budget = config.max_tokens * CHARS_PER_TOKEN
    chosen: list[Snippet] = []
    for path, start, end in ranked:
        lines = tuple(texts[path].splitlines()[start - 1:end])
        size = sum(len(x) + len(str(start)) + 3 for x in lines)
        if size > budget:
            if chosen:
                continue
            lines = _clip(lines, start, budget)
            size = budget
        chosen.append(Snippet(path, start, lines, names[(path, start, end)]))
        budget -= size
    chosen.sort(key=lambda s: (s.path, s.start))
    files = {p: texts[p] for p in sorted({s.path for s in chosen})}
    if not chosen:
        raise TaskError("the failing tests reach no function of a source file")
    return PatchContext(task_id=task_id, failing_output=output, snippets=tuple(chosen),
                        files=files, seconds=cmap.seconds)


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
        tree = ast.parse(text)
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


def _clip(lines: tuple[str, ...], start: int, budget: int) -> tuple[str, ...]:
    kept: list[str] = []
    for line in lines:
        budget -= len(line) + len(str(start)) + 3
        if budget < 0:
            break
        kept.append(line)
    return tuple(kept)


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
