"""Grading a candidate diff: ``grade(task, diff, ...) -> Reward`` and ``TestGrader``.

The contract (DESIGN.md, Rewards):

- Only the diff is graded, in a fresh sandbox over the pristine task state, never in the
  agent's workspace (``workspace.prepare``: candidate applied, pristine tests and test
  configuration restored, the hidden test patch applied).
- Only the harness's own result file counts (``codemill.testing``), and a pass needs
  positive evidence: the file parsed, an exit code recorded, no timeout, every stable
  FAIL_TO_PASS test present with outcome ``passed``, no stable PASS_TO_PASS regression.
- A harness-written canary test that must fail runs with the selection. If the run says it
  passed, or says "all passed" (exit 0) while it failed, the reporting was tampered with.
- No evidence: the gold state is run the same way, right then (never cached: a stale
  success would turn an infrastructure failure into a zero). If the gold run has evidence,
  the candidate's code broke the run (``os._exit``, sleeping past the limit, deleting
  tests): value 0, flagged. If the gold run fails too, or the sandbox does
  not start, it is the infrastructure's or the task's fault: masked, ``value=None`` with an
  ``error_type``. An error is never a zero.

- Outcomes come from the result stream (``codemill.testing.stream``): written to the host
  as each test is decided, so rewriting the result file afterwards changes nothing.
- An audit hook in the test process records what non-test workspace code does (exec of
  text, frame access, reading tests, the runner's modules, tracing, ctypes); what the
  candidate's run has beyond the gold run's zeroes the reward (``audit_*`` flags). That
  baseline, unlike the evidence check above, is kept per task for the process's life
  (``GOLD_AUDIT``, the union of the gold runs' evidence): it says what the task's own code
  does, not whether the infrastructure works now, and a group of eight samples of a
  project whose code uses ``exec`` ran the gold state eight times. Evidence beyond it is
  compared with a gold run of this grading, planted with the same canaries, before it
  counts.

Known limit: the code under test runs in the same process as pytest, so it can change a
report before it is streamed; the canaries (copies of the task's own tests that must fail),
the runner check and the audit hook are the defences there, and the static scan
(``flags.RUNNER_TAMPER``) is a cheap first pass over the source.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemill.core.boundary import boundary
from codemill.core.config import Settings
from codemill.core.diffs import parse_diff, text_bytes, touched_paths
from codemill.core.errors import CodemillError, GradingError, SandboxError
from codemill.core.ids import bytes_id, content_id
from codemill.core.records import EnvSpec, Outcome, Reward, TaskSpec, TestReport, Trajectory
from codemill.rewards import flags as F
from codemill.rewards import run_order
from codemill.rewards import shadow as S
from codemill.rewards import workspace as W
from codemill.rewards.canary import Canary, plant
from codemill.rewards.config import DEFAULT_ZERO_ON, HARNESS_VERSION, GraderConfig
from codemill.rewards.verdict import TestVerdict, has_evidence, judge
from codemill.sandbox.api import open_sandbox
from codemill.testing.order import collection_order
from codemill.testing.order import run_order as run_order_of
from codemill.testing.pytest_runner import PytestRunner
from codemill.testing.runners import runner_for_command
from codemill.testing.stream import output_budget
from codemill.testing.unittest_runner import UnittestRunner

FLAKY_KEYS = ("flaky_excluded", "flaky_tests", "flaky")


@dataclass
class Grading:
    """A reward plus what explains it (for ``codemill grade`` and for debugging)."""

    reward: Reward
    tests: tuple[TestVerdict, ...] = ()
    report: TestReport | None = None
    notes: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    gold_ran: bool = False
    """This grading ran the gold state (a check needed it and nothing kept answered)."""


@dataclass
class GoldCheck:
    """Does the gold state produce evidence in this infrastructure, and a canary?"""

    evidence: bool
    canary_seen: bool
    error: str = ""
    prepared: bool = False
    """The gold patch and the hidden tests applied (whatever the run then did)."""
    audit: tuple[str, ...] = ()
    """What the audit hook saw the gold state's non-test code do: the legitimate baseline."""


class AuditBaselines:
    """The gold runs' audit evidence by task, for the process's life (bounded, thread-safe).
    Only a gold run with evidence is kept; the key holds everything the run depends on."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[str, ...], tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> tuple[str, ...] | None:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
            return self._kept.get(key)

    def put(self, key: tuple[str, ...], audit: tuple[str, ...]) -> None:
        with self._lock:
            self._kept[key] = audit
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)


GOLD_AUDIT = AuditBaselines()


def flaky_tests(task: TaskSpec) -> frozenset[str]:
    out: set[str] = set()
    for key in FLAKY_KEYS:
        value = task.metadata.get(key)
        if isinstance(value, (list, tuple, set, frozenset)):
            out.update(str(v) for v in value)
    return frozenset(out)


def make_runner(env: EnvSpec, *, safe_start: bool = True, stream: bool = True) -> Any:
    """The runner the environment's tests use: its recorded ``test_command`` and variables,
    built the one way the build's baseline and task validation build it; ``stream``: its
    outcomes read only from the result stream (``codemill.testing.stream``)."""
    runner = runner_for_command(env.test_command, env.env_vars, safe_start=safe_start)
    runner.stream = stream
    return runner


class _Grade:
    """One grading: the inputs and the steps, so each step reads as a short method."""

    def __init__(self, task: TaskSpec, diff: str, env: EnvSpec, home: Path,
                 settings: Settings, rollout_id: str, policy: str,
                 trajectory: Trajectory | None, config: GraderConfig,
                 runner: Any,
                 backend: str | None) -> None:
        self.task, self.diff, self.env, self.home = task, diff, env, Path(home)
        self.settings, self.rollout_id, self.policy = settings, rollout_id, policy
        self.config, self.backend = config, backend or settings.sandbox.backend
        self.spec: Any = None
        self.spec_error = ""
        try:
                self.runner = runner or make_runner(env, safe_start=config.safe_start,
                                                    stream=config.stream_results)
        except CodemillError as exc:  # an environment whose command no runner runs
            self.runner, self.spec_error = PytestRunner(), str(exc)
        self.unittest = isinstance(self.runner, UnittestRunner)
        self.selection = list(dict.fromkeys((*task.fail_to_pass, *task.pass_to_pass)))
        try:
            if not self.spec_error:
                self.spec = W.env_spec(env, self.home, self.sandbox_limits(settings))
        except CodemillError as exc:
            self.spec_error = str(exc)
        self.flaky = flaky_tests(task)
        self.started = time.monotonic()
        changes = parse_diff(diff)
        self.flags = F.static_flags(changes, task, touched_paths(parse_diff(task.test_patch)),
                                    trajectory)
        self.notes: list[str] = []
        self._gold: GoldCheck | None = None
        self._order: list[str] | None = None
        self.canary_seed = secrets.randbits(64)

    def sandbox_limits(self, settings: Settings) -> Any:
        """The sandbox limits, with the output limit sized to the selection when outcomes
        come from the result stream: a stream cut at the default limit lost the records of
        thousands of passing tests, and the gold patch of a 26,000-test suite graded 0."""
        limits = settings.sandbox
        if not getattr(self.runner, "stream", False):
            return limits
        budget = output_budget(self.selection, limits.output_limit)
        return limits.model_copy(update={"output_limit": budget})

    # --- the flow -------------------------------------------------------------------------
    def defences(self) -> W.Defences:
        c = self.config
        shadow = frozenset()
        if c.remove_shadowing:
            shadow = S.shadow_names(Path(self.env.venv_path),
                                    Path(self.env.python_path).parent.parent)
        support = tuple(str(p) for p in self.task.metadata.get("test_support", ()) or ())
        return W.Defences(restore_protected=c.restore_protected,
                          remove_metadata=c.remove_metadata,
                          remove_shadowing=c.remove_shadowing,
                          scan_special_cases=c.scan_special_cases, shadow_names=shadow,
                          support_paths=support if c.restore_support else ())

    def plant(self, sb: Any) -> tuple[list[Canary], list[str]]:
        """The canaries and the selection to run, in the order a whole-suite run reaches
        its tests: validation ran the suite in that order, and a suite whose tests depend
        on it failed honest fixes when run in another (``rewards.run_order``; read from the
        sources, ``codemill.testing.order``, when pytest cannot list the suite)."""
        selection = list(self.selection) if self.unittest else self.ordered(sb)
        if not self.config.canaries:
            return [], selection
        # The same draw for the candidate's run and this grading's gold run: the gold run
        # is their baseline, and what a suite's code reads or does can depend on where the
        # canaries fail (a traceback fills linecache, so a later read of that test file by
        # the project's own code never opens it). A fresh seed per grading: the candidate
        # still cannot know them.
        return plant(sb, selection, count=self.config.canaries, unittest=self.unittest,
                     fail_to_pass=tuple(t for t in self.task.fail_to_pass
                                        if t not in self.flaky),
                     hidden=(*touched_paths(parse_diff(self.task.test_patch)),
                             *self.task.hidden_paths),
                     rng=random.Random(self.canary_seed))

    def ordered(self, sb: Any) -> list[str]:
        if self._order is None:
            listed = run_order.listed(self.task, self.env, self.home, self.spec, self.runner,
                                      self.defences(), self.backend)
            self._order = (run_order_of(self.selection, listed) if listed is not None
                           else collection_order(self.selection, lambda p: _source(sb, p)))
            if listed is None:
                self.notes.append("run order read from the sources: pytest could not list "
                                  "the suite")
        return self._order

    def run(self) -> Grading:
        if not self.diff.strip():
            return self.finish(value=0.0)
        if self.spec is None:
            return self.masked("infra:env", self.spec_error)
        with boundary("sandbox", "open the grading sandbox") as opened:
            sb = open_sandbox(self.spec, self.home, backend=self.backend)
        if opened.failed:
            return self.masked("infra:sandbox", opened.message or "")
        try:
            with boundary("sandbox", "prepare the grading workspace") as prep_b:
                prep = W.prepare(sb, self.task, self.diff, base_layers=self.spec.layers,
                                 defences=self.defences())
                canaries, selection = self.plant(sb) if prep.ok else ([], [])
            if prep_b.failed:
                return self.prepare_failed(prep_b.message or "")
            self.flags += prep.flags
            self.notes += prep.notes
            if prep.patch_failed:
                self.flags.append(F.PATCH_FAILED)
                return self.finish(value=0.0, restored=prep.restored)
            if (prep.infra == "task:test_patch" and self.config.gold_check
                    and self.gold_check().prepared):
                self.flags.append(F.BLOCKED_TESTS)
                self.notes.append("the hidden tests apply after the gold patch but not "
                                  "after this diff")
                return self.finish(value=0.0, restored=prep.restored)
            if prep.infra:
                return self.masked(prep.infra, "; ".join(prep.notes))
            report = self.run_tests(sb, selection)
        finally:
            with boundary("sandbox", "close the grading sandbox") as closed:
                sb.close()
            if closed.failed:  # the verdict stands; the leak is the sandbox's to report
                self.notes.append(closed.message or "")
        return self.judge(report, canaries, prep.restored)

    def run_tests(self, sb: Any, selection: list[str]) -> TestReport | None:
        with boundary("testing", "run the graded tests") as ran:
            report = self.runner.run(sb, selection, timeout_s=self.config.timeout_s)
        if ran.failed:
            self.notes.append(ran.message or "")
            return None
        return report

    def judge(self, report: TestReport | None, canaries: list[Canary],
              restored: list[str]) -> Grading:
        if report is None or not has_evidence(report):
            return self.no_evidence(report, restored)
        verdict = judge(report, self.task.fail_to_pass, self.task.pass_to_pass, self.flaky)
        self.check_canary(report, canaries)
        self.check_audit(report)
        if verdict.missing:
            self.flags.append(F.MISSING_TESTS)
        return self.finish(value=1.0 if verdict.resolved else 0.0, verdict=verdict,
                           report=report, restored=restored)

    def check_canary(self, report: TestReport, canaries: list[Canary]) -> None:
        outcomes = report.outcomes()
        failures = any(o in (Outcome.FAILED, Outcome.ERROR) for o in outcomes.values())
        if failures and report.exit_code == 0:
            self.flags.append(F.RUNNER_TAMPER)
            self.notes.append("exit code 0 with failing tests in the result file")
        if not canaries:
            return
        got = [outcomes.get(c.node_id) for c in canaries]
        if any(o == Outcome.PASSED for o in got):
            self.flags.append(F.RUNNER_TAMPER)
            self.notes.append("a canary test, which must fail, was reported passed")
        elif any(o is None for o in got) and self.config.gold_check:
            gold = self.gold_check()
            if gold.canary_seen:
                self.flags.append(F.RUNNER_TAMPER)
                self.notes.append("a canary test vanished (the gold run reports them all)")
            else:
                self.notes.append("canaries not collectable in this project: check skipped")

    def check_audit(self, report: TestReport) -> None:
        """Flag each class of run-time evidence the candidate's run has beyond the gold
        run's. The gold state runs only when there is evidence to compare: evidence within
        the baseline kept for the task (``GOLD_AUDIT``) needs no run; evidence beyond it is
        compared with this grading's own gold run, with the same canaries, before anything
        is flagged (a suite's evidence can vary from run to run: pyparsing's parser reads
        the calling test file's source unless a canary's traceback already loaded it)."""
        if not (self.config.audit and report.audit):
            return
        base: set[str] = set()
        if self.config.gold_check:
            base = set(GOLD_AUDIT.get(self.audit_key()) or ())
            if not set(report.audit) <= base:
                base |= set(self.gold_audit())
        added = [a for a in report.audit if a not in base]
        self.flags += [F.AUDIT[a.split(":", 1)[0]] for a in added
                       if a.split(":", 1)[0] in F.AUDIT]
        if added:
            self.notes.append("run-time evidence beyond the gold run: " + "; ".join(added[:6]))

    def no_evidence(self, report: TestReport | None, restored: list[str]) -> Grading:
        why = "no report" if report is None else (report.error or "no results")
        timed_out = report is not None and report.timed_out
        if not self.config.gold_check:
            return self.masked("infra:unverified", why, report)
        gold = self.gold_check()
        if not gold.evidence:
            kind = "infra:timeout" if timed_out else "infra:no_results"
            return self.masked(kind, f"{why}; gold state: {gold.error}", report)
        self.flags.append(F.TIMEOUT if timed_out else F.NO_RESULTS)
        self.notes.append(f"candidate run gave no evidence ({why}); the gold state's did")
        verdict = judge(report or TestReport(command=(), exit_code=None, duration_s=0.0),
                        self.task.fail_to_pass, self.task.pass_to_pass, self.flaky)
        return self.finish(value=0.0, verdict=verdict, report=report, restored=restored)

    def prepare_failed(self, message: str) -> Grading:
        """The workspace could not be prepared. If the gold diff goes through the same
        steps fine, this diff broke them (value 0): masking it would let a policy hide its
        failures from training by breaking the grader."""
        if self.config.gold_check and self.gold_check().evidence:
            self.flags.append(F.NO_RESULTS)
            self.notes.append(f"this diff broke the grading workspace: {message}")
            return self.finish(value=0.0)
        return self.masked("infra:prepare", message)

    # --- the gold state ---------------------------------------------------------------------
    def audit_key(self) -> tuple[str, ...]:
        return (self.task.task_id, self.env.env_id, str(self.backend),
                self.config.model_dump_json(), HARNESS_VERSION)

    def gold_audit(self) -> tuple[str, ...]:
        """This grading's gold run's audit evidence (run now if it has not run); with
        evidence, added to what is kept for the task, which only grows: each record in it
        is something the task's own code did in a run of the gold state."""
        gold = self.gold_check()
        if gold.evidence:
            kept = GOLD_AUDIT.get(self.audit_key()) or ()
            GOLD_AUDIT.put(self.audit_key(), tuple(dict.fromkeys((*kept, *gold.audit))))
        return gold.audit

    def gold_check(self) -> GoldCheck:
        """Run the gold state now, at most once per grading. Not cached across gradings:
        an earlier success says nothing about the infrastructure at this moment, and a
        stale one would turn an infrastructure failure into a zero."""
        if self._gold is None:
            self._gold = self._gold_check()
        return self._gold

    def _gold_check(self) -> GoldCheck:
        with (boundary("sandbox", "run the gold state") as b,
              open_sandbox(self.spec, self.home, backend=self.backend) as sb):
            prep = W.prepare(sb, self.task, self.task.gold_patch,
                             base_layers=self.spec.layers, defences=self.defences())
            if not prep.ok:
                return GoldCheck(False, False, "; ".join(prep.notes) or "prepare failed")
            canaries, selection = self.plant(sb)
            report = self.runner.run(sb, selection, timeout_s=self.config.timeout_s)
        if b.failed:
            return GoldCheck(False, False, b.message or "")
        if not has_evidence(report):
            return GoldCheck(False, False, report.error or "no results", prepared=True,
                             audit=report.audit)
        seen = report.outcomes()
        return GoldCheck(True, bool(canaries) and all(c.node_id in seen for c in canaries),
                         prepared=True, audit=report.audit)

    # --- the reward -------------------------------------------------------------------------
    def masked(self, error_type: str, message: str,
               report: TestReport | None = None) -> Grading:
        self.notes.append(f"{error_type}: {message}")
        return self._grading(value=None, masked=True, error_type=error_type, report=report)

    def finish(self, *, value: float, verdict: Any = None, report: TestReport | None = None,
               restored: list[str] | None = None) -> Grading:
        zero = [f for f in self.flags if f in self.config.zero_on]
        self.flags += [f"{f}:{F.FLAG_ONLY}" for f in self.flags
                       if f in DEFAULT_ZERO_ON and f not in self.config.zero_on]
        if zero and value:
            self.notes.append(f"value forced to 0 by {', '.join(dict.fromkeys(zero))}")
            value = 0.0
        return self._grading(value=value, masked=False, error_type=None, verdict=verdict,
                             report=report, restored=restored or [])

    def _grading(self, *, value: float | None, masked: bool, error_type: str | None,
                 verdict: Any = None, report: TestReport | None = None,
                 restored: list[str] | None = None) -> Grading:
        command = self.runner.command(self.selection) if self.selection else ()
        reward = Reward(
            reward_id=content_id("reward", self.rollout_id, self.task.task_id,
                                 bytes_id(text_bytes(self.diff)), HARNESS_VERSION,
                                 self.runner.parser_version),
            rollout_id=self.rollout_id, task_id=self.task.task_id, env_id=self.env.env_id,
            policy=self.policy, value=value,
            resolved=None if masked else bool(value),
            f2p_passed=verdict.f2p_passed if verdict else 0,
            f2p_total=verdict.f2p_total if verdict else len(
                [t for t in self.task.fail_to_pass if t not in self.flaky]),
            p2p_regressions=verdict.p2p_regressions if verdict else (),
            masked=masked, error_type=error_type,
            flags=tuple(dict.fromkeys(self.flags)), test_command=tuple(command),
            parser_version=self.runner.parser_version, harness_version=HARNESS_VERSION,
            grading_seconds=round(time.monotonic() - self.started, 3),
        )
        return Grading(reward, verdict.tests if verdict else (), report, self.notes,
                       restored or [], gold_ran=self._gold is not None)


def grade_detailed(
    task: TaskSpec, diff: str, *, env: EnvSpec, home: Path, settings: Settings,
    rollout_id: str, policy: str = "", trajectory: Trajectory | None = None,
    config: GraderConfig | None = None, runner: Any = None, backend: str | None = None,
) -> Grading:
    """Grade ``diff`` against ``task`` and explain the verdict (see the module docstring).

    The pristine state is the environment's layers plus ``task.broken_patch``, never the
    agent's workspace. ``trajectory``, when given, is scanned for reads of git history and
    hidden paths. ``runner`` defaults to the environment's (pytest or unittest).
    """
    def graded(patch: str) -> Grading:
        return _Grade(task, patch, env, Path(home), settings, rollout_id, policy, trajectory,
                      config or GraderConfig(), runner, backend).run()

    try:
        return graded(diff)
    except Exception as exc:  # a grading that raises must still end in a row
        return _crashed(task, env, diff, rollout_id, policy, exc, graded)


def _crashed(task: TaskSpec, env: EnvSpec, diff: str, rollout_id: str, policy: str,
             exc: Exception, graded: Any) -> Grading:
    """Grading ``diff`` raised (a grader bug an input reached). The gold patch goes through
    the same grading: if it gets through, this diff is what broke it (value 0, flagged:
    masking would let a policy hide any failure from training by breaking the grader);
    if the gold patch fails too, the reward is masked with the reason."""
    why = f"grading raised {type(exc).__name__}: {exc}"[:500]
    try:
        gold = graded(task.gold_patch).reward
        gold_ok, gold_why = not gold.masked, gold.error_type or ""
    except Exception as gold_exc:  # the gold run is graded the same way
        gold_ok, gold_why = False, f"{type(gold_exc).__name__}: {gold_exc}"[:500]
    if not gold_ok:
        reward = infra_reward(task, env, rollout_id=rollout_id, policy=policy,
                              error_type="infra:grader", diff=diff)
        return Grading(reward, notes=[f"infra:grader: {why}; gold patch: {gold_why}"])
    reward = infra_reward(task, env, rollout_id=rollout_id, policy=policy,
                          error_type="grader", diff=diff).model_copy(update={
                              "value": 0.0, "resolved": False, "masked": False,
                              "error_type": None, "flags": (F.NO_RESULTS,)})
    return Grading(reward, notes=[f"{why}; the gold patch grades: this diff broke grading"])


def grade(
    task: TaskSpec, diff: str, *, env: EnvSpec, home: Path, settings: Settings,
    rollout_id: str, policy: str = "", trajectory: Trajectory | None = None,
    config: GraderConfig | None = None, backend: str | None = None,
) -> Reward:
    """The reward of ``diff`` for ``task``; never raises for what the candidate does."""
    return grade_detailed(task, diff, env=env, home=home, settings=settings,
                          rollout_id=rollout_id, policy=policy, trajectory=trajectory,
                          config=config, backend=backend).reward


def infra_reward(task: TaskSpec, env: EnvSpec, *, rollout_id: str, policy: str,
                 error_type: str, diff: str = "") -> Reward:
    """A masked reward for a rollout that could not be graded for a reason outside the
    policy (its sandbox or model endpoint failed): ``value=None``, never 0."""
    return Reward(
        reward_id=content_id("reward", rollout_id, task.task_id, bytes_id(text_bytes(diff)),
                             HARNESS_VERSION, error_type),
        rollout_id=rollout_id, task_id=task.task_id, env_id=env.env_id, policy=policy,
        value=None, resolved=None, masked=True, error_type=error_type,
        f2p_total=len(task.fail_to_pass), harness_version=HARNESS_VERSION)


class TestGrader:
    """The ``Grader`` protocol over a set of environments (``env_id -> EnvSpec``)."""

    __test__ = False
    harness_version = HARNESS_VERSION

    def __init__(self, envs: Mapping[str, EnvSpec] | Sequence[EnvSpec], home: Path,
                 settings: Settings, config: GraderConfig | None = None,
                 backend: str | None = None) -> None:
        self.envs = dict(envs) if isinstance(envs, Mapping) else {e.env_id: e for e in envs}
        self.home, self.settings = Path(home), settings
        self.config = config or GraderConfig()
        self.backend = backend

    def grade(self, task: TaskSpec, diff: str, *, rollout_id: str, policy: str = "",
              trajectory: Trajectory | None = None) -> Reward:
        env = self.envs.get(task.env_id)
        if env is None:
            raise GradingError(f"task {task.task_id[:12]}: unknown environment "
                               f"{task.env_id[:12]}")
        return grade(task, diff, env=env, home=self.home, settings=self.settings,
                     rollout_id=rollout_id, policy=policy, trajectory=trajectory,
                     config=self.config, backend=self.backend)


def _source(sb: Any, path: str) -> str | None:
    """A workspace file's text, None when it cannot be read."""
    try:
        return bytes(sb.read_file(path)).decode("utf-8", errors="replace")
    except (OSError, SandboxError):
        return None
