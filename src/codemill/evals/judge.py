"""Model-as-judge: a rubric score for a rollout's patch and explanation, by any backend.

The judge reads what a reviewer would (the task statement, the agent's final message and
the diff it submitted) and scores four criteria from 1 to 5: ``correctness_argument``
(does the change plausibly fix the stated problem, and is that argued), ``minimality``
(only what the fix needs), ``readability`` and ``explanation``, plus a ``verdict``
("pass" if it would accept the patch). It never sees the hidden tests or the reward, and its
result never changes the execution reward: judgments are rows of their own, and their
agreement with execution outcomes is measured (``agreement``).

A reply that is not the asked-for JSON leaves the judgment unscored (``overall`` None,
``error`` set): an unreadable judge is not a low score.

``make_judge("heuristic")`` is a deterministic judge shipped as package code (a scripted
backend over a fixed reading of the diff), for tests and for a floor to compare real
judges against; any other spec goes to ``codemill.agent.models.make_backend``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codemill.core.ids import content_id
from codemill.core.protocols import ModelBackend
from codemill.core.records import Message, SamplingConfig
from codemill.evals.stats import Rate, cohen_kappa, wilson

RUBRIC_VERSION = "1"
CRITERIA = ("correctness_argument", "minimality", "readability", "explanation")
SYSTEM = (
    "You review a code change made by an automated agent. Score it from 1 (bad) to 5 "
    "(excellent) on each criterion: correctness_argument (does it plausibly fix the "
    "stated problem, and is that argued), minimality (changes only what the fix needs), "
    "readability, explanation (does the agent say what it changed and why). Then give a "
    'verdict: "pass" if you would accept the change, else "fail". Answer with one JSON '
    'object only: {"correctness_argument": n, "minimality": n, "readability": n, '
    '"explanation": n, "verdict": "pass"|"fail", "rationale": "one sentence"}.'
)
MAX_DIFF_CHARS = 6000


@dataclass(frozen=True)
class Judgment:
    judgment_id: str
    rollout_id: str
    task_id: str
    variant: str
    judge: str
    scores: dict[str, int]
    overall: float | None
    """Mean of the criteria (1-5); None when unscored."""
    verdict: bool | None
    rationale: str
    resolved: bool | None
    """The execution outcome, copied for agreement (read, never written back)."""
    error: str | None = None

    def row(self) -> dict[str, Any]:
        return {"judgment_id": self.judgment_id, "rollout_id": self.rollout_id,
                "task_id": self.task_id, "variant": self.variant, "judge": self.judge,
                "rubric_version": RUBRIC_VERSION, "scores": json.dumps(self.scores),
                "overall": self.overall, "verdict": self.verdict,
                "rationale": self.rationale, "resolved": self.resolved, "error": self.error}


def judgment_id(rollout_id: str, judge: str) -> str:
    return content_id("judgment", rollout_id, judge, RUBRIC_VERSION)


def judge_messages(problem: str, final_message: str, diff: str) -> list[Message]:
    shown = diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n[diff cut]\n"
    user = (f"## Problem\n{problem.strip()}\n\n## Agent's final message\n"
            f"{final_message.strip() or '(none)'}\n\n## Diff submitted\n"
            f"```diff\n{shown or '(empty: no change)'}\n```")
    return [Message(role="system", content=SYSTEM), Message(role="user", content=user)]


_JSON = re.compile(r"\{.*\}", re.S)


def parse_reply(text: str) -> tuple[dict[str, int], bool, str]:
    """Scores, verdict and rationale from a judge's reply; ``ValueError`` if unreadable."""
    match = _JSON.search(text or "")
    if match is None:
        raise ValueError("no JSON object in the judge's reply")
    data = json.loads(match.group(0))
    scores = {}
    for c in CRITERIA:
        v = int(data[c])
        if not 1 <= v <= 5:
            raise ValueError(f"{c} = {v} is outside 1..5")
        scores[c] = v
    verdict = str(data.get("verdict", "")).strip().lower()
    if verdict not in ("pass", "fail"):
        raise ValueError(f"verdict {verdict!r} is neither pass nor fail")
    return scores, verdict == "pass", str(data.get("rationale", ""))[:500]


def judge_one(backend: ModelBackend, judge: str, *, rollout_id: str, task_id: str,
              variant: str, problem: str, final_message: str, diff: str,
              resolved: bool | None) -> Judgment:
    """Ask ``backend`` to judge one rollout; a failing or unreadable judge is recorded as
    unscored with its error."""
    jid = judgment_id(rollout_id, judge)
    base = dict(judgment_id=jid, rollout_id=rollout_id, task_id=task_id, variant=variant,
                judge=judge, resolved=resolved)
    try:
        reply = backend.complete(judge_messages(problem, final_message, diff),
                                 sampling=SamplingConfig(temperature=0.0, max_tokens=256,
                                                         seed=0))
        scores, verdict, why = parse_reply(reply.message.content)
    except Exception as exc:  # a judge failure is data: unscored, with the reason
        return Judgment(**base, scores={}, overall=None, verdict=None, rationale="",
                        error=f"{type(exc).__name__}: {exc}"[:500])
    return Judgment(**base, scores=scores, overall=sum(scores.values()) / len(scores),
                    verdict=verdict, rationale=why)


@dataclass(frozen=True)
class Agreement:
    """How often the judge's verdict matches the execution outcome."""

    judge: str
    n: int
    agree: Rate
    kappa: float | None
    confusion: dict[str, int]
    """``judge_pass/resolved`` etc.: the 2x2 table."""
    unscored: int

    def to_json(self) -> dict[str, Any]:
        return {"judge": self.judge, "n": self.n, "agreement": self.agree.value,
                "low": self.agree.low, "high": self.agree.high, "kappa": self.kappa,
                "confusion": self.confusion, "unscored": self.unscored}


def agreement(judge: str, judgments: Sequence[Mapping[str, Any]]) -> Agreement:
    """Agreement of verdicts with execution outcomes over judgments that have both
    (unscored judgments and masked rewards are left out and counted)."""
    pairs = [(bool(j["verdict"]), bool(j["resolved"])) for j in judgments
             if j.get("verdict") is not None and j.get("resolved") is not None]
    confusion = {"pass/resolved": 0, "pass/unresolved": 0, "fail/resolved": 0,
                 "fail/unresolved": 0}
    for v, r in pairs:
        confusion[f"{'pass' if v else 'fail'}/{'resolved' if r else 'unresolved'}"] += 1
    return Agreement(judge, len(pairs), wilson(sum(v == r for v, r in pairs), len(pairs)),
                     cohen_kappa(pairs), confusion, len(judgments) - len(pairs))


def _heuristic(messages: Sequence[Message], tools: object) -> str:
    """A fixed reading of the diff: empty -> fail; test files touched or a large change ->
    low minimality; a change to source with an explanation -> pass."""
    text = messages[-1].content
    diff = text.split("## Diff submitted", 1)[-1]
    changed = [ln for ln in diff.splitlines()
               if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    files = re.findall(r"^\+\+\+ b/(\S+)", diff, re.M)
    touches_tests = any("test" in Path(f).name for f in files)
    explained = "(none)" not in text.split("## Diff submitted", 1)[0]
    if not changed:
        scores = dict.fromkeys(CRITERIA, 1)
        verdict = "fail"
    else:
        small = len(changed) <= 12
        scores = {"correctness_argument": 2 if touches_tests else 4,
                  "minimality": 5 if small else 2, "readability": 4,
                  "explanation": 4 if explained else 2}
        verdict = "fail" if touches_tests else "pass"
    return json.dumps({**scores, "verdict": verdict,
                       "rationale": f"{len(changed)} changed lines in {len(files)} file(s)"})


def make_judge(spec: str, *, home: str | Path | None = None) -> ModelBackend:
    """A judge backend: ``heuristic`` (shipped, deterministic) or any model spec."""
    from codemill.agent.models.scripted import ScriptedBackend

    if spec == "heuristic":
        return ScriptedBackend(_heuristic, name="judge:heuristic")
    from codemill.agent.models import make_backend

    return make_backend(spec, home=home)
