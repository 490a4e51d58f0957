"""Sandboxes: what a command may see and touch, and how to open one.

    spec = SandboxSpec(layers=[snapshot_dir], env_dir=venv, python_home=Path("/usr"))
    with open_sandbox(spec, home) as sb:          # backend from spec.limits.backend
        res = sb.run(["python", "-m", "pytest", "-q"], timeout_s=600)
        patch = sb.diff()
        layer = sb.freeze()                       # the changes as a read-only layer
    kids = [open_sandbox(spec.with_top(layer), home) for _ in range(16)]   # cheap forks

The workspace is always seen at ``/repo`` (its merged layers, copy-on-write); the
environment at ``/env``; the harness's result files at ``results_dir``. Backends:

- ``bwrap`` (default, ``codemill.sandbox.bwrap``): isolated; see that module for what it
  protects against and what it does not.
- ``process`` (``codemill.sandbox.process``): NO isolation, for trusted code in development.

Non-goals here: building environments (``codemill.envs.builder.build``), running test suites
(``codemill.testing``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from codemill.core.config import SandboxConfig
from codemill.core.errors import SandboxError
from codemill.core.registry import load

SANDBOXES: dict[str, str] = {
    "bwrap": "codemill.sandbox.bwrap:BwrapSandbox",
    "process": "codemill.sandbox.process:ProcessSandbox",
}
"""Sandbox backends by name, imported on first use (``settings.sandbox.backend``)."""

RESERVED_INSIDE = ("/repo", "/env", "/proc", "/dev", "/harness", "/tmp")


class SandboxSpec(BaseModel):
    """Everything that defines a sandbox; forks differ only in their top layer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: tuple[Path, ...] = ()
    """Read-only lower layers, top first; their merged view is ``/repo``."""
    env_dir: Path | None = None
    """An installed environment (venv), mounted at ``/env`` (read-only unless
    ``env_writable``)."""
    python_home: Path | None = None
    """An interpreter install dir, exposed read-only at ``python_inside`` so that a venv's
    ``pyvenv.cfg`` ``home`` resolves. Paths under ``/usr`` are always visible."""
    python_inside: str | None = None
    """Where ``python_home`` is seen; None: at its own host path (which may name a home
    directory: venvs made against a neutral path, ``codemill.envs.interpreters``, avoid
    it)."""
    network: bool = False
    """Share the host network (builds that reach the package index only)."""
    rw_binds: tuple[tuple[Path, str], ...] = ()
    """Extra ``(host path, inside path)`` read-write binds, e.g. the uv cache for builds."""
    ro_binds: tuple[tuple[Path, str], ...] = ()
    """Extra ``(host path, inside path)`` read-only binds, e.g. the uv binary for builds."""
    overlay_binds: tuple[tuple[Path, str], ...] = ()
    """Extra ``(host dir, inside path)`` writable views whose writes go to an upper dir of
    this sandbox, discarded at ``close``: the host dir is read, never written (a build's
    view of the shared package cache, so that nothing a build writes there reaches
    another build)."""
    env_writable: bool = False
    """Mount ``env_dir`` read-write (environment builds)."""
    limits: SandboxConfig = SandboxConfig()
    """Memory, pids, cpu, timeout, output cap, disk, the sandbox uid and default backend."""

    @field_validator("layers", mode="before")
    @classmethod
    def _tuple(cls, v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v

    @field_validator("rw_binds", "ro_binds", "overlay_binds")
    @classmethod
    def _inside_paths(cls, v: tuple[tuple[Path, str], ...]) -> tuple[tuple[Path, str], ...]:
        for _, inside in v:
            p = PurePosixPath(inside)
            if not p.is_absolute() or ".." in p.parts or str(p) == "/":
                raise ValueError(f"bind target must be an absolute path below /: {inside!r}")
            if any(str(p) == r or str(p).startswith(r + "/") for r in RESERVED_INSIDE):
                raise ValueError(f"bind target {inside!r} is reserved by the sandbox")
        return v

    @field_validator("python_inside")
    @classmethod
    def _python_inside(cls, v: str | None) -> str | None:
        if v is not None:
            p = PurePosixPath(v)
            if not p.is_absolute() or ".." in p.parts or str(p) == "/" or any(
                    str(p) == r or str(p).startswith(r + "/") for r in RESERVED_INSIDE):
                raise ValueError(f"python_inside must be an absolute path below /: {v!r}")
        return v

    @field_validator("python_home")
    @classmethod
    def _python_home(cls, v: Path | None) -> Path | None:
        if v is not None and (not v.is_absolute() or str(v) == "/" or any(
                str(v) == r or str(v).startswith(r + "/") for r in RESERVED_INSIDE[:4])):
            raise ValueError(f"python_home must be an absolute install dir: {v}")
        return v

    def with_top(self, layer: Path) -> SandboxSpec:
        """The same spec with ``layer`` as a new top layer (a fork of a frozen workspace)."""
        return self.model_copy(update={"layers": (Path(layer), *self.layers)})


def open_sandbox(spec: SandboxSpec, home: Path, backend: str | None = None) -> Any:
    """Open a sandbox over ``spec`` with scratch space under ``<home>/tmp/sandboxes``.

    ``backend`` defaults to ``spec.limits.backend`` (``bwrap``). The result implements
    ``codemill.core.protocols.Sandbox`` plus ``freeze()``, ``results_dir`` and ``spec``, and
    is a context manager. Raises ``SandboxError`` (one line, saying what to install) when
    the backend cannot run on this machine.
    """
    name = backend or spec.limits.backend
    factory = load(SANDBOXES, name)
    for layer in spec.layers:
        if not Path(layer).is_dir():
            raise SandboxError(f"layer is not a directory: {layer}")
    return factory(spec, Path(home))
