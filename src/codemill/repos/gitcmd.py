"""A thin, safe runner for the git CLI, and mirrors of untrusted repositories.

Safety contract: codemill never runs git inside an untrusted repository's own ``.git``.
Remote and local repositories are first copied with ``git clone --mirror`` into
``<home>/cache/git/<hash of url>``; every later command works on that mirror, whose config
git itself wrote. Every command also carries flags that switch off what a config file or
URL could make git execute: hooks, fsmonitor, the ``ext::`` transport, pagers, prompts.

Non-goals: this is not a git library. It runs a handful of plumbing commands and returns
their bytes; ``history.py`` and ``sources.py`` give them meaning.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from codemill.core.errors import SourceError

# What config (from any file) or a URL could make git run, forced off on the command line.
SAFE_FLAGS = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.pager=cat",
    "-c", "core.quotePath=false",
    "-c", "core.sshCommand=ssh -o BatchMode=yes",
    "-c", "protocol.ext.allow=never",
    "-c", "safe.directory=*",
    "-c", "advice.detachedHead=false",
    "-c", "gc.auto=0",
)
_SAFE_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/false",
    "SSH_ASKPASS": "/bin/false",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_OPTIONAL_LOCKS": "0",
    "LC_ALL": "C",
}
GIT_TIMEOUT_S = 600.0


def git_env(*, global_config: bool = True) -> dict[str, str]:
    """The process environment for git: the caller's minus GIT_* overrides, plus safety.

    ``global_config=False`` also ignores ``~/.gitconfig`` (for repositories codemill makes
    from untrusted files, where a user's filters such as git-lfs must not apply)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(_SAFE_ENV)
    if not global_config:
        env["GIT_CONFIG_GLOBAL"] = "/dev/null"
    return env


def git(
    args: Sequence[str],
    *,
    git_dir: Path | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
    check: bool = True,
    global_config: bool = True,
    extra_env: dict[str, str] | None = None,
) -> bytes:
    """Run ``git <safe flags> [--git-dir D] args`` and return stdout.

    Raises ``SourceError`` with git's first stderr line when it fails (``check``).
    """
    argv = ["git", *SAFE_FLAGS]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    argv.extend(args)
    env = git_env(global_config=global_config)
    env.update(extra_env or {})
    try:
        proc = subprocess.run(
            argv, cwd=cwd, input=input, capture_output=True, timeout=timeout_s,
            env=env, check=False,
        )
    except FileNotFoundError as exc:
        raise SourceError("git is not installed (apt-get install git)") from exc
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"git {args[0]} timed out after {timeout_s:.0f}s") from exc
    if check and proc.returncode != 0:
        raise SourceError(f"git {args[0]} failed: {first_line(proc.stderr)}")
    return proc.stdout


def first_line(data: bytes) -> str:
    """The most telling line of git's stderr (a ``fatal:`` line when there is one)."""
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("fatal:", "error:")):
            return ln
    return lines[0] if lines else "no message"


def mirror_path(url: str, home: Path) -> Path:
    """Where the mirror of ``url`` lives: ``<home>/cache/git/<sha256(url)[:24]>.git``."""
    return home / "cache" / "git" / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.git"


def ensure_mirror(url: str, home: Path, *, fetch: bool = True) -> Path:
    """A bare mirror of ``url`` in the cache, cloned once and fetched on later calls.

    The clone goes to a temp dir and is renamed into place, so a crash or a concurrent
    clone never leaves a half-written mirror. ``fetch=False`` skips refreshing an existing
    mirror (for revisions already known to be there).
    """
    dest = mirror_path(url, home)
    if dest.exists():
        if fetch:
            git(["fetch", "--prune", "--no-recurse-submodules", "--quiet", "origin"],
                git_dir=dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=dest.parent))
    try:
        git(["clone", "--mirror", "--quiet", "--no-hardlinks", "--", url, str(tmp / "m.git")])
        try:
            os.rename(tmp / "m.git", dest)
        except OSError:
            if not dest.exists():  # lost a race to an identical clone: fine; else re-raise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_commit(mirror: Path, rev: str) -> str:
    """The full sha of ``rev`` (branch, tag, sha, ``HEAD~2``) in ``mirror``, or SourceError."""
    if not rev or rev.startswith("-"):
        raise SourceError(f"bad revision {rev!r}")
    out = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
              git_dir=mirror, check=False)
    sha = out.decode().strip()
    if len(sha) != 40:
        raise SourceError(f"unknown revision {rev!r}")
    return sha


def has_commit(mirror: Path, sha: str) -> bool:
    """Whether the full ``sha`` is a commit present in ``mirror`` (no fetch needed)."""
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha.lower()):
        return False
    try:
        return resolve_commit(mirror, sha) == sha.lower()
    except SourceError:
        return False
