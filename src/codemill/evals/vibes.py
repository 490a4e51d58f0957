"""Vibe checks: realistic developer requests on real code, answered by each variant.

``make_requests`` reads a snapshot's source (never runs it) and picks functions, then asks
four kinds of request about each:

- ``explain``: explain what the function does (no edits) -> judged, side by side;
- ``question``: which functions call it -> judged, side by side;
- ``add_test``: add a pytest test for it in a new test file -> executable: the new test
  file must collect at least one test and pass, run in a fresh sandbox over the
  unchanged snapshot plus the answer's diff;
- ``refactor``: refactor it for readability without changing behaviour -> executable: the
  diff must change the function's file and every test that passes on the snapshot must
  still pass with the diff applied (the project's own suite, in a fresh sandbox).

``check`` runs the executable checks; answers without one are compared by a judge
(``preference``). Everything runs inside sandboxes; nothing here writes the ledger.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codemill.core import pyast
from codemill.core.ids import content_id
from codemill.core.protocols import ModelBackend
from codemill.core.records import Message, SamplingConfig

KINDS = ("explain", "question", "add_test", "refactor")
EXECUTABLE = ("add_test", "refactor")


@dataclass(frozen=True)
class VibeRequest:
    request_id: str
    kind: str
    env_id: str
    path: str
    function: str
    text: str


def _functions(root: Path) -> list[tuple[str, str, int]]:
    """``(path, name, body lines)`` of top-level public functions outside tests."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(p.startswith(("test", ".")) or p in ("docs", "doc", "setup.py", "conftest.py")
               for p in rel.split("/")):
            continue
        try:
            tree = pyast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                lines = (node.end_lineno or node.lineno) - node.lineno
                if 1 <= lines <= 40:
                    out.append((rel, node.name, lines))
    return out


def make_requests(snapshot: Path, env_id: str, n_functions: int = 2, seed: int = 0
                  ) -> list[VibeRequest]:
    """Four requests about each of ``n_functions`` functions picked with ``seed``."""
    funcs = _functions(Path(snapshot))
    random.Random(seed).shuffle(funcs)
    texts = {
        "explain": "Explain what the function `{f}` in `{p}` does: its inputs, its output "
                   "and one edge case. Do not change any file; answer in your final message "
                   "and then submit.",
        "question": "Which functions in this repository call `{f}` (defined in `{p}`)? "
                    "Look at the code, answer in your final message, then submit.",
        "add_test": "Add a pytest test for `{f}` from `{p}` in a new file "
                    "`tests/test_vibe_{f}.py`, run it to check it passes, then submit.",
        "refactor": "Refactor `{f}` in `{p}` for readability without changing its "
                    "behaviour; keep the project's tests passing, then submit.",
    }
    out = []
    for path, name, _ in funcs[:n_functions]:
        for kind in KINDS:
            text = texts[kind].format(f=name, p=path)
            out.append(VibeRequest(content_id("vibe", env_id, kind, path, name), kind, env_id,
                                   path, name, text))
    return out


def final_answer(steps: Sequence[Any]) -> str:
    """The last assistant message with its action blocks removed."""
    for step in reversed(steps):
        text = step.reply.message.content or ""
        text = re.sub(r"<tool name=\"[^\"]+\">.*?</tool>|```bash\n.*?```", "", text, flags=re.S)
        if text.strip():
            return text.strip()
    return ""


def _added_files(diff: str) -> list[str]:
    return re.findall(r"^\+\+\+ b/(\S+)", diff, re.M)


def check(req: VibeRequest, diff: str, open_sandbox: Callable[[], Any], runner: Any,
          baseline_passing: Callable[[], set[str]], apply: Callable[[Any, str], Any]
          ) -> tuple[bool | None, str]:
    """Run the executable check of ``req`` on ``diff``: ``(passed, what)``; ``(None, ...)``
    for kinds without one. ``open_sandbox`` gives a fresh sandbox over the snapshot;
    ``apply(sb, diff)`` applies a diff in it and returns an ``ExecResult``."""
    if req.kind not in EXECUTABLE:
        return None, "no executable check: judged"
    if not diff.strip():
        return False, "no change made"
    with open_sandbox() as sb:
        applied = apply(sb, diff)
        if applied.exit_code != 0:
            return False, f"diff does not apply: {applied.stderr.strip()[:200]}"
        if req.kind == "add_test":
            tests = [f for f in _added_files(diff) if "test" in Path(f).name]
            if not tests:
                return False, "no test file added"
            report = runner.run(sb, tests, timeout_s=300)
            passed = [r for r in report.results if r.outcome.value == "passed"]
            ok = report.ran and len(passed) == len(report.results)
            return ok, f"{len(passed)}/{len(report.results)} new tests pass"
        if req.path not in _added_files(diff):
            return False, f"{req.path} not changed"
        report = runner.run(sb, None, timeout_s=600)
        now = {r.node_id for r in report.results if r.outcome.value == "passed"}
        lost = sorted(baseline_passing() - now)
        return (report.ran and not lost,
                f"{len(lost)} previously passing tests fail" if lost else "suite still green")


PREFER = ("Two assistants answered the same developer request about a code base. Which "
          'answer is more accurate and helpful? Reply with JSON only: {"better": "A" or "B" '
          'or "tie", "why": "one sentence"}.')


def preference(judge: ModelBackend, request: str, a: str, b: str) -> tuple[str | None, str]:
    """The judge's pick between answers ``a`` and ``b`` (``A``, ``B``, ``tie``); None with
    the error when the judge's reply is unreadable."""
    msgs = [Message(role="system", content=PREFER),
            Message(role="user", content=f"## Request\n{request}\n\n## Answer A\n{a or '(none)'}"
                                         f"\n\n## Answer B\n{b or '(none)'}")]
    try:
        reply = judge.complete(msgs, sampling=SamplingConfig(temperature=0.0, max_tokens=128,
                                                             seed=0))
        data = json.loads(re.search(r"\{.*\}", reply.message.content, re.S).group(0))  # type: ignore[union-attr]
        better = str(data["better"]).strip()
        if better not in ("A", "B", "tie"):
            raise ValueError(f"better = {better!r}")
        return better, str(data.get("why", ""))[:300]
    except Exception as exc:  # an unreadable judge is no preference, recorded
        return None, f"{type(exc).__name__}: {exc}"[:300]


def heuristic_preference(messages: Sequence[Message], tools: object) -> str:
    """Shipped scripted judge for preferences: the answer that names more identifiers of
    the request (a crude relevance reading), ties when equal."""
    text = messages[-1].content
    request, _, rest = text.partition("## Answer A")
    a, _, b = rest.partition("## Answer B")
    names = set(re.findall(r"`([^`]+)`", request))
    sa, sb = (sum(n in part for n in names) + (len(part.split()) > 5) for part in (a, b))
    better = "A" if sa > sb else "B" if sb > sa else "tie"
    return json.dumps({"better": better, "why": f"names {sa} vs {sb} of the request"})
