"""A test bed: one environment, ready to run its tests in any state of its sources.

``TestBed`` wraps what every task step does over and over: open a fresh sandbox fork over
the environment's layers (snapshot plus build layer), write a state change into it (a
``Changes`` mapping, ``None`` deletes), run the test runner on a selection with a timeout,
close. It also reads the layers' files on the host (stored, sealed trees: reading them
runs nothing), knows the environment's baseline (per-test outcomes over identical runs,
flaky tests excluded) and builds the coverage map.

The baseline grows with use: the build records one full run and a repeated sample; when a
step needs ``k`` full runs, ``baseline(k)`` adds only the missing ones, and every later run
of the unchanged state (a selection or the whole suite, e.g. a synthesized task's gold runs)
is folded in (``Baseline.refine``), so a test that flips in any of them is flaky from then on.

Untrusted code only ever runs inside the sandbox; the host reads files and result files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from codemill.core.config import SandboxConfig
from codemill.core.errors import CodemillError, TaskError
from codemill.core.records import EnvSpec, Outcome, TestReport
from codemill.envs import installs
from codemill.sandbox.api import SandboxSpec, open_sandbox
from codemill.sandbox.layers import MergedView
from codemill.tasks import coverage_map as cov
from codemill.tasks.patches import Changes
from codemill.tasks.paths import is_source_path
from codemill.testing.baseline import Baseline, consistent
from codemill.testing.baseline import summarize as baseline_of
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.runners import runner_for_command, same_runner_with
from codemill.testing.unittest_runner import UnittestRunner

__all__ = ["Baseline", "TestBed", "apply_changes", "baseline_of", "consistent", "failed"]

MIN_TIMEOUT_S = 12.0
TIMEOUT_FACTOR = 3.0
RECALIBRATE_EVERY = 20
"""Runs between two probes of the machine's speed (``TestBed._recalibrate``)."""


def failed(outcome: Outcome | None) -> bool:
    return outcome in (Outcome.FAILED, Outcome.ERROR)


class TestBed:
    """Run an environment's tests in arbitrary states of its sources; see module doc."""

    __test__ = False

    def __init__(
        self,
        env_id: str,
        spec: SandboxSpec,
        home: Path,
        *,
        runner: PytestRunner | UnittestRunner | None = None,
        backend: str | None = None,
        env_vars: Mapping[str, str] | None = None,
        baseline: Baseline | None = None,
        min_timeout_s: float = MIN_TIMEOUT_S,
        python: str | None = None,
    ) -> None:
        self.env_id = env_id
        self.python = python
        """The environment's interpreter version (``3.7.16``; None: not known)."""
        self.spec = spec
        self._view = MergedView(spec.layers)
        self.home = Path(home).absolute()
        self.env_vars = dict(env_vars or {})
        self.runner = runner or PytestRunner(env=self.env_vars)
        self.backend = backend or spec.limits.backend
        self._baseline = baseline
        self.min_timeout_s = min_timeout_s
        self.test_seconds = 0.0
        """Test time spent by every run of this bed (sum of reported durations)."""
        self.runs = 0
        self.slowdown = 1.0
        """How many times slower the machine runs the unchanged suite now than when its
        baseline was measured (never below 1); every timeout scales by it."""
        self._calibrated_at: int | None = None

    @classmethod
    def from_env(cls, env: EnvSpec, home: Path, limits: SandboxConfig | None = None, *,
                 backend: str | None = None, min_timeout_s: float = MIN_TIMEOUT_S,
                 baseline_reports: Sequence[TestReport] = (),
                 baseline_repeats: Sequence[TestReport] = ()) -> TestBed:
        """A bed over a built environment (its snapshot, build layer and venv), running
        pytest exactly as the environment's ``test_command`` does: its options (e.g. an
        ``-o python_files=...`` the builder found necessary) decide what is collected.
        ``baseline_reports`` are the build's own runs of the unchanged suite (its
        ``test_results`` rows): when they all produced results they are the bed's
        baseline, so validation does not run the suite k more times. ``baseline_repeats``
        are the build's runs of a sample after them: each counts for the tests it lists."""
        spec = installs.sandbox_spec(env, home, limits)
        runner = runner_for_command(env.test_command, env.env_vars)
        reports = list(baseline_reports)
        baseline = baseline_of(reports) if reports and all(r.ran for r in reports) else None
        for rep in baseline_repeats if baseline is not None else ():
            baseline = baseline.refine(rep, tuple(rep.outcomes()))
        return cls(env.env_id, spec, home, runner=runner, backend=backend,
                   env_vars=dict(env.env_vars), min_timeout_s=min_timeout_s,
                   baseline=baseline, python=env.python or None)

    # --- files of the snapshot ---------------------------------------------------------------
    def read_base(self, path: str) -> bytes | None:
        """The unchanged workspace's bytes at ``path`` (None: absent or not a file)."""
        try:
            return self._view.read(path)
        except (OSError, CodemillError):
            return None

    def source_files(self) -> dict[str, str]:
        """Every non-test Python module of the workspace that is UTF-8 text, by path."""
        out: dict[str, str] = {}
        for entry in self._view.walk():
            rel = "/".join(entry.rel)
            if not entry.is_file or not is_source_path(rel) or any(
                    p.startswith(".") for p in entry.rel):
                continue
            data = self.read_base(rel)
            if data is None or b"\x00" in data:
                continue
            try:
                out[rel] = data.decode("utf-8")
            except UnicodeDecodeError:
                continue  # odd encodings are left alone rather than rewritten wrongly
        return dict(sorted(out.items()))

    # --- sandboxes ---------------------------------------------------------------------------
    @contextmanager
    def sandbox(self, changes: Changes | None = None, *, top: Path | None = None,
                ro_binds: tuple[tuple[Path, str], ...] = ()) -> Iterator[Any]:
        """A fresh fork with ``changes`` written into its workspace."""
        spec = self.spec if top is None else self.spec.with_top(top)
        if ro_binds:
            spec = spec.model_copy(update={"ro_binds": (*spec.ro_binds, *ro_binds)})
        sb = open_sandbox(spec, self.home, backend=self.backend)
        try:
            apply_changes(sb, changes or {})
            yield sb
        finally:
            sb.close()

    def run(self, changes: Changes | None = None, selection: Sequence[str] | None = None,
            *, timeout_s: float | None = None) -> TestReport:
        """Run ``selection`` (None: the suite) in the state ``changes`` of the snapshot."""
        if selection is not None and not selection:
            raise TaskError("empty test selection")
        limit = timeout_s if timeout_s is not None else self.timeout_for(selection)
        report = self._run(changes, selection, limit)
        if report.timed_out and timeout_s is None and self._recalibrate(selection, limit):
            report = self._run(changes, selection, self.timeout_for(selection))
        return report

    def _run(self, changes: Changes | None, selection: Sequence[str] | None,
             limit: float) -> TestReport:
        with self.sandbox(changes) as sb:
            report = self.runner.run(sb, list(selection) if selection else None,
                                     timeout_s=limit)
        self.runs += 1
        self.test_seconds += report.duration_s
        if not changes and self._baseline is not None:  # the unchanged state: more evidence
            self._baseline = self._baseline.refine(report, selection or None)
        return report

    def files_used(self, changes: Changes | None, selection: Sequence[str]) -> list[str]:
        """Workspace files that running ``selection`` in state ``changes`` opens or imports
        (recorded by the runner's safe start; pytest environments only)."""
        if not isinstance(self.runner, PytestRunner) or not self.runner.safe_start:
            raise TaskError("recording the files tests use needs a pytest environment")
        with self.sandbox(changes) as sb:
            host, inside = sb.results_dir
            runner = same_runner_with(self.runner,
                                      env={"CODEMILL_RECORD_OPENS": f"{inside}/opens.json"})
            report = runner.run(sb, list(selection), timeout_s=self.timeout_for(selection))
            try:
                data = json.loads((Path(host) / "opens.json").read_text())
            except (OSError, ValueError) as exc:
                raise TaskError(f"no record of the files the tests used ({report.error or exc})"
                                ) from exc
        return sorted(str(p) for p in data if isinstance(p, str))

    def _recalibrate(self, selection: Sequence[str] | None, limit: float) -> bool:
        """After a timeout: time the unchanged ``selection`` now, under the same load. When
        it too runs much slower than its baseline, the machine is busier than when the
        baseline was measured (not the state slow): ``slowdown`` grows to match and True
        asks for one more run. At most once per ``RECALIBRATE_EVERY`` runs, so states that
        really hang (a mutant's endless loop) cost one probe, not one each."""
        if self._baseline is None or (self._calibrated_at is not None
                                      and self.runs - self._calibrated_at < RECALIBRATE_EVERY):
            return False
        self._calibrated_at = self.runs
        cap = max(10 * limit, 60.0)
        probe = self._run(None, selection, cap)
        observed = cap if probe.timed_out else probe.duration_s
        wanted = TIMEOUT_FACTOR * observed  # the limit the unchanged selection needs now
        if wanted <= 1.25 * limit:
            return False  # the machine keeps up: it is the state that is slow
        self.slowdown *= wanted / limit
        return True

    def timeout_for(self, selection: Sequence[str] | set[str] | None) -> float:
        """A generous limit for ``selection``: a multiple of its baseline time, times the
        machine's measured ``slowdown``."""
        if self._baseline is None:
            return 600.0
        base = self._baseline.seconds if selection is None else self._baseline.cost(selection)
        return self.slowdown * max(self.min_timeout_s,
                                   TIMEOUT_FACTOR * base + self.min_timeout_s / 2)

    # --- baseline and coverage ---------------------------------------------------------------
    def baseline(self, runs: int = 3) -> Baseline:
        """The unchanged suite with at least ``runs`` full runs: the runs known already (the
        build's, or cached under ``<home>/cache/baseline/``) topped up with the missing ones,
        which are cached in turn."""
        if self._baseline is not None and self._baseline.runs >= runs:
            return self._baseline
        cache = self.home / "cache" / "baseline" / f"{self.env_id}.json"
        try:
            cached = [TestReport.model_validate(r) for r in json.loads(cache.read_text())]
        except (OSError, ValueError):
            cached = []
        if self._baseline is None or len(cached) > self._baseline.runs:
            repeats = self._baseline.repeats if self._baseline is not None else ()
            self._baseline = baseline_of(cached, repeats) if cached else None
        while self._baseline is None or self._baseline.runs < runs:
            report = self.run(None, None, timeout_s=self.spec.limits.timeout_s)
            if not report.ran:
                raise TaskError(f"baseline run failed: {report.error}")
            if self._baseline is None:
                self._baseline = baseline_of([report])  # later runs refine it (``_run``)
        if self._baseline.runs > len(cached):
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps([r.model_dump(mode="json")
                                         for r in self._baseline.reports]))
        return self._baseline

    def coverage_map(self, *, use_cache: bool = True) -> cov.CoverageMap:
        """Per-test line coverage of the snapshot (cached per environment)."""
        if use_cache:
            cached = cov.load_cached(self.home, self.env_id)
            if cached is not None:
                return cached
        base = self.baseline()
        report, cmap = self.covered_run(None, None, known=set(base.outcomes) | base.flaky,
                                        timeout_s=max(self.timeout_for(None) * 3, 120.0))
        if not report.ran:
            raise TaskError(f"coverage run failed: {report.error}")
        cov.save_cached(self.home, cmap)
        return cmap

    def covered_run(self, changes: Changes | None, selection: Sequence[str] | None, *,
                    known: set[str] | None = None, timeout_s: float | None = None
                    ) -> tuple[TestReport, cov.CoverageMap]:
        """Run ``selection`` in the state ``changes`` under per-test coverage, in one
        sandbox fork; the report and the map (contexts limited to ``known``, default the
        tests the report lists). Pytest environments only; raises ``TaskError`` when the
        run leaves no coverage data."""
        tools = cov.tools_dir(self.home, self.python)
        inside = cov.TOOLS_INSIDE if self.backend == "bwrap" else str(tools)
        binds = ((tools, cov.TOOLS_INSIDE),) if self.backend == "bwrap" else ()
        if not isinstance(self.runner, PytestRunner):
            raise TaskError("per-test coverage needs a pytest environment")
        started = time.monotonic()
        limit = timeout_s if timeout_s is not None else max(self.timeout_for(selection) * 3,
                                                             60.0)
        with self.sandbox(changes, ro_binds=binds) as sb:
            root = sb.run(["pwd", "-P"], timeout_s=30).stdout.strip() or "/repo"
            own = sb.run([self.runner.python, "-c", cov.PROBE], timeout_s=60).exit_code == 0
            no_cov = ("--no-cov",) if sb.run([self.runner.python, "-c", cov.PYTEST_COV_PROBE],
                                             timeout_s=60).exit_code == 0 else ()
            host_results, inside_results = sb.results_dir
            env = dict(self.env_vars)
            extra = cov.coverage_env(inside, inside_results, root, own)
            if env.get("PYTHONPATH"):
                extra["PYTHONPATH"] = f"{extra['PYTHONPATH']}:{env['PYTHONPATH']}"
            runner = same_runner_with(self.runner, extra_args=(*no_cov, "-p", "codemill_covctx"),
                                      env={**env, **extra})
            report = runner.run(sb, list(selection) if selection else None, timeout_s=limit)
            if not report.results:
                raise TaskError(f"coverage run failed: {report.error or 'no test results'}")
            tests = known if known is not None else set(report.outcomes())
            cmap = cov.read_results_coverage(Path(host_results), self.env_id, tests,
                                             root + "/")
        cmap.seconds = round(time.monotonic() - started, 3)
        return report, cmap


def apply_changes(sb: Any, changes: Changes) -> None:
    """Write ``changes`` into a sandbox's workspace (None: delete the file)."""
    doomed = []
    for path, data in sorted(changes.items()):
        if data is None:
            doomed.append(path)
        else:
            sb.write_file(path, data)
    if doomed:
        res = sb.run(["rm", "-f", "--", *doomed], timeout_s=60)
        if res.exit_code != 0:
            raise TaskError(f"could not delete {', '.join(doomed)}: {res.stderr[-200:]}")
