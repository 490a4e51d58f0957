"""Build an executable environment from a snapshot: ``build_env(snapshot, home, settings)``.

Steps, each reported through ``progress``:

1. detect (``codemill.repos.detect.project``; static, never runs project code on the host);
2. pick an interpreter (``codemill.envs.interpreters``; ``python=`` overrides);
3. install in a **build sandbox** (bwrap, network on) that sees only the snapshot at
   ``/repo`` (copy-on-write), the venv being built at ``/env``, the uv cache and the uv
   binary; nothing else of the host. ``uv venv --relocatable`` then one ``uv pip install``
   of the editable project with its test extras and the harness, falling back through the
   attempts of ``codemill.envs.builder.plan`` (by era first, then today's index; rich, then
   lean), each degrading one failing requirement at a time (``degrade``). Then collect the
   suite once and install distributions for modules the tests import but nothing declared
   (``codemill.envs.builder.imports``), and when pytest itself breaks on the suite, test
   tooling as of the snapshot's date (``tooling``);
4. record the lock from the venv's files (``codemill.envs.lock``), seal the venv and
   publish it in ``<home>/envs/`` (identical venvs are shared); what the build wrote into
   ``/repo`` (generated version files, egg-info) becomes the environment's layer;
5. run the baseline: the whole suite once (``k`` times if asked), then a sample of its
   tests again within a time budget, each run in a fresh fork without network
   (``codemill.testing``'s baseline, a layer below);
6. classify: usable / failed / no_tests / flaky, with a reason a person can act on.

A project that fails to build is a result (status ``failed`` with a reason), never an
exception; only programming errors propagate. Ids: ``env_id = content_id(snapshot_id,
python version, lock_hash, BUILDER_VERSION)``.

Does not: write the ledger (the caller persists ``BuildResult``), or trust anything the
project prints (verdicts come from the harness's own result files, locks from the venv).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from codemill.core.boundary import boundary
from codemill.core.config import Settings
from codemill.core.errors import BuildError, SandboxError, TestRunError
from codemill.core.ids import content_id
from codemill.core.records import EnvSpec, EnvStatus, RepoSnapshot, TestReport
from codemill.envs import installs
from codemill.envs.builder.install import Installed, install
from codemill.envs.builder.plan import BuildConfig
from codemill.envs.builder.records import BUILDER_VERSION, BuildResult, BuildStep
from codemill.envs.builder.verdict import baseline_verdict, pytest_args, runner_for
from codemill.envs.interpreters import Interpreter, choose_interpreter
from codemill.repos.detect.project import ProjectInfo, detect_project

__all__ = ["BUILDER_VERSION", "BuildConfig", "BuildResult", "BuildStep", "build_env"]

Progress = Callable[[str], None]


def _version_hint(snapshot: RepoSnapshot, home: Path) -> str:
    """The version a version-from-git build tool should be told: a PyPI release's own, a
    git snapshot's nearest tag's (``repos.sources.tag_version``), else none."""
    if snapshot.source.startswith("pypi:") and "==" in snapshot.source:
        return snapshot.source.split("==", 1)[1].strip()
    # imported here: repos.sources pulls in the snapshot machinery (and rich), which the
    # builder's import must stay free of
    from codemill.repos.sources import tag_version

    return tag_version(snapshot, home)


def env_id_for(snapshot_id: str, python: str, lock_hash: str) -> str:
    return content_id(snapshot_id, python, lock_hash, BUILDER_VERSION)


def build_env(
    snapshot: RepoSnapshot,
    home: Path,
    settings: Settings,
    *,
    progress: Progress | None = None,
    python: str | None = None,
    config: BuildConfig | None = None,
) -> BuildResult:
    """Build, test and classify an environment for ``snapshot`` (see the module doc)."""
    say = progress or (lambda _m: None)
    config = config or BuildConfig()
    home = Path(home).absolute()
    started = time.monotonic()
    steps: list[BuildStep] = []

    def failed(reason: str, *, project: ProjectInfo | None = None,
               interp: Interpreter | None = None, why: str = "") -> BuildResult:
        version = interp.version if interp else ""
        env = EnvSpec(env_id=env_id_for(snapshot.snapshot_id, version, ""),
                      snapshot_id=snapshot.snapshot_id, python=version,
                      python_path=interp.path if interp else "", lock_hash="",
                      builder_version=BUILDER_VERSION, venv_path="", status=EnvStatus.FAILED,
                      reason=reason, build_seconds=round(time.monotonic() - started, 3),
                      env_vars=project.env_vars if project else ())
        return BuildResult(env=env, project=project, interpreter=interp, python_reason=why,
                           steps=tuple(steps))

    if settings.sandbox.backend != "bwrap":
        return failed("building runs the project's code and needs the bwrap sandbox "
                      f"(sandbox.backend is {settings.sandbox.backend!r})")
    say("detecting the project")
    project = detect_project(Path(snapshot.path), version_hint=_version_hint(snapshot, home))
    try:
        choice = choose_interpreter(project.requires_python, project.declared_pythons,
                                    snapshot.created_at, requested=python)
    except BuildError as exc:
        return failed(str(exc), project=project)
    interp = choice.interpreter
    say(f"python {choice.reason}")

    with boundary("build", "install the project") as b:
        installed = install(snapshot, project, interp, home, settings, config, say, steps,
                            pytest_args=pytest_args(project))
    if b.failed:
        if not isinstance(b.exception, BuildError) and not _is_sandbox_error(b.exception):
            raise b.exception  # type: ignore[misc]  # a programming error: let it show
        return failed(str(b.exception), project=project, interp=interp, why=choice.reason)
    assert isinstance(installed, Installed)
    env_id = env_id_for(snapshot.snapshot_id, interp.version, installed.lock.hash)
    layer = _place_layer(installed.layer, home, env_id)
    spec_env = EnvSpec(
        env_id=env_id, snapshot_id=snapshot.snapshot_id, python=interp.version,
        python_path=interp.path, lock_hash=installed.lock.hash, lock=installed.lock.text,
        builder_version=BUILDER_VERSION, venv_path=str(installed.venv),
        test_command=(), status=EnvStatus.FAILED, env_vars=project.env_vars)

    say("running the baseline")
    base_started = time.monotonic()
    with boundary("build", "run the baseline") as b:
        verdict = baseline_verdict(spec_env, project, home, settings, config, snapshot, say)
    if b.failed:
        if not _is_sandbox_error(b.exception) and not isinstance(b.exception, BuildError):
            raise b.exception  # type: ignore[misc]
        verdict = None
    else:  # the build log says how far the baseline looked for flaky tests
        runs = len(verdict.reports) + len(verdict.repeats)
        steps.append(BuildStep(name=f"baseline ({runs} runs)", output_tail=verdict.confidence,
                               seconds=round(time.monotonic() - base_started, 3)))
    seconds = round(time.monotonic() - started, 3)
    if verdict is None:
        env = spec_env.model_copy(update={
            "status": EnvStatus.FAILED,
            "reason": _noted(f"baseline could not run: {b.exception}", installed.notes),
            "build_seconds": seconds,
            "test_command": runner_for(project, "pytest").test_command})
        reports: tuple[TestReport, ...] = ()
        repeats: tuple[TestReport, ...] = ()
        flaky: tuple[str, ...] = ()
        flakiness = ""
    else:
        env = spec_env.model_copy(update={
            "status": verdict.status, "reason": _noted(verdict.reason, installed.notes),
            "build_seconds": seconds,
            "test_command": verdict.test_command, "n_tests": verdict.n_tests,
            "n_passing": verdict.n_passing, "n_flaky": verdict.n_flaky})
        reports, flaky = verdict.reports, verdict.flaky
        repeats, flakiness = verdict.repeats, verdict.confidence
    say(f"{env.status.value}{': ' + env.reason if env.reason else ''}")
    return BuildResult(env=env, project=project, interpreter=interp,
                       python_reason=choice.reason, steps=tuple(steps), reports=reports,
                       repeats=repeats, flakiness=flakiness, flaky=flaky,
                       disk_bytes=installed.disk_bytes, shared_venv=installed.shared,
                       layer=str(layer or ""), attempt=installed.attempt)


def _noted(reason: str, notes: tuple[str, ...]) -> str:
    """The verdict's reason, then what the install left out or changed to get there."""
    if not notes:
        return reason
    told = "install: " + "; ".join(notes)
    return f"{reason}; {told}" if reason else told


def _is_sandbox_error(exc: BaseException | None) -> bool:
    return isinstance(exc, (SandboxError, TestRunError))


def _place_layer(staged: Path | None, home: Path, env_id: str) -> Path | None:
    """Move the build's /repo changes to ``layers/<env_id>`` (kept once per id)."""
    if staged is None:
        return None
    with os.scandir(staged) as entries:
        empty = not any(entries)
    if empty:
        installs.remove_tree(staged)
        return None
    dest = installs.layer_dir(home, env_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    path, _ = installs.publish(staged, dest)
    return path
