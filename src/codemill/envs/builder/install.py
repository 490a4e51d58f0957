"""The install phase of a build, in the build sandbox; see ``codemill.envs.builder.build``.

The build sandbox sees the snapshot at ``/repo`` (copy-on-write; what the build writes
there becomes the environment's layer), a fresh staging dir at ``/env`` (read-write), the
uv cache and the uv binary; it has the network (the package index) and nothing else of
the host. The install step runs the project's build backend (its ``setup.py``) with that
network and cache, so the shared uv cache is only the lower layer of an overlay
(``SandboxSpec.overlay_binds``): what a build writes there, downloads included, stays in
its sandbox's upper dir and is thrown away, and no build can plant a package another
build installs. Only ``cache.fill_cache`` writes the shared cache: wheels from the index,
installed without running any project code, after a build succeeds.

Each attempt of ``builder_plan.attempts`` gets a fresh staging dir and sandbox.

Within an attempt the install degrades one requirement at a time (``degrade``); after it
succeeds, the suite is collected once and, when pytest itself breaks on today's index, the
test tooling is reinstalled as of the snapshot's date (``tooling``). What was dropped or
changed to get there is returned in ``Installed.notes``; when every attempt fails, the
``BuildError`` says why the last one failed and lists the attempts tried.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from packaging.utils import canonicalize_name

from codemill.core.config import Settings
from codemill.core.errors import BuildError
from codemill.core.protocols import Sandbox
from codemill.core.records import ExecResult, RepoSnapshot
from codemill.envs import installs
from codemill.envs.builder.cache import fill_cache
from codemill.envs.builder.compile import recompile
from codemill.envs.builder.degrade import degrade, summary
from codemill.envs.builder.degrade import notes as degrade_notes
from codemill.envs.builder.imports import distributions_for, missing_modules
from codemill.envs.builder.plan import (
    FIND_LINKS_INSIDE,
    INPUTS_INSIDE,
    PYTHON,
    UV_CACHE_INSIDE,
    UV_INSIDE,
    Attempt,
    BuildConfig,
    attempts,
    era_blockers,
    era_cutoff,
    input_files,
    install_argv,
    prebuild_argv,
    repo_path_argv,
    uv_env,
    venv_argv,
    widen,
)
from codemill.envs.builder.reasons import (
    attempts_failure,
    failed_distribution,
    install_failure,
)
from codemill.envs.builder.records import BuildStep
from codemill.envs.builder.requirements import for_interpreter
from codemill.envs.builder.tooling import retry_tooling
from codemill.envs.interpreters import (
    NEUTRAL_PREFIX,
    Interpreter,
    needs_neutral_path,
    neutral_binds,
    neutral_executable,
)
from codemill.envs.lock import Lock, read_lock, tree_digest
from codemill.repos.detect.project import ProjectInfo
from codemill.sandbox.api import SandboxSpec, open_sandbox

CERT_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
              "/etc/ssl/cert.pem")
TAIL = 4000
OBSOLETE_PLUGINS = ("pytest-cache", "pytest-capturelog", "pytest-catchlog")
"""pytest plugins whose features moved into pytest itself (cache in 2.8, logging in 3.3);
they break the pytest >= 6 the harness needs, so they are removed after install."""


@dataclass(frozen=True)
class Installed:
    """A published venv and what the build left in /repo."""

    venv: Path
    lock: Lock
    layer: Path | None
    disk_bytes: int
    shared: bool
    attempt: str
    notes: tuple[str, ...] = ()
    """What was left out or changed to get here, for people: each dropped requirement
    and why, test tooling resolved as of a date and why."""


def find_uv() -> Path:
    """The uv binary: next to this interpreter, on PATH, or from the ``uv`` package."""
    import sys

    candidates = [Path(sys.executable).parent / "uv", shutil.which("uv")]
    try:
        import uv  # the PyPI package ships the binary

        candidates.append(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    for cand in candidates:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand).resolve()
    raise BuildError("uv not found", "install it with: pip install uv")


def cert_file() -> str | None:
    """A CA bundle visible inside the sandbox (``/etc/ssl`` is bound), so that machines
    behind a TLS-intercepting proxy reach the index the same way the host does."""
    env = os.environ.get("SSL_CERT_FILE", "")
    for path in (env, *CERT_FILES):
        if path and path.startswith("/etc/") and Path(path).is_file():
            return path
    return None


def build_spec(snapshot: RepoSnapshot, staging: Path, interp: Interpreter, home: Path,
               settings: Settings, config: BuildConfig, inputs: Path | None = None
               ) -> SandboxSpec:
    base = settings.sandbox
    limits = base.model_copy(update={
        "memory_mb": max(base.memory_mb, config.memory_mb),
        "pids": max(base.pids, 2048),
        "timeout_s": config.install_timeout_s,
        "disk_mb": max(base.disk_mb, 8192),
        "cpu_quota": max(base.cpu_quota, float(os.cpu_count() or 1)),
    })
    cache = installs.uv_cache_dir(home)
    cache.mkdir(parents=True, exist_ok=True)
    cache = cache.resolve()  # a link to a shared cache: bind (and hand over) its target
    ro = [(find_uv(), UV_INSIDE)]
    ro += [(Path(d).resolve(), f"{FIND_LINKS_INSIDE}/{i}") for i, d in enumerate(config.find_links)]
    if inputs is not None:
        ro.append((inputs, INPUTS_INSIDE))
    inside = None
    if _neutral(interp, settings):  # never the host path: it may name a home directory
        inside = NEUTRAL_PREFIX
        ro += neutral_binds(interp.path, installs.interpreters_dir(home))
    return SandboxSpec(
        layers=[Path(snapshot.path)], env_dir=staging, env_writable=True,
        python_home=Path(interp.prefix), python_inside=inside, network=True,
        overlay_binds=((cache, UV_CACHE_INSIDE),), ro_binds=tuple(ro), limits=limits)


def _neutral(interp: Interpreter, settings: Settings) -> bool:
    """Is the venv made against ``NEUTRAL_PREFIX``? In a bwrap sandbox, for an interpreter
    outside ``/usr``; the process backend runs on the host's paths."""
    return settings.sandbox.backend == "bwrap" and needs_neutral_path(interp.prefix)


def venv_python(interp: Interpreter, settings: Settings) -> str:
    """The interpreter path ``uv venv`` is given inside the build sandbox."""
    return neutral_executable(interp.path) if _neutral(interp, settings) else interp.path


def _write_inputs(home: Path, attempt: Attempt) -> Path | None:
    """The attempt's constraints and overrides in a fresh dir the sandbox uid can read."""
    files = input_files(attempt)
    if not files:
        return None
    path = installs.new_staging(home)
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    path.chmod(0o755)
    return path


class _Steps:
    """Runs commands in the build sandbox and records each as a BuildStep."""

    def __init__(self, sb: Sandbox, env: dict[str, str], steps: list[BuildStep],
                 timeout: float) -> None:
        self.sb, self.env, self.steps, self.timeout = sb, env, steps, timeout

    def run(self, name: str, argv: list[str], timeout: float | None = None, *,
            offline: bool = False) -> ExecResult:
        t = time.monotonic()
        res = self.sb.run(argv, timeout_s=timeout or self.timeout, env=self.env,
                          offline=offline)
        text = (res.stdout + "\n" + res.stderr).strip()
        if res.timed_out:
            text += f"\n[timed out after {res.duration_s:.0f}s]"
        self.steps.append(BuildStep(name=name, argv=tuple(argv), exit_code=res.exit_code,
                                    seconds=round(time.monotonic() - t, 3),
                                    output_tail=text[-TAIL:]))
        return res


def _collect(run: _Steps, pytest_args: tuple[str, ...]) -> ExecResult:
    # The project's own code runs here: no network, the venv and the uv cache read-only
    # (the installs that follow reach the index and run no project code).
    return run.run("collect", [PYTHON, "-m", "pytest", "--collect-only", "-q",
                               "-p", "no:cacheprovider", *pytest_args], timeout=600,
                   offline=True)


def _fix_imports(run: _Steps, project: ProjectInfo, attempt: Attempt, config: BuildConfig,
                 pytest_args: tuple[str, ...], say: Callable[[str], None]
                 ) -> ExecResult | None:
    """Collect the suite; install distributions for modules it misses; repeat. The last
    collection when nothing was installed after it (None otherwise)."""
    tried: set[str] = set()
    local = set(project.top_level_modules)
    gone = {name for name, _ in attempt.dropped}  # dropped because they do not install
    for _ in range(config.max_import_rounds):
        res = _collect(run, pytest_args)
        dists = [d for d in distributions_for(missing_modules(res.stdout + res.stderr),
                                              local, tried)
                 if canonicalize_name(d) not in gone]
        if not dists:
            return res
        say(f"installing what the tests import: {', '.join(dists)}")
        tried |= set(dists)
        flags = _date_flags(install_argv(project, attempt, config))
        cmd = [UV_INSIDE, "pip", "install", "--python", PYTHON]
        if not run.run("install-missing", cmd + dists + flags).ok:
            for dist in dists:  # one bad name must not keep the others out
                if not run.run(f"install-missing {dist}", cmd + [dist] + flags).ok and flags:
                    run.run(f"install-missing {dist} (latest)", cmd + [dist])
    return None


def _date_flags(argv: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        if arg in ("--exclude-newer", "--exclude-newer-package", "--find-links") \
                and i + 1 < len(argv):
            out += [arg, argv[i + 1]]
    return out


def install(snapshot: RepoSnapshot, project: ProjectInfo, interp: Interpreter, home: Path,
            settings: Settings, config: BuildConfig, say: Callable[[str], None],
            steps: list[BuildStep], pytest_args: tuple[str, ...] = ()) -> Installed:
    """Install ``project`` for ``interp``; ``BuildError`` with the reason when every
    attempt fails."""
    env = uv_env(project, cert_file())
    project, skipped = for_interpreter(project, interp.version)
    if skipped:
        steps.append(BuildStep(name="markers", exit_code=0, output_tail=(
            f"not for python {interp.version}: " + ", ".join(skipped))))
    reasons: list[tuple[str, str]] = []
    plan = attempts(project, snapshot.created_at, config)
    era = era_cutoff(snapshot.created_at, config)
    queue, exemptions, retries = list(plan), 0, 0
    first_failures: dict[str, str] = {}
    while queue:
        attempt = queue.pop(0)
        if attempt in plan:
            retries = 0  # the bound is per attempt of the plan
        say(f"installing ({summary(attempt)})")
        staging = installs.new_staging(home)
        inputs = _write_inputs(home, attempt)
        layer: Path | None = None
        try:
            spec = build_spec(snapshot, staging, interp, home, settings, config, inputs)
            with open_sandbox(spec, home) as sb:
                run = _Steps(sb, env, steps, config.install_timeout_s)
                if inputs is not None:
                    steps.append(BuildStep(name="inputs", exit_code=0, output_tail="\n".join(
                        f"{INPUTS_INSIDE}/{n}:\n{t}" for n, t in input_files(attempt).items())))
                res = run.run("venv", venv_argv(venv_python(interp, settings)), timeout=120)
                if res.ok and not project.installable:
                    res = run.run("repo-on-path", repo_path_argv(), timeout=60)
                prebuild = prebuild_argv(project, attempt, config)
                if res.ok and prebuild:
                    res = run.run("build requirements", prebuild)
                if res.ok:
                    res = run.run(f"install ({summary(attempt)})",
                                  install_argv(project, attempt, config))
                if not res.ok:
                    output = res.stdout + "\n" + res.stderr
                    why = install_failure(res)
                    wider = widen(attempt, era_blockers(output))
                    if wider is not None and exemptions < config.max_era_exemptions:
                        # Some package has no release in the era that fits: give it a
                        # later date and try the same era again.
                        exemptions += 1
                        queue.insert(0, wider)
                        continue
                    if failed := failed_distribution(output):
                        first_failures.setdefault(failed[0], why)
                    step = degrade(attempt, output, why, project, era, first_failures) \
                        if retries < config.max_requirement_retries else None
                    if step is not None:
                        # One requirement is at fault: relax or drop just it, same attempt.
                        retries += 1
                        say(step.note)
                        queue.insert(0, step.attempt)
                        continue
                    reasons.append((summary(attempt), why))
                    continue
                # Plugins long merged into pytest break the pytest the harness needs; an
                # era resolution may pull them in (pytest-xprocess once required one).
                run.run("drop obsolete plugins", [UV_INSIDE, "pip", "uninstall", "--python",
                                                  PYTHON, *OBSOLETE_PLUGINS], timeout=120)
                collected = None
                if config.fix_missing_imports and project.has_tests:
                    collected = _fix_imports(run, project, attempt, config, pytest_args, say)
                notes = degrade_notes(attempt, first_failures)
                if config.tooling_retry and project.has_tests and not attempt.exclude_newer:
                    notes += retry_tooling(
                        run.run, partial(_collect, run, pytest_args),
                        install_argv(project, attempt, config), snapshot.created_at, config,
                        say, collected)
                staged = installs.envs_root(home) / "layers" / f".staging-{uuid.uuid4().hex}"
                layer = sb.freeze(staged)
            # The sandbox has exited: nothing changes the staging dir from here on.
            t = time.monotonic()
            compiled = recompile(staging, interp.path)
            steps.append(BuildStep(name="compile (host, base interpreter)", exit_code=0,
                                   seconds=round(time.monotonic() - t, 3),
                                   output_tail=f"{compiled} modules"))
            lock = read_lock(staging)
            tree, disk = tree_digest(staging)
            installs.seal(staging)
            dest = installs.envs_root(home) / installs.venv_name(lock.hash, tree,
                                                                  interp.version)
            venv, shared = installs.publish(staging, dest)
            fill_cache(spec, home, lock, project.name,
                       venv_argv(venv_python(interp, settings)), env, config, steps)
            return Installed(venv=venv, lock=lock, layer=layer, disk_bytes=disk,
                             shared=shared, attempt=summary(attempt), notes=tuple(notes))
        finally:
            installs.remove_tree(staging)  # a no-op once published (renamed away)
            if inputs is not None:
                installs.remove_tree(inputs)
    raise BuildError(attempts_failure(reasons))
