"""Bug synthesis: mutate tested code, keep the mutants that tests catch, validate them.

    for task, row in synthesize(bed, SynthConfig(max_tasks=10), funnel=counter): ...

1. The coverage map (built once per environment) says which tests run which lines.
   Candidates are mutations (``codemill.tasks.operators``) of covered lines only, taken
   round-robin over kinds in a seeded order so one prolific operator cannot crowd out the
   others.
2. Screening runs only the consistently passing tests that cover the mutated lines, with a
   timeout derived from their baseline time. A candidate is accepted for validation when at
   least one of them fails; it is rejected, with the reason counted, when it does not
   compile, changes nothing, is not covered, hangs (``timeout``), breaks imports, crashes
   the test process (``no test results``), or breaks no test.
3. Validation (``codemill.tasks.validate``, ``labels="exact"``) reruns the full suite in both
   states k times: no test outside the screened set may change.
4. Composition: 2-3 accepted mutations in different functions form a harder task.

Generators yield ``(TaskSpec | None, TaskValidation)`` one candidate at a time, so a caller
persists as it goes and a crash loses at most the candidate in flight; ``skip`` holds the
candidate ids decided before (resume without redoing or duplicating).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from codemill.core.records import Outcome, TaskKind
from codemill.tasks.coverage_map import CoverageMap
from codemill.tasks.mutate import Mutation, apply_edits, check_mutation, enumerate_mutations
from codemill.tasks.patches import make_diff
from codemill.tasks.records import FunnelCounter, candidate_id
from codemill.tasks.selection import broken_by, select_tests
from codemill.tasks.statements import failure_statement, forbidden_lines
from codemill.tasks.testbed import Baseline, TestBed
from codemill.tasks.validate import Candidate, Decision, ValidationConfig, reject, validate

_IMPORT_HINTS = ("ImportError", "ModuleNotFoundError", "SyntaxError", "IndentationError",
                 "during collection")


class SynthConfig(BaseModel):
    """What synthesis tries and how much."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tasks: int = 20
    """Stop after this many validated single-mutation tasks."""
    max_candidates: int = 400
    """Screen at most this many candidates."""
    kinds: tuple[str, ...] | None = None
    """Operator kinds to use (None: all)."""
    compose: int = 3
    """Composite tasks (2-3 accepted mutations in different functions) to try."""
    seed: int = 0
    validation: ValidationConfig = ValidationConfig()


@dataclass
class Screened:
    """A candidate that broke at least one selected test."""

    mutations: tuple[Mutation, ...]
    state: dict[str, bytes | None]
    broke: set[str]
    selection: set[str]
    messages: dict[str, str]


def order_candidates(sources: dict[str, str], cmap: CoverageMap, kinds: Iterable[str] | None,
                     seed: int) -> list[tuple[Mutation, str]]:
    """Covered mutations, interleaved by kind in a seeded order."""
    by_kind: dict[str, list[tuple[Mutation, str]]] = {}
    for path in sorted(sources):
        covered = cmap.covered(path)
        if not covered:
            continue
        for m in enumerate_mutations(path, sources[path], kinds):
            span = set(range(m.lines[0], m.lines[1] + 1))
            body = set(range(m.func_lines[0], m.func_lines[1] + 1))
            if span & covered or (m.kind == "change_default" and body & covered):
                by_kind.setdefault(m.kind, []).append((m, sources[path]))
    rng = random.Random(seed)
    for items in by_kind.values():
        rng.shuffle(items)
    out: list[tuple[Mutation, str]] = []
    while any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind]:
                out.append(by_kind[kind].pop())
    return out


def _apply(muts: Iterable[tuple[Mutation, str]]) -> dict[str, bytes | None]:
    by_path: dict[str, tuple[str, list[Mutation]]] = {}
    for m, src in muts:
        by_path.setdefault(m.path, (src, []))[1].append(m)
    out: dict[str, bytes | None] = {}
    for path, (src, ms) in by_path.items():
        out[path] = apply_edits(src, [e for m in ms for e in m.edits]).encode("utf-8")
    return out


def screen(bed: TestBed, cmap: CoverageMap, base: Baseline, muts: list[tuple[Mutation, str]],
           funnel: FunnelCounter) -> Screened | str:
    """Run the covering tests on the mutated state; the Screened result or a reason."""
    selection: set[str] = set()
    for m, _ in muts:
        selection |= select_tests(cmap, base, m)
    if not selection:
        return "not covered"
    state = _apply(muts)
    report = bed.run(state, sorted(selection), timeout_s=bed.timeout_for(selection))
    # test-seconds: what the selected tests took vs what the whole suite takes (baseline
    # durations); a hang costs its timeout either way
    spent = sum(r.duration_s for r in report.results) if report.ran else report.duration_s
    funnel.test_seconds += spent
    funnel.test_seconds_full += base.cost(None) + (report.duration_s if report.timed_out else 0)
    if report.timed_out:
        return "timeout"
    outs = report.outcomes()
    # a collection error is reported against the file (no "::"), or says so
    if any(r.outcome == Outcome.ERROR and ("::" not in r.node_id or any(
            h in r.message for h in _IMPORT_HINTS)) for r in report.results):
        return "breaks imports"
    if not report.ran:
        return "no test results"
    broke = broken_by(outs, selection)
    if not broke:
        return "no test broke"
    messages = {r.node_id: r.message for r in report.results if r.node_id in broke}
    return Screened(tuple(m for m, _ in muts), state, broke, selection, messages)


def _candidate(bed: TestBed, muts: list[tuple[Mutation, str]], s: Screened | None,
               cid: str, broken_patch: str) -> Candidate:
    originals = {m.path: src.encode("utf-8") for m, src in muts}
    state = _apply(muts)
    gold_patch = make_diff(state, originals)
    hidden = tuple(sorted({t.split("::", 1)[0] for t in (s.broke if s else ())}))

    def describe(failures: Mapping[str, str]) -> str:
        # The statement must quote none of the tests that will be hidden: the screened
        # ones and any other test the full runs found failing (validation labels those too).
        paths = sorted(set(hidden) | {t.split("::", 1)[0] for t in failures})
        sources = [(bed.read_base(p) or b"").decode("utf-8", "replace") for p in paths]
        return failure_statement(failures, forbidden=forbidden_lines(gold_patch, sources))

    gold_lines: dict[str, set[int]] = {}
    for m, _ in muts:
        gold_lines.setdefault(m.path, set()).update(range(m.lines[0], m.lines[1] + 1))
    ops = [m.kind for m, _ in muts]
    return Candidate(
        kind=TaskKind.SYNTH, candidate_id=cid, broken_state=state, gold_state={},
        broken_patch=broken_patch, gold_patch=gold_patch,
        fail_to_pass=tuple(sorted(s.broke)) if s else (),
        selection=tuple(sorted(s.selection)) if s else None, labels="exact",
        hidden_paths=hidden, gold_lines=gold_lines,
        skip_mutants=frozenset(v.decode("utf-8") for v in state.values() if v is not None),
        describe=describe,
        metadata={"operators": ops, "operator": ops[0] if len(ops) == 1 else "composite",
                  "functions": [f"{m.path}::{m.function}" for m, _ in muts],
                  "mutation_ids": [m.mutation_id for m, _ in muts],
                  "descriptions": [m.description for m, _ in muts]},
    )


def _decide(bed: TestBed, cmap: CoverageMap, base: Baseline, muts: list[tuple[Mutation, str]],
            cfg: SynthConfig, funnel: FunnelCounter, skip: set[str]
            ) -> tuple[Decision | None, Screened | None]:
    """Screen and validate one (possibly composite) candidate."""
    started = time.monotonic()
    state = _apply(muts)
    originals = {m.path: src.encode("utf-8") for m, src in muts}
    broken_patch = make_diff(originals, state)
    cid = candidate_id(bed.env_id, "synth", broken_patch, "")
    if cid in skip:
        funnel.skipped_known += 1
        return None, None
    funnel.reached("candidates")
    for m, src in muts:
        why = check_mutation(src, m)
        if why:
            funnel.reject(why)
            return (None, reject(bed.env_id, None, why, "candidates", candidate_id=cid,
                                 kind="synth")), None
    funnel.reached("compiled")
    s = screen(bed, cmap, base, muts, funnel)
    if isinstance(s, str):
        funnel.reject(s)
        return (None, reject(bed.env_id, None, s, "compiled", candidate_id=cid, kind="synth",
                             seconds=time.monotonic() - started)), None
    funnel.reached("broke_a_test")
    c = _candidate(bed, muts, s, cid, broken_patch)
    c.screen_seconds = time.monotonic() - started
    return validate(bed, c, cfg.validation, funnel), s


def synthesize(bed: TestBed, cfg: SynthConfig, *, funnel: FunnelCounter | None = None,
               skip: Iterable[str] = ()) -> Iterator[Decision]:
    """Synthesized tasks for ``bed``'s environment; see the module docstring."""
    funnel = funnel if funnel is not None else FunnelCounter(bed.env_id, "synth")
    skip = set(skip)
    base = bed.baseline(cfg.validation.runs)
    cmap = bed.coverage_map()
    ordered = order_candidates(bed.source_files(), cmap, cfg.kinds, cfg.seed)
    accepted: list[tuple[Mutation, str]] = []
    n_valid = 0
    for m, src in ordered[: cfg.max_candidates]:
        if n_valid >= cfg.max_tasks:
            break
        decision, _ = _decide(bed, cmap, base, [(m, src)], cfg, funnel, skip)
        if decision is None:
            continue
        if decision[0] is not None:
            n_valid += 1
            accepted.append((m, src))
        yield decision
    yield from _compose(bed, cmap, base, accepted, cfg, funnel, skip)


def _compose(bed: TestBed, cmap: CoverageMap, base: Baseline,
             accepted: list[tuple[Mutation, str]], cfg: SynthConfig, funnel: FunnelCounter,
             skip: set[str]) -> Iterator[Decision]:
    """Up to ``cfg.compose`` tasks of 2-3 accepted mutations in different functions."""
    rng = random.Random(cfg.seed + 1)
    tried: set[tuple[str, ...]] = set()
    made = 0
    attempts = 0
    while made < cfg.compose and attempts < cfg.compose * 5 and len(accepted) >= 2:
        attempts += 1
        size = min(len(accepted), rng.choice((2, 3)))
        group = rng.sample(accepted, size)
        funcs = {(m.path, m.function) for m, _ in group}
        key = tuple(sorted(m.mutation_id for m, _ in group))
        if len(funcs) < size or key in tried:
            continue
        tried.add(key)
        decision, _ = _decide(bed, cmap, base, group, cfg, funnel, skip)
        if decision is None:
            continue
        made += 1
        yield decision
