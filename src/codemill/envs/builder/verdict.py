"""The baseline of a built environment and its verdict: usable, failed, no_tests or flaky.

The suite runs ``k`` times (default once), then a sample of its tests once more within a time
budget (``BuildConfig.baseline_repeat``), each run in a fresh sandbox over the environment
without network (``codemill.testing``'s baseline and runners, a layer below ``envs``). pytest
runs every suite (it runs unittest cases too); when pytest finds no tests in a project whose
tests are plain unittest with names pytest does not collect, the unittest runner gets a turn.

Verdict:
- ``no_tests``: the runner collected nothing;
- ``failed``: no run produced results (collection crashed, a usage error, a timeout), or
  results came back and no test passes;
- ``flaky``: among the tests run more than once, fewer pass reliably than flip, or some runs
  produced results and others did not;
- ``usable``: at least one test passes in every run; flaky tests are listed for the task
  layer to leave out. Tests that need inputs the snapshot lacks (a submodule that could not
  be fetched, a data file) lead the reason, by name (``missing``): they never pass, so the
  task layer never uses them, and the rest of the suite decides the status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codemill.core.config import Settings
from codemill.core.records import EnvSpec, EnvStatus, Outcome, RepoSnapshot, TestReport
from codemill.envs import installs
from codemill.envs.builder.missing import describe, missing_inputs
from codemill.envs.builder.plan import PYTHON, BuildConfig
from codemill.envs.builder.reasons import run_failure
from codemill.repos.detect.project import ProjectInfo
from codemill.sandbox.api import open_sandbox

NO_TESTS = "no tests collected"


@dataclass(frozen=True)
class Verdict:
    status: EnvStatus
    reason: str
    test_command: tuple[str, ...]
    reports: tuple[TestReport, ...]
    n_tests: int = 0
    n_passing: int = 0
    n_flaky: int = 0
    flaky: tuple[str, ...] = ()
    repeats: tuple[TestReport, ...] = ()
    """Runs of a sample of the suite after the full runs (``reports``)."""
    confidence: str = ""
    """How far flakiness was checked (``Baseline.confidence``)."""


@dataclass(frozen=True)
class RunnerChoice:
    kind: str
    test_command: tuple[str, ...]
    """What the environment records as its test command (the harness adds its own
    result-file options when it runs it)."""


def pytest_args(project: ProjectInfo) -> tuple[str, ...]:
    """Options the project's tests need beyond its own config."""
    if project.python_files:
        return ("-o", f"python_files={project.python_files}")
    return ()


def runner_for(project: ProjectInfo, kind: str) -> RunnerChoice:
    if kind == "unittest":
        return RunnerChoice("unittest", (PYTHON, "-m", "unittest", "discover", "-s", ".",
                                         "-p", "test*.py"))
    return RunnerChoice("pytest", (PYTHON, "-m", "pytest", *pytest_args(project)))


def make_runner(test_command: tuple[str, ...], env_vars: tuple[tuple[str, str], ...]) -> Any:
    """The ``TestRunner`` that runs an environment's recorded ``test_command`` (the one
    construction: ``codemill.testing.runners.runner_for_command``)."""
    # Imported here, not at the top: `import codemill.envs` stays light (no runners, no
    # XML parsing) for the commands that only look environments up.
    from codemill.testing.runners import runner_for_command

    return runner_for_command(tuple(test_command) or (PYTHON, "-m", "pytest"), env_vars)


def run_suite_baseline(env: EnvSpec, home: Path, settings: Settings, k: int, timeout_s: float,
                       snapshot_path: Path | None = None, repeat: Any = None) -> Any:
    """``k`` runs of ``env``'s suite in fresh forks, then the sample ``repeat`` (a
    ``BaselineConfig``; None: none) asks for; the testing layer's ``Baseline``."""
    limits = settings.sandbox.model_copy(update={
        "timeout_s": max(settings.sandbox.timeout_s, timeout_s)})
    from codemill.testing.baseline import run_baseline

    spec = installs.sandbox_spec(env, home, limits, snapshot_path=snapshot_path)
    runner = make_runner(env.test_command, env.env_vars)
    return run_baseline(lambda: open_sandbox(spec, home), runner, k=k, timeout_s=timeout_s,
                        repeat=repeat)


def _classify(base: Any, command: tuple[str, ...], tree: Path | None = None) -> Verdict:
    reports = tuple(base.reports)
    repeats = tuple(p.report for p in base.repeats)
    ran = [r for r in reports if r.ran]
    failed_runs = [r for r in reports + repeats if not r.ran]
    n_tests, passing, flaky = len(base.outcomes), base.passing, base.flaky
    common = dict(test_command=command, reports=reports, n_tests=n_tests,
                  n_passing=len(passing), n_flaky=len(flaky), flaky=tuple(sorted(flaky)),
                  repeats=repeats, confidence=base.confidence())
    if not ran:
        first = failed_runs[0] if failed_runs else None
        if first is not None and first.error == NO_TESTS:
            return Verdict(EnvStatus.NO_TESTS, NO_TESTS + _why_none(first), **common)
        reason = run_failure(first) if first is not None else "the suite did not run"
        return Verdict(EnvStatus.FAILED, reason, **common)
    if failed_runs:
        return Verdict(EnvStatus.FLAKY, f"{len(failed_runs)} of {len(reports + repeats)} runs "
                       f"gave no results: {run_failure(failed_runs[0])}", **common)
    if not passing:
        if flaky:
            return Verdict(EnvStatus.FLAKY, f"no test passes reliably ({len(flaky)} of "
                           f"{n_tests} change outcome between runs)", **common)
        return Verdict(EnvStatus.FAILED, _missing(ran[0], tree, _nothing_passes(ran[0])),
                       **common)
    steady = passing & base.checked  # judged on the tests seen more than once
    if len(flaky) > len(steady):
        return Verdict(EnvStatus.FLAKY, f"{len(flaky)} tests change outcome between runs, "
                       f"only {len(steady)} of those run again pass reliably", **common)
    return Verdict(EnvStatus.USABLE, _missing(ran[0], tree, _notes(ran[0])), **common)


def _missing(report: TestReport, tree: Path | None, reason: str) -> str:
    """``reason`` led by the tests that need inputs the snapshot lacks (a submodule not
    fetched, a data file), which are unusable for that reason."""
    found = missing_inputs(report, tree) if tree is not None else []
    if not found:
        return reason
    return "; ".join(p for p in (describe(found), reason) if p)[:700]


def _why_none(report: TestReport) -> str:
    line = run_failure(report)
    return line[len(NO_TESTS):] if line.startswith(NO_TESTS) else f": {line}"


def _broken_modules(report: TestReport) -> list[Any]:
    return [r for r in report.results if r.outcome == Outcome.ERROR and "::" not in r.node_id]


def _nothing_passes(report: TestReport) -> str:
    broken = _broken_modules(report)
    counts = {o: report.count(o) for o in Outcome}
    head = (f"no test passes ({counts[Outcome.FAILED]} failed, {counts[Outcome.ERROR]} "
            f"errors, {counts[Outcome.SKIPPED]} skipped)")
    sample = broken[0] if broken else next(
        (r for r in report.results if r.outcome in (Outcome.FAILED, Outcome.ERROR)), None)
    if sample is None:
        return head
    what = "import error at collection" if broken else "first failure"
    last = (sample.message.splitlines() or [""])[-1]
    return f"{head}; {what}: {sample.node_id}: {last}"[:700]


def _notes(report: TestReport) -> str:
    broken = _broken_modules(report)
    if not broken:
        return ""
    msg = (broken[0].message.splitlines() or [""])[-1]
    return f"{len(broken)} test modules fail to import (e.g. {broken[0].node_id}: {msg})"[:700]


def baseline_verdict(env: EnvSpec, project: ProjectInfo, home: Path, settings: Settings,
                     config: BuildConfig, snapshot: RepoSnapshot,
                     say: Callable[[str], None]) -> Verdict:
    """Run the baseline of a freshly built ``env`` and classify it."""
    verdict = None
    kinds = ["pytest"] + (["unittest"] if project.unittest_only else [])
    for kind in kinds:
        choice = runner_for(project, kind)
        trial = env.model_copy(update={"test_command": choice.test_command})
        say(f"baseline: {config.baseline_runs} full run(s) with {kind}, then a sample again")
        base = run_suite_baseline(trial, home, settings, config.baseline_runs,
                                  config.test_timeout_s, Path(snapshot.path),
                                  config.baseline_repeat)
        verdict = _classify(base, choice.test_command, Path(snapshot.path))
        say(f"baseline: {verdict.confidence}")
        if verdict.status != EnvStatus.NO_TESTS:
            return verdict
    assert verdict is not None
    if not project.has_tests:
        return replace(verdict, reason=f"{NO_TESTS}: the tree has no test files "
                       "(test_*.py, *_test.py, tests.py); a release's sdist may leave them out")
    return verdict
