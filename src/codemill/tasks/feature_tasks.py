"""Feature tasks end to end: cut a tested function, keep the cuts tests notice, validate.

    for task, row in feature_tasks(bed, FeatureConfig(max_tasks=5)): ...

Candidates are ``codemill.tasks.features`` cuts of functions whose lines the coverage map
says consistently passing tests execute. Screening runs those tests on the cut state; a
cut that breaks none is rejected (``no test broke``), as is one that hangs or crashes the
run. Validation derives the labels from full-suite runs (``labels="derive"``): removing a
whole function may legitimately fail tests in other files (an import of it), and those
are FAIL_TO_PASS too. The problem statement gives the signature, the docstring and the
call sites in source files, never the body and never a test.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict

from codemill.core import pyast
from codemill.core.records import TaskKind
from codemill.tasks.features import FeatureCut, call_sites, feature_cuts
from codemill.tasks.patches import make_diff
from codemill.tasks.paths import module_name
from codemill.tasks.records import FunnelCounter, candidate_id
from codemill.tasks.selection import broken_by
from codemill.tasks.statements import feature_statement
from codemill.tasks.testbed import TestBed
from codemill.tasks.validate import Candidate, Decision, ValidationConfig, reject, validate


class FeatureConfig(BaseModel):
    """What feature-task generation tries and how much."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tasks: int = 10
    max_candidates: int = 100
    kinds: tuple[str, ...] = ("stub_body", "remove_function")
    """``stub_body`` (keep signature and docstring) and/or ``remove_function``."""
    min_body_lines: int = 2
    """Skip functions shorter than this: nothing worth implementing."""
    seed: int = 0
    validation: ValidationConfig = ValidationConfig()


def _statement(cut: FeatureCut, sources: dict[str, str]):  # type: ignore[no-untyped-def]
    name = cut.function.rsplit(".", 1)[-1]
    others = {p: s for p, s in sources.items() if p != cut.path}
    others[cut.path] = cut.new_source  # call sites in the cut file, minus the body itself
    sites = call_sites(name, others)
    text = feature_statement(module=module_name(cut.path), qualname=cut.function,
                             signature=cut.signature, docstring=cut.docstring,
                             call_sites=sites, removed_whole=cut.kind == "remove_function")
    return lambda failures: text


def feature_tasks(bed: TestBed, cfg: FeatureConfig, *, funnel: FunnelCounter | None = None,
                  skip: Iterable[str] = ()) -> Iterator[Decision]:
    """Feature tasks for ``bed``'s environment; see the module docstring."""
    funnel = funnel if funnel is not None else FunnelCounter(bed.env_id, "feature")
    skip = set(skip)
    base = bed.baseline(cfg.validation.runs)
    cmap = bed.coverage_map()
    sources = bed.source_files()
    cuts: list[tuple[FeatureCut, set[str]]] = []
    for path in sorted(sources):
        for cut in feature_cuts(path, sources[path], tuple(cfg.kinds)):
            tests = cmap.tests_for(path, range(cut.lines[0], cut.lines[1] + 1)) & base.passing
            if tests and cut.n_body_lines >= cfg.min_body_lines:
                cuts.append((cut, tests))
    random.Random(cfg.seed).shuffle(cuts)
    made = 0
    for cut, tests in cuts[: cfg.max_candidates]:
        if made >= cfg.max_tasks:
            break
        started = time.monotonic()
        original = sources[cut.path].encode("utf-8")
        state: dict[str, bytes | None] = {cut.path: cut.new_source.encode("utf-8")}
        broken_patch = make_diff({cut.path: original}, state)
        cid = candidate_id(bed.env_id, "feature", broken_patch, "")
        if cid in skip:
            funnel.skipped_known += 1
            continue
        funnel.reached("candidates")
        try:
            pyast.parse(cut.new_source)
        except SyntaxError:
            funnel.reject("does not compile")
            yield None, reject(bed.env_id, None, "does not compile", "candidates",
                               candidate_id=cid, kind="feature")
            continue
        funnel.reached("compiled")
        report = bed.run(state, sorted(tests), timeout_s=bed.timeout_for(tests))
        # per-test durations, as synthesis counts them and as the full-suite figure is
        funnel.test_seconds += (sum(r.duration_s for r in report.results) if report.ran
                                else report.duration_s)
        funnel.test_seconds_full += base.cost(None)
        why = "timeout" if report.timed_out else None
        broke = broken_by(report.outcomes(), tests) if report.ran else set(tests)
        if why is None and not broke:
            why = "no test broke"
        if why:
            funnel.reject(why)
            yield None, reject(bed.env_id, None, why, "compiled", candidate_id=cid,
                               kind="feature", seconds=time.monotonic() - started)
            continue
        funnel.reached("broke_a_test")
        c = Candidate(
            kind=TaskKind.FEATURE, candidate_id=cid, broken_state=state, gold_state={},
            broken_patch=broken_patch, gold_patch=make_diff(state, {cut.path: original}),
            fail_to_pass=tuple(sorted(broke)), labels="derive",
            gold_lines={cut.path: set(range(cut.lines[0], cut.lines[1] + 1))},
            skip_mutants=frozenset({cut.new_source}), describe=_statement(cut, sources),
            metadata={"feature": cut.kind, "function": f"{cut.path}::{cut.function}",
                      "signature": cut.signature, "body_lines": cut.n_body_lines},
            screen_seconds=time.monotonic() - started,
        )
        decision = validate(bed, c, cfg.validation, funnel)
        if decision[0] is not None:
            made += 1
        yield decision
