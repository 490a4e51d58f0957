"""Validation: every task, whatever its source, earns its labels by running.

For a ``Candidate`` (a broken state, a gold state, patches and claimed labels) validation

1. runs the suite (or the candidate's selection) in the gold and the broken state, ``runs``
   times each (k, default 3), interleaved;
2. checks the first pair: the gold state passes every FAIL_TO_PASS and PASS_TO_PASS test,
   the broken state fails every FAIL_TO_PASS test and passes every PASS_TO_PASS test.
   ``labels="derive"`` computes the labels from the runs (mined commits); ``"exact"``
   (synthesized bugs) also rejects a candidate whose screened failures do not reproduce,
   and labels every test the full runs flip, the screened ones and any others (a test that
   reaches the mutated line only at import or collection time, through a module-level
   call or a class body, is missing from the per-test coverage map that chose the
   screened set; ``metadata["n_beyond_screen"]`` counts them); ``"check"`` takes the
   labels as given and rejects them when they are wrong (imported tasks);
3. excludes tests whose outcome changes between identical runs (flaky), and rejects the
   candidate when no FAIL_TO_PASS test is left;
4. measures test strength: mutants of the gold change's lines run against the
   FAIL_TO_PASS tests; the kill rate is stored, and a task whose tests kill fewer than
   ``min_kill_rate`` of them (or whose strength could not be measured) is flagged
   ``metadata["weak"] = True``, never silently kept as strong.

A timeout or a run without results rejects the candidate with the reason, never stalls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from codemill.core.diffs import parse_diff, touched_paths
from codemill.core.errors import CodemillError
from codemill.core.records import Outcome, TaskKind, TaskSpec, TestReport
from codemill.tasks.mutate import Mutation, check_mutation, enumerate_mutations
from codemill.tasks.patches import Changes, diff_stats
from codemill.tasks.paths import is_test_path, is_test_support
from codemill.tasks.records import FunnelCounter, TaskValidation, task_id
from codemill.tasks.testbed import TestBed, consistent, failed

VALIDATION_VERSION = "1"
"""Version of the task sources and their validation; bump when the same environment
would yield other tasks or verdicts (the factory's ``tasks`` asset keys on it)."""


class ValidationConfig(BaseModel):
    """How hard validation looks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runs: int = 3
    """Repetitions per state (k); tests whose outcome varies are excluded as flaky."""
    max_mutants: int = 8
    """Mutants of the gold change's lines run to measure test strength."""
    min_kill_rate: float = 0.5
    """Below this kill rate a task is flagged weak."""
    p2p_scope: Literal["all", "selection"] = "all"
    """``all``: PASS_TO_PASS is every test passing in both states (full-suite runs);
    ``selection``: only the candidate's selection runs (cheaper, weaker P2P)."""
    seed: int = 0


@dataclass
class Candidate:
    """A task before validation. States are changes relative to the env's snapshot."""

    kind: TaskKind
    candidate_id: str
    broken_state: Changes
    gold_state: Changes
    broken_patch: str
    gold_patch: str
    test_patch: str = ""
    fail_to_pass: tuple[str, ...] = ()
    """Claimed FAIL_TO_PASS (from screening, or given); with ``derive``, a hint."""
    pass_to_pass: tuple[str, ...] = ()
    selection: tuple[str, ...] | None = None
    """Tests to run with ``p2p_scope="selection"``; None: the whole suite."""
    labels: Literal["derive", "exact", "check"] = "exact"
    hidden_paths: tuple[str, ...] = ()
    gold_lines: dict[str, set[int]] = field(default_factory=dict)
    """Lines of the gold change in the gold state's files (targets of strength mutants)."""
    skip_mutants: frozenset[str] = frozenset()
    """Mutated sources equal to the broken state itself (not a fresh mutant)."""
    describe: Callable[[Mapping[str, str]], str] = lambda failures: ""
    """Builds the problem statement from the broken state's failures {test: message}."""
    metadata: dict[str, Any] = field(default_factory=dict)
    screen_seconds: float = 0.0


Decision = tuple[TaskSpec | None, TaskValidation]


def _reject(bed: TestBed, c: Candidate, reason: str, stage: str, started: float,
            runs: int = 0, detail: str = "", fail_to_pass_ok: bool | None = None,
            flaky_tests: tuple[str, ...] = ()) -> Decision:
    details = {"candidate_id": c.candidate_id, "kind": str(c.kind), "stage": stage,
               "detail": detail[:2000]}
    return None, TaskValidation(
        task_id=c.candidate_id, env_id=bed.env_id, valid=False, reason=reason, runs=runs,
        fail_to_pass_ok=fail_to_pass_ok, flaky_tests=flaky_tests,
        seconds=round(time.monotonic() - started + c.screen_seconds, 3), details=details,
    )


def reject(env_id: str, c: Candidate | None, reason: str, stage: str, *,
           candidate_id: str = "", kind: str = "", detail: str = "",
           seconds: float = 0.0) -> TaskValidation:
    """The row of a candidate rejected before validation (screening, construction)."""
    cid = c.candidate_id if c else candidate_id
    return TaskValidation(
        task_id=cid, env_id=env_id, valid=False, reason=reason, seconds=round(seconds, 3),
        details={"candidate_id": cid, "kind": str(c.kind) if c else kind, "stage": stage,
                 "detail": detail[:2000]},
    )


def _baseline_reports(bed: TestBed, c: Candidate, cfg: ValidationConfig,
                      selection: tuple[str, ...] | None) -> list[TestReport]:
    """When the gold state is the environment's own snapshot and the whole suite runs, the
    baseline's k runs (fresh forks of exactly that state) are the gold runs."""
    if c.gold_state or selection is not None:
        return []
    base = bed.baseline(cfg.runs)
    return base.reports[: cfg.runs] if len(base.reports) >= cfg.runs else []


def _run_error(report: TestReport) -> str | None:
    if report.timed_out:
        return "timeout"
    if not report.results:
        return "no test results"
    return None


def validate(bed: TestBed, c: Candidate, cfg: ValidationConfig,
             funnel: FunnelCounter | None = None) -> Decision:
    """Validate ``c`` on ``bed``; see the module docstring."""
    funnel = funnel or FunnelCounter(bed.env_id, str(c.kind))
    started = time.monotonic()
    selection = c.selection if cfg.p2p_scope == "selection" else None
    gold_reports: list[TestReport] = []
    broken_reports: list[TestReport] = []
    f2p: set[str] = set()
    p2p: set[str] = set()
    reuse = _baseline_reports(bed, c, cfg, selection)
    for i in range(cfg.runs):
        gold = reuse[i] if reuse else bed.run(c.gold_state, selection)
        broken = bed.run(c.broken_state, selection)
        for state, rep in (("gold", gold), ("broken", broken)):
            err = _run_error(rep)
            if err:
                funnel.reject(f"{state} state: {err}")
                return _reject(bed, c, f"{state} state: {err}",
                               "broke_a_test" if i == 0 else "passed_validation", started,
                               i + 1, detail=rep.error or "")
        gold_reports.append(gold)
        broken_reports.append(broken)
        if i == 0:
            verdict = _labels(c, gold.outcomes(), broken.outcomes())
            if isinstance(verdict[0], str):
                reason, detail = verdict
                funnel.reject(reason)
                return _reject(bed, c, reason, "broke_a_test", started, 1,
                               detail=str(detail), fail_to_pass_ok=False)
            f2p, p2p = verdict
            funnel.reached("passed_validation")
    # flakiness: the same state, run k times, must give the same outcomes
    _, flaky_g = consistent(gold_reports)
    _, flaky_b = consistent(broken_reports)
    flaky = (flaky_g | flaky_b) & (f2p | p2p)
    f2p -= flaky
    p2p -= flaky
    for g, b in zip(gold_reports, broken_reports, strict=True):
        go, bo = g.outcomes(), b.outcomes()
        unstable = {t for t in f2p if go.get(t) != Outcome.PASSED or not _fails(bo, t)}
        unstable |= {t for t in p2p if go.get(t) != Outcome.PASSED or
                     bo.get(t) != Outcome.PASSED}
        flaky |= unstable
        f2p -= unstable
        p2p -= unstable
    if not f2p:
        funnel.reject("flaky")
        return _reject(bed, c, "flaky", "passed_validation", started, cfg.runs,
                       flaky_tests=tuple(sorted(flaky)))
    # A doctest in a source module is text the agent edits with the fix: it can neither be
    # hidden nor restored at grading without undoing the fix, so it grades nothing.
    editable = {t for t in f2p | p2p if in_source_module(t)}
    f2p -= editable
    p2p -= editable
    if not f2p:
        reason = "only doctests of source modules tell the states apart"
        funnel.reject(reason)
        return _reject(bed, c, reason, "passed_validation", started, cfg.runs)
    if c.labels == "check" and flaky & set(c.fail_to_pass):
        funnel.reject("flaky")
        return _reject(bed, c, "flaky", "passed_validation", started, cfg.runs,
                       flaky_tests=tuple(sorted(flaky)))
    funnel.reached("not_flaky")
    kill_rate, n_mutants = strength(bed, c, sorted(f2p), cfg)
    weak = kill_rate is None or kill_rate < cfg.min_kill_rate
    if not weak:
        funnel.reached("strong")
    # a test that vanished from the broken run failed with its module's collection error
    msgs = {r.node_id: r.message for r in broken_reports[0].results}
    failures = {t: msgs.get(t) or msgs.get(t.split("::", 1)[0], "") for t in sorted(f2p)}
    files, added, removed = diff_stats(c.gold_patch)
    meta = {
        **c.metadata, "candidate_id": c.candidate_id, "source_kind": str(c.kind),
        "n_fail_to_pass": len(f2p), "n_pass_to_pass": len(p2p),
        "files_changed": files, "lines_changed": added + removed,
        "kill_rate": kill_rate, "n_mutants": n_mutants, "weak": weak,
        "strength": "unmeasured" if kill_rate is None else ("weak" if weak else "strong"),
        "flaky_excluded": sorted(flaky), "validation_runs": cfg.runs,
    }
    if c.labels == "exact":
        meta["n_beyond_screen"] = len(f2p - set(c.fail_to_pass))
    f2p_t, p2p_t = tuple(sorted(f2p)), tuple(sorted(p2p))
    meta.update(test_support(bed, c, [*f2p_t, *p2p_t]))
    # the agent sees neither the tests of the test patch nor the files of FAIL_TO_PASS
    hidden = tuple(sorted(p for p in {*c.hidden_paths, *(t.split("::", 1)[0] for t in f2p_t)}
                          if not in_source_module(p)))  # the agent must see what it fixes
    tid = task_id(bed.env_id, c.broken_patch, c.test_patch, f2p_t, p2p_t)
    task = TaskSpec(task_id=tid, env_id=bed.env_id, kind=c.kind, broken_patch=c.broken_patch,
                    gold_patch=c.gold_patch, test_patch=c.test_patch, fail_to_pass=f2p_t,
                    pass_to_pass=p2p_t, problem_statement=c.describe(failures),
                    hidden_paths=hidden, metadata=meta)
    test_seconds = sum(r.duration_s for r in gold_reports + broken_reports)
    row = TaskValidation(
        task_id=tid, env_id=bed.env_id, valid=True, reason="weak tests" if weak else "",
        runs=cfg.runs, fail_to_pass_ok=True, pass_to_pass_ok=True,
        flaky_tests=tuple(sorted(flaky)), test_strength=kill_rate,
        seconds=round(time.monotonic() - started + c.screen_seconds, 3),
        details={"candidate_id": c.candidate_id, "kind": str(c.kind), "stage": "strong"
                 if not weak else "not_flaky", "n_mutants": n_mutants, "n_f2p": len(f2p),
                 "n_p2p": len(p2p), "test_seconds": round(test_seconds, 3)},
    )
    return task, row


def in_source_module(node_id: str) -> bool:
    """A test id inside a non-test Python module (a doctest of the code under repair)."""
    path = node_id.split("::", 1)[0]
    return path.endswith(".py") and not is_test_path(path)


def test_support(bed: TestBed, c: Candidate, selection: list[str]) -> dict[str, Any]:
    """``{"test_support": paths}``: the workspace files the task's tests open or import in
    the gold state that are test support (``paths.is_test_support``: data files, and
    modules named as testing helpers), minus what the gold patch changes. The grader
    restores them like test files, wherever they live. On failure the reason is stored
    instead (``test_support_error``), never a guess."""
    try:
        used = bed.files_used(c.gold_state, selection)
    except CodemillError as exc:
        return {"test_support_error": str(exc)[:300]}
    gold = set(touched_paths(parse_diff(c.gold_patch)))
    return {"test_support": [p for p in used if p not in gold and is_test_support(p)]}


def _fails(outcomes: Mapping[str, Outcome], test: str) -> bool:
    """Failed, errored, or vanished (its module no longer collects)."""
    return test not in outcomes or failed(outcomes[test])


def _labels(c: Candidate, gold: Mapping[str, Outcome], broken: Mapping[str, Outcome]
            ) -> tuple[set[str], set[str]] | tuple[str, str]:
    """(F2P, P2P) from one gold and one broken run, or (reason, detail) to reject."""
    flips = {t for t, o in gold.items() if o == Outcome.PASSED and _fails(broken, t)}
    both = {t for t, o in gold.items() if o == Outcome.PASSED and
            broken.get(t) == Outcome.PASSED}
    if c.labels == "check":
        checks = (
            ("gold state fails labelled tests",
             [t for t in (*c.fail_to_pass, *c.pass_to_pass) if gold.get(t) != Outcome.PASSED]),
            ("broken state passes FAIL_TO_PASS",
             [t for t in c.fail_to_pass if not _fails(broken, t)]),
            ("broken state fails PASS_TO_PASS",
             [t for t in c.pass_to_pass if broken.get(t) != Outcome.PASSED]),
        )
        for reason, bad in checks:
            if bad:
                return reason, ", ".join(bad[:20])
        return set(c.fail_to_pass), set(c.pass_to_pass)
    if c.labels == "exact":
        claimed = set(c.fail_to_pass)
        if claimed - flips:
            return "claimed FAIL_TO_PASS did not reproduce", ", ".join(sorted(claimed - flips))
        # Flips beyond the screened set are measured like the rest (and must hold in all
        # k runs below), so they are labels, not a reason to throw the bug away.
        return flips, both
    if not flips:
        return "no fail-to-pass", ""
    return flips, both


def strength(bed: TestBed, c: Candidate, f2p: list[str], cfg: ValidationConfig
             ) -> tuple[float | None, int]:
    """Kill rate of up to ``max_mutants`` mutants of the gold lines by ``f2p``."""
    pool: list[tuple[Mutation, str]] = []
    for path, lines in sorted(c.gold_lines.items()):
        data = c.gold_state[path] if path in c.gold_state else bed.read_base(path)
        if data is None or not path.endswith(".py"):
            continue
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        for m in enumerate_mutations(path, source):
            if not set(range(m.lines[0], m.lines[1] + 1)) & lines:
                continue
            if check_mutation(source, m) is None and m.apply(source) not in c.skip_mutants:
                pool.append((m, source))
    if not pool or cfg.max_mutants <= 0:
        return None, 0
    rng = random.Random(cfg.seed)
    by_kind: dict[str, list[tuple[Mutation, str]]] = {}
    for item in pool:
        by_kind.setdefault(item[0].kind, []).append(item)
    for items in by_kind.values():
        rng.shuffle(items)
    picked: list[tuple[Mutation, str]] = []
    while len(picked) < cfg.max_mutants and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(picked) < cfg.max_mutants:
                picked.append(by_kind[kind].pop())
    killed = 0
    for m, source in picked:
        state = {**c.gold_state, m.path: m.apply(source).encode("utf-8")}
        report = bed.run(state, f2p)
        outs = report.outcomes()
        if report.timed_out or not report.ran or any(
                outs.get(t) != Outcome.PASSED for t in f2p):
            killed += 1
    return round(killed / len(picked), 4), len(picked)


def candidate_from_task(bed: TestBed, task: TaskSpec) -> Candidate:
    """A candidate that re-checks an existing (or imported) task's labels as given."""
    from codemill.tasks.patches import apply_patch, changed_lines

    broken = apply_patch(task.broken_patch, bed.read_base) if task.broken_patch else {}

    def read(state: Changes) -> Callable[[str], bytes | None]:
        return lambda p: state[p] if p in state else bed.read_base(p)

    if task.test_patch:
        broken = {**broken, **apply_patch(task.test_patch, read(broken))}
    gold = {**broken, **apply_patch(task.gold_patch, read(broken))}
    lines = {p: ls for p, ls in changed_lines(task.gold_patch).items() if p.endswith(".py")}
    statement = task.problem_statement
    return Candidate(
        kind=task.kind, candidate_id=str(task.metadata.get("candidate_id") or task.task_id),
        broken_state=broken, gold_state=gold, broken_patch=task.broken_patch,
        gold_patch=task.gold_patch, test_patch=task.test_patch,
        fail_to_pass=task.fail_to_pass, pass_to_pass=task.pass_to_pass, labels="check",
        hidden_paths=task.hidden_paths, gold_lines=lines,
        skip_mutants=frozenset(v.decode("utf-8", "replace") for v in broken.values()
                               if v is not None),
        describe=lambda failures: statement, metadata=dict(task.metadata),
    )
