"""The install phase of a build, in the build sandbox; see ``codemill.envs.builder.build``.

The build sandbox sees the snapshot at ``/repo`` (copy-on-write; what the build writes
there becomes the environment's layer), a fresh staging dir at ``/env`` (read-write), the
uv cache and the uv binary; it has the network (the package index) and nothing else of
the host. Each attempt of ``builder_plan.attempts`` gets a fresh staging dir and sandbox.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codemill.core.config import Settings
from codemill.core.errors import BuildError
from codemill.core.protocols import Sandbox
from codemill.core.records import ExecResult, RepoSnapshot
from codemill.envs import envstore
from codemill.envs.builder.compile import recompile
from codemill.envs.builder.imports import distributions_for, missing_modules
from codemill.envs.builder.plan import (
    PYTHON,
    UV_CACHE_INSIDE,
    UV_INSIDE,
    Attempt,
    BuildConfig,
    attempts,
    era_blockers,
    install_argv,
    prebuild_argv,
    repo_path_argv,
    uv_env,
    venv_argv,
    widen,
)
from codemill.envs.builder.reasons import install_failure
from codemill.envs.builder.records import BuildStep
from codemill.envs.interpreters import Interpreter
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
               settings: Settings, config: BuildConfig) -> SandboxSpec:
    base = settings.sandbox
    limits = base.model_copy(update={
        "memory_mb": max(base.memory_mb, config.memory_mb),
        "pids": max(base.pids, 2048),
        "timeout_s": config.install_timeout_s,
        "disk_mb": max(base.disk_mb, 8192),
        "cpu_quota": max(base.cpu_quota, float(os.cpu_count() or 1)),
    })
    cache = envstore.uv_cache_dir(home)
    cache.mkdir(parents=True, exist_ok=True)
    cache = cache.resolve()  # a link to a shared cache: bind (and hand over) its target
    return SandboxSpec(
        layers=[Path(snapshot.path)], env_dir=staging, env_writable=True,
        python_home=Path(interp.prefix), network=True,
        rw_binds=((cache, UV_CACHE_INSIDE),), ro_binds=((find_uv(), UV_INSIDE),),
        limits=limits)


class _Steps:
    """Runs commands in the build sandbox and records each as a BuildStep."""

    def __init__(self, sb: Sandbox, env: dict[str, str], steps: list[BuildStep],
                 timeout: float) -> None:
        self.sb, self.env, self.steps, self.timeout = sb, env, steps, timeout

    def run(self, name: str, argv: list[str], timeout: float | None = None, *,
            offline: bool = False) -> ExecResult:
        t = time.monotonic()
        kw = {"offline": True} if offline else {}
        res = self.sb.run(argv, timeout_s=timeout or self.timeout, env=self.env, **kw)
        text = (res.stdout + "\n" + res.stderr).strip()
        if res.timed_out:
            text += f"\n[timed out after {res.duration_s:.0f}s]"
        self.steps.append(BuildStep(name=name, argv=tuple(argv), exit_code=res.exit_code,
                                    seconds=round(time.monotonic() - t, 3),
                                    output_tail=text[-TAIL:]))
        return res


def _fix_imports(run: _Steps, project: ProjectInfo, attempt: Attempt, config: BuildConfig,
                 pytest_args: tuple[str, ...], say: Callable[[str], None]) -> None:
    """Collect the suite; install distributions for modules it misses; repeat."""
    tried: set[str] = set()
    local = set(project.top_level_modules)
    for _ in range(config.max_import_rounds):
        # The project's own code runs here: no network, the venv and the uv cache
        # read-only (the installs below reach the index and run no project code).
        res = run.run("collect", [PYTHON, "-m", "pytest", "--collect-only", "-q",
                                  "-p", "no:cacheprovider", *pytest_args], timeout=600,
                      offline=True)
        dists = distributions_for(missing_modules(res.stdout + res.stderr), local, tried)
        if not dists:
            return
        say(f"installing what the tests import: {', '.join(dists)}")
        tried |= set(dists)
        flags = _date_flags(install_argv(project, attempt, config))
        cmd = [UV_INSIDE, "pip", "install", "--python", PYTHON]
        if not run.run("install-missing", cmd + dists + flags).ok:
            for dist in dists:  # one bad name must not keep the others out
                if not run.run(f"install-missing {dist}", cmd + [dist] + flags).ok and flags:
                    run.run(f"install-missing {dist} (latest)", cmd + [dist])


def _date_flags(argv: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        if arg in ("--exclude-newer", "--exclude-newer-package") and i + 1 < len(argv):
            out += [arg, argv[i + 1]]
    return out


def install(snapshot: RepoSnapshot, project: ProjectInfo, interp: Interpreter, home: Path,
            settings: Settings, config: BuildConfig, say: Callable[[str], None],
            steps: list[BuildStep], pytest_args: tuple[str, ...] = ()) -> Installed:
    """Install ``project`` for ``interp``; ``BuildError`` with the reason when every
    attempt fails."""
    env = uv_env(project, cert_file())
    reasons: list[str] = []
    plan = attempts(project, snapshot.created_at, config)
    queue, exemptions = list(plan), 0
    while queue:
        attempt = queue.pop(0)
        say(f"installing ({attempt.label})")
        staging = envstore.new_staging(home)
        layer: Path | None = None
        try:
            spec = build_spec(snapshot, staging, interp, home, settings, config)
            with open_sandbox(spec, home) as sb:
                run = _Steps(sb, env, steps, config.install_timeout_s)
                res = run.run("venv", venv_argv(interp.path), timeout=120)
                if res.ok and not project.installable:
                    res = run.run("repo-on-path", repo_path_argv(), timeout=60)
                prebuild = prebuild_argv(project, attempt, config)
                if res.ok and prebuild:
                    res = run.run("build requirements", prebuild)
                if res.ok:
                    res = run.run(f"install ({attempt.label})",
                                  install_argv(project, attempt, config))
                if not res.ok:
                    wider = widen(attempt, era_blockers(res.stdout + res.stderr))
                    if wider is not None and exemptions < config.max_era_exemptions:
                        # Some package has no release in the era that fits: give it a
                        # later date and try the same era again.
                        exemptions += 1
                        queue.insert(0, wider)
                    else:
                        reasons.append(install_failure(res))
                    continue
                # Plugins long merged into pytest break the pytest the harness needs; an
                # era resolution may pull them in (pytest-xprocess once required one).
                run.run("drop obsolete plugins", [UV_INSIDE, "pip", "uninstall", "--python",
                                                  PYTHON, *OBSOLETE_PLUGINS], timeout=120)
                if config.fix_missing_imports and project.has_tests:
                    _fix_imports(run, project, attempt, config, pytest_args, say)
                staged = envstore.envs_root(home) / "layers" / f".staging-{uuid.uuid4().hex}"
                layer = sb.freeze(staged)
            # The sandbox has exited: nothing changes the staging dir from here on.
            t = time.monotonic()
            compiled = recompile(staging, interp.path)
            steps.append(BuildStep(name="compile (host, base interpreter)", exit_code=0,
                                   seconds=round(time.monotonic() - t, 3),
                                   output_tail=f"{compiled} modules"))
            lock = read_lock(staging)
            tree, disk = tree_digest(staging)
            envstore.seal(staging)
            dest = envstore.envs_root(home) / envstore.venv_name(lock.hash, tree,
                                                                  interp.version)
            venv, shared = envstore.publish(staging, dest)
            return Installed(venv=venv, lock=lock, layer=layer, disk_bytes=disk,
                             shared=shared, attempt=attempt.label)
        finally:
            envstore.remove_tree(staging)  # a no-op once published (renamed away)
    last = reasons[-1] if reasons else "no install attempt"
    more = f" ({len(plan)} attempts; the first: {reasons[0]})" \
        if len(reasons) > 1 and reasons[0] != last else ""
    raise BuildError(last + more)
