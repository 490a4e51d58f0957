"""Coverage-based test selection, and the proof that it gives the full suite's verdict.

Screening a candidate bug runs only the consistently passing tests that execute its lines
(or, for lines that run at import time, the lines of its function). That is sound when a
test that never executes a line cannot notice the line changed; it can be wrong when a
test reaches the code in a subprocess, through module-level state, or by reading source
text. ``check_selection`` measures it instead of assuming it: for a sample of candidates it
runs both the selection and the full suite and compares the verdicts (the set of baseline-
passing tests that now fail).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from codemill.tasks.coverage_map import CoverageMap
from codemill.tasks.mutate import Mutation
from codemill.tasks.testbed import Baseline, TestBed, failed


def select_tests(cmap: CoverageMap, baseline: Baseline, m: Mutation) -> set[str]:
    """Consistently passing tests that run the mutated lines (else its function's)."""
    lines = range(m.lines[0], m.lines[1] + 1)
    chosen = cmap.tests_for(m.path, lines) & baseline.passing
    if not chosen:
        chosen = cmap.tests_for(m.path, range(m.func_lines[0], m.func_lines[1] + 1))
        chosen &= baseline.passing
    return chosen


def broken_by(report_outcomes: dict, candidates: set[str]) -> set[str]:
    """Tests of ``candidates`` that failed, errored or vanished in a run."""
    return {t for t in candidates if failed(report_outcomes.get(t)) or t not in report_outcomes}


@dataclass
class SelectionCheck:
    """Selective vs full-suite verdicts on a sample of candidates."""

    sampled: int = 0
    agree: int = 0
    disagreements: list[dict] = field(default_factory=list)
    seconds_selected: float = 0.0
    seconds_full: float = 0.0

    @property
    def ok(self) -> bool:
        return self.sampled > 0 and self.agree == self.sampled


def check_selection(bed: TestBed, cmap: CoverageMap, candidates: Sequence[tuple[Mutation, str]],
                    sample: int = 5, seed: int = 0) -> SelectionCheck:
    """Run ``sample`` of ``candidates`` ((mutation, module source) pairs) both ways and
    compare: the verdict is the set of baseline-passing tests that fail."""
    base = bed.baseline()
    pool = [(m, s) for m, s in candidates if select_tests(cmap, base, m)]
    rng = random.Random(seed)
    picked = rng.sample(pool, min(sample, len(pool)))
    out = SelectionCheck()
    for m, source in picked:
        state = {m.path: m.apply(source).encode("utf-8")}
        chosen = select_tests(cmap, base, m)
        sel = bed.run(state, sorted(chosen))
        full = bed.run(state, None)
        out.seconds_selected += sel.duration_s
        out.seconds_full += full.duration_s
        selective = broken_by(sel.outcomes(), chosen) if sel.ran else {"<no results>"}
        complete = broken_by(full.outcomes(), base.passing) if full.ran else {"<no results>"}
        if sel.timed_out and full.timed_out:
            selective = complete = {"<timeout>"}
        out.sampled += 1
        if selective == complete:
            out.agree += 1
        else:
            out.disagreements.append({
                "mutation": m.mutation_id[:12], "path": m.path, "lines": list(m.lines),
                "kind": m.kind, "only_full": sorted(complete - selective)[:10],
                "only_selected": sorted(selective - complete)[:10],
            })
    return out
