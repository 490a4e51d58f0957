"""Which tests a baseline repeats, and what the repeats let us say about flakiness.

A full run of the suite tells every test's outcome once; flakiness needs a second look. The
baseline repeats a sample of the first run's tests (``plan_repeat``) within a time budget
(``BaselineConfig.repeat_fraction`` of the first run's wall time, never less than
``min_repeat_s``): when the whole suite fits, it is simply run again; otherwise the tests are
taken in a fixed pseudo-random order (a hash of each node id, so the same suite gets the same
sample) and added while their first-run durations plus the run's start-up cost fit. Passing
tests come first (they are what tasks are made of), then failing ones (a test that failed
once may be flaky rather than broken).

``flip_bound`` states the confidence: of the tests seen twice or more, ``flips`` changed
outcome; the Wilson upper bound at 95% on the share of tests that change outcome between two
identical runs. It bounds how many flaky tests the sample let through, on average, not which:
the task layer still runs every test a task uses ``k`` times (validation) before trusting it.

Non-goals: finding tests that fail one run in a thousand (no baseline of a few runs can), or
choosing the sample by what tasks will need (tasks do not exist when an environment is built;
validation repeats exactly those tests).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from codemill.core.config import BaselineConfig
from codemill.core.records import Outcome, TestReport

__all__ = ["BaselineConfig", "flip_bound", "plan_repeat", "shards"]


def plan_repeat(first: TestReport, cfg: BaselineConfig) -> tuple[str, ...] | None:
    """The node ids to run again after ``first`` (a full run with results): ``None`` to
    repeat the whole suite, ``()`` for nothing (no budget)."""
    durations = {r.node_id: max(r.duration_s, 0.0) for r in first.results}
    startup = max(first.duration_s - sum(durations.values()), 0.0)
    budget = max(cfg.repeat_fraction * first.duration_s, cfg.min_repeat_s)
    if first.duration_s <= budget:
        return None
    left = budget - startup
    chosen: list[str] = []
    for nid in _sample_order(first):
        cost = durations[nid]
        if cost <= left:
            chosen.append(nid)
            left -= cost
    return tuple(sorted(chosen))


def _sample_order(first: TestReport) -> list[str]:
    """Passing tests, then failed and errored ones, each group in hash order (module
    collection errors have no test to repeat, skipped tests tell nothing)."""
    def key(nid: str) -> str:
        return hashlib.sha256(nid.encode()).hexdigest()

    passed = [r.node_id for r in first.results if r.outcome == Outcome.PASSED]
    failed = [r.node_id for r in first.results
              if r.outcome in (Outcome.FAILED, Outcome.ERROR) and "::" in r.node_id]
    return sorted(passed, key=key) + sorted(failed, key=key)


def shards(selection: tuple[str, ...], durations: Mapping[str, float],
           n: int) -> list[tuple[str, ...]]:
    """``selection`` split into at most ``n`` shards of about equal test time (the longest
    tests placed first, each on the lightest shard); test files stay together when they can,
    so each fork imports fewer modules."""
    n = max(1, min(n, len(selection)))
    if n == 1:
        return [selection] if selection else []
    by_file: dict[str, list[str]] = {}
    for nid in selection:
        by_file.setdefault(nid.split("::", 1)[0], []).append(nid)
    groups = sorted(by_file.values(), key=lambda g: -sum(durations.get(t, 0.0) for t in g))
    loads = [0.0] * n
    out: list[list[str]] = [[] for _ in range(n)]
    for group in groups:  # ties (tests too quick to time) go to the shard with fewer tests
        i = min(range(n), key=lambda j: (loads[j], len(out[j])))
        out[i].extend(group)
        loads[i] += sum(durations.get(t, 0.0) for t in group)
    return [tuple(sorted(s)) for s in out if s]


def flip_bound(flips: int, seen: int, z: float = 1.96) -> float | None:
    """Wilson score upper bound (95% by default) on the share of tests that change outcome
    between two runs, from ``flips`` of ``seen`` tests observed at least twice."""
    if seen <= 0:
        return None
    p = flips / seen
    centre = p + z * z / (2 * seen)
    spread = z * math.sqrt(p * (1 - p) / seen + z * z / (4 * seen * seen))
    return min(1.0, (centre + spread) / (1 + z * z / seen))
