"""Installed environments on disk, and how to open a sandbox over one.

Layout under ``<home>/envs/``::

    <lock_hash[:16]>-<tree[:12]>-py3.X/   an installed venv, shared by every environment
                                          whose lock and installed files are identical
    layers/<env_id>/                      what the build wrote into /repo (generated
                                          version files, egg-info); stacked over the
                                          snapshot in every sandbox of that environment
    .staging/<random>/                    venvs being built (removed when done)

A venv is built into ``.staging`` and published with one atomic rename; when its name is
taken, an identical venv is already there and the new one is dropped. Published venvs are
sealed: owned by the host user and read-only, so no sandbox (they run as another uid) can
change what other environments share. Sandboxes always see the venv at ``/env``, the path
it was built at, so its scripts and ``.pth`` files resolve the same at build and use time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
from pathlib import Path

from codemill.core.config import SandboxConfig
from codemill.core.errors import BuildError
from codemill.core.records import EnvSpec
from codemill.envs.interpreters import (
    NEUTRAL_PREFIX,
    needs_neutral_path,
    neutral_binds,
    venv_is_neutral,
)
from codemill.sandbox.api import SandboxSpec

ENV_INSIDE = "/env"


def envs_root(home: Path) -> Path:
    return Path(home).absolute() / "envs"


def uv_cache_dir(home: Path) -> Path:
    return Path(home).absolute() / "cache" / "uv"


def new_staging(home: Path) -> Path:
    """A fresh empty directory to build a venv in."""
    root = envs_root(home) / ".staging"
    root.mkdir(parents=True, exist_ok=True)
    path = root / uuid.uuid4().hex[:16]
    path.mkdir()
    return path


def venv_name(lock_hash: str, tree: str, python: str) -> str:
    minor = ".".join(python.split(".")[:2])
    return f"{lock_hash[:16]}-{tree[:12]}-py{minor}"


def seal(root: Path) -> None:
    """Make a finished tree owned by the host user and read-only for everyone.

    Walks without following links; a hostile build may have left links anywhere.
    """
    uid, gid = os.geteuid(), os.getegid()
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            _seal_one(os.path.join(dirpath, name), uid, gid)
    _seal_one(str(root), uid, gid)


def _seal_one(path: str, uid: int, gid: int) -> None:
    st = os.lstat(path)
    if st.st_uid != uid or st.st_gid != gid:
        os.lchown(path, uid, gid)
    if stat.S_ISLNK(st.st_mode):
        return
    mode = stat.S_IMODE(st.st_mode) & ~0o7222  # no write bits, no setuid/setgid/sticky
    if stat.S_ISDIR(st.st_mode):
        mode |= 0o555
    else:
        mode |= 0o444
    if mode != stat.S_IMODE(st.st_mode):
        os.chmod(path, mode)


def remove_tree(path: Path) -> None:
    """Remove a tree, including sealed (read-only) directories, never following links."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                full = os.path.join(dirpath, name)
                if not os.path.islink(full):
                    with contextlib.suppress(OSError):
                        os.chmod(full, 0o700)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish(staging: Path, dest: Path) -> tuple[Path, bool]:
    """Move ``staging`` to ``dest`` unless ``dest`` exists; (path, reused existing)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, dest)
        return dest, False
    except OSError:
        if not dest.is_dir():
            raise
        remove_tree(staging)
        return dest, True


def layer_dir(home: Path, env_id: str) -> Path:
    return envs_root(home) / "layers" / env_id


def snapshot_dir(home: Path, snapshot_id: str) -> Path:
    return Path(home).absolute() / "snapshots" / snapshot_id


def python_home(env: EnvSpec) -> Path:
    """The interpreter's install prefix (``<prefix>/bin/python3``)."""
    return Path(env.python_path).parent.parent


def sandbox_spec(env: EnvSpec, home: Path, limits: SandboxConfig | None = None,
                 snapshot_path: Path | None = None) -> SandboxSpec:
    """The spec of a sandbox over ``env``: build layer (if any) over the snapshot at
    /repo, the venv read-only at /env, the interpreter's prefix read-only, no network."""
    snap = Path(snapshot_path) if snapshot_path else snapshot_dir(home, env.snapshot_id)
    if not snap.is_dir():
        raise BuildError(f"snapshot {env.snapshot_id[:12]} is not on disk", str(snap))
    layer = layer_dir(home, env.env_id)
    layers = [layer, snap] if layer.is_dir() else [snap]
    venv = Path(env.venv_path)
    if not venv.is_dir():
        raise BuildError(f"environment {env.env_id[:12]} has no installed venv", str(venv))
    inside, binds = None, ()
    if needs_neutral_path(python_home(env)) and venv_is_neutral(venv):
        # The interpreter is seen at a neutral path, not at its host path (under a home).
        inside, binds = NEUTRAL_PREFIX, neutral_binds(env.python_path, interpreters_dir(home))
    return SandboxSpec(layers=layers, env_dir=venv, python_home=python_home(env),
                       python_inside=inside, ro_binds=binds, limits=limits or SandboxConfig())


def interpreters_dir(home: Path) -> Path:
    """Relocated interpreter executables (``codemill.envs.interpreters.neutral_binds``)."""
    return envs_root(home) / "python"
