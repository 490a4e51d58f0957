"""The baseline of an environment: its suite run ``k`` times, each in a fresh fork.

``run_baseline(open_fork, runner, k=3)`` opens a sandbox with ``open_fork()`` for each run
(so no run sees another's leftovers), runs the whole suite and closes the sandbox. Per
test it keeps the outcome of every run (None where a run that produced results did not
list the test):

- ``flaky``: tests whose outcome differed between runs (appearing in some runs only counts);
- ``passing``: tests that passed in every run;
- ``usable``: every run produced results and at least one test passes consistently.

``consistent(reports)`` is the one flakiness rule of codemill: the environment's baseline,
task validation (gold and broken states run k times) and grading all use it. A task
layer's ``TestBed`` starts from the build's own k runs (recorded as the environment's
``test_results`` rows) instead of running the suite k more times.

A run that produced no trustworthy results (timeout, crash, no result file) makes the
baseline unusable and ends it (no k-1 more timeouts); its ``error`` is kept in ``errors``.
Runs are sequential on purpose: concurrent runs would compete for the CPU and make
timing-sensitive tests look flaky.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codemill.core.protocols import Sandbox, TestRunner
from codemill.core.records import Outcome, TestReport


def consistent(reports: Sequence[TestReport]) -> tuple[dict[str, Outcome], set[str]]:
    """Outcomes that agree across ``reports``, and the tests that did not (flaky).

    A test missing from one run counts as a different outcome there (it vanished)."""
    seen: dict[str, set[Outcome | None]] = {}
    names = set().union(*(r.outcomes().keys() for r in reports)) if reports else set()
    for r in reports:
        outs = r.outcomes()
        for n in names:
            seen.setdefault(n, set()).add(outs.get(n))
    stable = {n: o for n, v in seen.items() if len(v) == 1 for o in v if o is not None}
    return stable, {n for n, v in seen.items() if len(v) > 1}


@dataclass(frozen=True)
class Baseline:
    """The unchanged suite over ``k`` runs: per-test outcomes, flakiness, timing."""

    reports: tuple[TestReport, ...]
    outcomes: dict[str, tuple[Outcome | None, ...]] = field(default_factory=dict)
    """Per node id, its outcome in each run that produced results, in run order."""
    durations: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(r.error for r in self.reports if r.error)

    @property
    def flaky(self) -> frozenset[str]:
        return frozenset(consistent([r for r in self.reports if r.ran])[1])

    @property
    def passing(self) -> frozenset[str]:
        stable = consistent([r for r in self.reports if r.ran])[0]
        return frozenset(n for n, o in stable.items() if o == Outcome.PASSED)

    @property
    def runs(self) -> int:
        return len(self.reports)

    @property
    def seconds(self) -> float:
        """Wall time of one full-suite run (the mean)."""
        return sum(r.duration_s for r in self.reports) / max(len(self.reports), 1)

    def cost(self, tests: Iterable[str] | None) -> float:
        """Test seconds of running ``tests`` (None: the full suite), each at its slowest.
        An item is a node id, or a file or directory path standing for every test in it
        (a selection of test files costs what their tests cost, not nothing)."""
        slowest = {n: max(d) for n, d in self.durations.items() if d}
        if tests is None:
            return sum(slowest.values())
        chosen: set[str] = set()
        for t in tests:
            if t in slowest or "::" in t:
                chosen.add(t)
                continue
            prefix = t.rstrip("/") + ("::" if t.endswith(".py") else "/")
            chosen.update(n for n in slowest if n.startswith(prefix))
        return sum(slowest.get(t, 0.0) for t in chosen)

    @property
    def usable(self) -> bool:
        return (bool(self.reports) and all(r.ran for r in self.reports)
                and bool(self.passing))

    def rows(self) -> list[dict[str, Any]]:
        """One row per test for the ``test_results`` table: node id, outcomes (strings, None
        where absent), flaky, mean duration over the runs that listed it."""
        flaky = self.flaky
        out = []
        for nid in sorted(self.outcomes):
            durs = self.durations.get(nid, ())
            out.append({
                "node_id": nid,
                "outcomes": [o.value if o is not None else None for o in self.outcomes[nid]],
                "flaky": nid in flaky,
                "passing": nid in self.passing,
                "mean_duration_s": sum(durs) / len(durs) if durs else 0.0,
            })
        return out


def summarize(reports: list[TestReport]) -> Baseline:
    """Combine finished runs into a ``Baseline`` (runs without results add no outcomes)."""
    good = [r for r in reports if r.ran]
    ids = sorted({res.node_id for r in good for res in r.results})
    outcomes: dict[str, tuple[Outcome | None, ...]] = {}
    durations: dict[str, tuple[float, ...]] = {}
    per_run = [{res.node_id: res for res in r.results} for r in good]
    for nid in ids:
        seen = [run.get(nid) for run in per_run]
        outcomes[nid] = tuple(s.outcome if s else None for s in seen)
        durations[nid] = tuple(s.duration_s for s in seen if s)
    return Baseline(tuple(reports), outcomes, durations)


def run_baseline(open_fork: Callable[[], Sandbox], runner: TestRunner, k: int = 3, *,
                 timeout_s: float = 600.0) -> Baseline:
    """Run the whole suite ``k`` times, each in a fresh sandbox from ``open_fork``."""
    if k < 1:
        raise ValueError("k must be at least 1")
    reports = []
    for _ in range(k):
        sandbox = open_fork()
        try:
            report = runner.run(sandbox, None, timeout_s=timeout_s)
        finally:
            sandbox.close()
        reports.append(report)
        if not report.ran:
            break  # the baseline is unusable already; do not spend k-1 more timeouts on it
    return summarize(reports)
