"""The baseline of an environment: its unchanged suite run in fresh forks, and what those
runs say about each test (outcome, flakiness, time).

``run_baseline(open_fork, runner, k=1, repeat=BaselineConfig())`` opens a sandbox with
``open_fork()`` for each run (no run sees another's leftovers):

1. ``k`` full runs of the suite, one after the other;
2. then, with ``repeat``, one more look at a sample of the tests within a time budget
   (``codemill.testing.repeat``): the whole suite again when it fits, else a selection,
   split across ``repeat.worker_count()`` forks running at once.

Per test it keeps the outcome of every full run (None where a run that produced results did
not list it) and of every repeat that selected it:

- ``flaky``: tests whose outcome differed between runs (appearing in some runs only counts;
  a selected test missing from a repeat counts);
- ``passing``: tests that passed in every full run and are not flaky;
- ``usable``: every run produced results and at least one test passes consistently;
- ``flip_bound``: with which confidence the sample rules flakiness out (see ``repeat``).

``consistent(reports)`` is the one flakiness rule of codemill: the environment's baseline
(a repeat is compared with the full runs restricted to its selection), task validation (gold
and broken states run k times) and grading all use it. ``Baseline.refine`` adds later runs of
the unchanged environment (a task layer's ``TestBed`` tops the build's runs up to the k that
validation needs, and feeds back every run of the unchanged state it makes), so flakiness
knowledge grows with use instead of being bought up front.

A run that produced no trustworthy results (timeout, crash, no result file) makes the
baseline unusable and ends it (no more timeouts); its ``error`` is kept in ``errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from codemill.core.protocols import Sandbox, TestRunner
from codemill.core.records import Outcome, TestReport
from codemill.testing.repeat import BaselineConfig, flip_bound, plan_repeat, shards

__all__ = ["Baseline", "BaselineConfig", "Repeat", "consistent", "run_baseline", "summarize"]


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


def restrict(report: TestReport, selection: Iterable[str]) -> TestReport:
    """``report`` as if only ``selection`` had run (for comparing with a repeat of it)."""
    chosen = set(selection)
    return report.model_copy(update={
        "results": tuple(r for r in report.results if r.node_id in chosen)})


@dataclass(frozen=True)
class Repeat:
    """A run of a selection of the unchanged suite: what was asked, and what came back."""

    selection: tuple[str, ...]
    report: TestReport


@dataclass(frozen=True)
class Baseline:
    """The unchanged suite over its full runs and repeats: per-test outcomes, flakiness,
    timing, and how far flakiness was checked."""

    reports: tuple[TestReport, ...]
    """The full runs, in order."""
    outcomes: dict[str, tuple[Outcome | None, ...]] = field(default_factory=dict)
    """Per node id, its outcome in each full run that produced results, in run order."""
    durations: dict[str, tuple[float, ...]] = field(default_factory=dict)
    repeats: tuple[Repeat, ...] = ()
    """Later runs of selections of the unchanged suite (the build's sample, a task layer's
    runs of the unchanged state)."""

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(r.error for r in self.all_reports if r.error)

    @property
    def all_reports(self) -> tuple[TestReport, ...]:
        return self.reports + tuple(p.report for p in self.repeats)

    @property
    def flaky(self) -> frozenset[str]:
        full = [r for r in self.reports if r.ran]
        found = consistent(full)[1]
        for rep in self.repeats:
            if rep.report.ran:
                found |= consistent([restrict(r, rep.selection)
                                     for r in (*full, rep.report)])[1]
        return frozenset(found)

    @property
    def passing(self) -> frozenset[str]:
        stable = consistent([r for r in self.reports if r.ran])[0]
        flaky = self.flaky
        return frozenset(n for n, o in stable.items() if o == Outcome.PASSED and n not in flaky)

    def times_seen(self) -> dict[str, int]:
        """Per node id, how many runs (full runs and repeats that selected it) gave it an
        outcome or should have."""
        seen = {n: len(outs) for n, outs in self.outcomes.items()}  # one per good full run
        for rep in self.repeats:
            if rep.report.ran:
                for n in rep.selection:
                    seen[n] = seen.get(n, 0) + 1
        return seen

    @property
    def checked(self) -> frozenset[str]:
        """Tests seen in at least two runs: the ones flakiness was looked for in."""
        return frozenset(n for n, c in self.times_seen().items() if c >= 2)

    @property
    def flip_bound(self) -> float | None:
        """95% upper bound on the share of tests that change outcome between two runs,
        from the tests seen at least twice (None: no test was)."""
        checked = self.checked
        return flip_bound(len(self.flaky & checked), len(checked))

    def confidence(self) -> str:
        """One line on how far flakiness was checked, for a person."""
        checked, n = self.checked, len(self.outcomes)
        if not checked:
            return f"flakiness unchecked: each of {n} tests ran once"
        bound = self.flip_bound or 0.0
        return (f"{len(checked)} of {n} tests ran at least twice, {len(self.flaky & checked)}"
                f" changed outcome (at most {100 * bound:.1f}% of tests flip, 95%)")

    @property
    def runs(self) -> int:
        """Full runs of the suite."""
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
        return sum(slowest.get(t, 0.0) for t in self.expand(tests))

    def expand(self, tests: Iterable[str]) -> set[str]:
        """Node ids of a selection whose items may be test files or directories."""
        chosen: set[str] = set()
        for t in tests:
            if t in self.outcomes or "::" in t:
                chosen.add(t)
                continue
            prefix = t.rstrip("/") + ("::" if t.endswith(".py") else "/")
            chosen.update(n for n in self.outcomes if n.startswith(prefix))
        return chosen

    @property
    def usable(self) -> bool:
        return (bool(self.reports) and all(r.ran for r in self.all_reports)
                and bool(self.passing))

    def refine(self, report: TestReport, selection: Sequence[str] | None = None) -> Baseline:
        """This baseline plus a later run of the unchanged suite (``selection`` None: the
        whole suite). A run without results adds nothing: it is not evidence about tests."""
        if not report.ran:
            return self
        if selection is None:
            return summarize([*self.reports, report], self.repeats)
        chosen = self.expand(selection) | set(report.outcomes())  # files stand for their tests
        return replace(self, repeats=(*self.repeats, Repeat(tuple(sorted(chosen)), report)))

    def rows(self) -> list[dict[str, Any]]:
        """One row per test for the ``test_results`` table: node id, outcomes (strings, None
        where absent), flaky, mean duration over the runs that listed it."""
        flaky, passing = self.flaky, self.passing
        out = []
        for nid in sorted(self.outcomes):
            durs = self.durations.get(nid, ())
            out.append({
                "node_id": nid,
                "outcomes": [o.value if o is not None else None for o in self.outcomes[nid]],
                "flaky": nid in flaky,
                "passing": nid in passing,
                "mean_duration_s": sum(durs) / len(durs) if durs else 0.0,
            })
        return out


def summarize(reports: Sequence[TestReport], repeats: Sequence[Repeat] = ()) -> Baseline:
    """Combine finished full runs (and repeats) into a ``Baseline`` (runs without results
    add no outcomes)."""
    good = [r for r in reports if r.ran]
    ids = sorted({res.node_id for r in good for res in r.results})
    outcomes: dict[str, tuple[Outcome | None, ...]] = {}
    durations: dict[str, tuple[float, ...]] = {}
    per_run = [{res.node_id: res for res in r.results} for r in good]
    for nid in ids:
        seen = [run.get(nid) for run in per_run]
        outcomes[nid] = tuple(s.outcome if s else None for s in seen)
        durations[nid] = tuple(s.duration_s for s in seen if s)
    return Baseline(tuple(reports), outcomes, durations, tuple(repeats))


def run_baseline(open_fork: Callable[[], Sandbox], runner: TestRunner, k: int = 1, *,
                 timeout_s: float = 600.0, repeat: BaselineConfig | None = None) -> Baseline:
    """``k`` full runs of the suite, then (with ``repeat``) a sample of it once more, each
    in a fresh sandbox from ``open_fork``; see the module doc."""
    if k < 1:
        raise ValueError("k must be at least 1")
    reports: list[TestReport] = []
    for _ in range(k):
        reports.append(_run(open_fork, runner, None, timeout_s))
        if not reports[-1].ran:
            return summarize(reports)  # unusable already: do not spend more timeouts on it
    base = summarize(reports)
    if repeat is None:
        return base
    selection = plan_repeat(reports[0], repeat)
    if selection is None:
        return summarize([*reports, _run(open_fork, runner, None, timeout_s)])
    if not selection:
        return base
    durations = {n: max(d) for n, d in base.durations.items() if d}
    parts = shards(selection, durations, repeat.worker_count())
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        done = list(pool.map(lambda part: _repeat(open_fork, runner, part, timeout_s), parts))
    return summarize(reports, [Repeat(p, r) for p, r in zip(parts, done, strict=True)])


def _repeat(open_fork: Callable[[], Sandbox], runner: TestRunner, part: Sequence[str],
            timeout_s: float) -> TestReport:
    """Run ``part`` (node ids) again. A node id the runner cannot select again (a
    parametrized id that does not round-trip makes pytest refuse the whole selection) is the
    selection's fault, not the suite's: without results, the files of ``part`` run instead and
    the report keeps only ``part``'s tests. A failure of that run is the suite's."""
    report = _run(open_fork, runner, part, timeout_s)
    if report.ran or report.timed_out:
        return report
    files = sorted({n.split("::", 1)[0] for n in part})
    whole = _run(open_fork, runner, files, timeout_s)
    return whole  # compared on ``part`` only (``Baseline.flaky`` restricts repeats)


def _run(open_fork: Callable[[], Sandbox], runner: TestRunner,
         selection: Sequence[str] | None, timeout_s: float) -> TestReport:
    sandbox = open_fork()
    try:
        return runner.run(sandbox, list(selection) if selection else None, timeout_s=timeout_s)
    finally:
        sandbox.close()
