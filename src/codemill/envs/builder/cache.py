"""The shared uv cache: every build reads it, only wheels from the index fill it.

A build's install step runs the project's own build backend (``setup.py``) with the
network and the cache in view. So builds see the shared cache only as the lower layer of an
overlay (``install.build_spec``): whatever a build writes there (downloads, or a hostile
``setup.py`` editing cached ``setuptools`` in place) stays in its sandbox and is thrown
away. What a later build reads from the cache was put there by ``fill_cache`` alone:
after a build succeeds, the distributions its lock pins are installed once more, as
wheels only (``--only-binary :all:``: installing a wheel runs no code) and without
dependencies, into a throwaway venv, in a sandbox that sees no project file and has the
cache writable. The lock's names come from the build, but what fills the cache comes from
the index (or the configured wheel folders), so the worst a hostile build can do is make
the cache hold genuine wheels it did not need.

A fill that fails leaves a step in the log and the build as it was.
"""

from __future__ import annotations

import time
from pathlib import Path

from packaging.utils import canonicalize_name

from codemill.core.errors import CodemillError
from codemill.envs import installs
from codemill.envs.builder.plan import (
    INPUTS_INSIDE,
    PYTHON,
    UV_CACHE_INSIDE,
    UV_INSIDE,
    BuildConfig,
    find_links_flags,
)
from codemill.envs.builder.records import BuildStep
from codemill.envs.lock import Lock
from codemill.sandbox.api import SandboxSpec, open_sandbox

TAIL = 2000


def wheel_pins(lock: Lock, project_name: str) -> list[str]:
    """The ``name==version`` pins of ``lock`` an index can serve: not the project itself,
    not an editable or a direct reference."""
    own = canonicalize_name(project_name) if project_name else ""
    out = []
    for line in lock.lines:
        name, sep, version = line.partition("==")
        if not sep or line.startswith("-e ") or not name or any(c in line for c in " @;#"):
            continue
        if canonicalize_name(name) != own:
            out.append(f"{name}=={version}")
    return out


def fill_cache(spec: SandboxSpec, home: Path, lock: Lock, project_name: str,
               venv_argv: list[str], env: dict[str, str], config: BuildConfig,
               steps: list[BuildStep]) -> None:
    """Install ``lock``'s pins as wheels with the shared cache writable (module docstring).
    ``spec`` is the build's sandbox spec; its layers and overlay are replaced here."""
    pins = wheel_pins(lock, project_name)
    if not pins:
        return
    staging, inputs = installs.new_staging(home), installs.new_staging(home)
    started = time.monotonic()
    try:
        (inputs / "pins.txt").write_text("\n".join(pins) + "\n")
        (inputs / "pins.txt").chmod(0o644)
        inputs.chmod(0o755)
        cache = installs.uv_cache_dir(home).resolve()
        ro = tuple(b for b in spec.ro_binds if b[1] != INPUTS_INSIDE) + ((inputs, INPUTS_INSIDE),)
        fill = spec.model_copy(update={
            "layers": (), "env_dir": staging, "overlay_binds": (),
            "rw_binds": ((cache, UV_CACHE_INSIDE),), "ro_binds": ro})
        argv = [UV_INSIDE, "pip", "install", "--python", PYTHON, "--only-binary", ":all:",
                "--no-deps", "-r", f"{INPUTS_INSIDE}/pins.txt", *find_links_flags(config)]
        with open_sandbox(fill, home) as sb:
            res = sb.run(venv_argv, timeout_s=120, env=env)
            if res.ok:
                res = sb.run(argv, timeout_s=config.install_timeout_s, env=env)
        text = (res.stdout + "\n" + res.stderr).strip()
        steps.append(BuildStep(name="fill the shared cache (wheels only, no project code)",
                               argv=tuple(argv), exit_code=res.exit_code,
                               seconds=round(time.monotonic() - started, 3),
                               output_tail=text[-TAIL:]))
    except (CodemillError, OSError) as exc:
        steps.append(BuildStep(name="fill the shared cache", exit_code=None,
                               seconds=round(time.monotonic() - started, 3),
                               output_tail=f"not filled: {exc}"[-TAIL:]))
    finally:
        installs.remove_tree(staging)
        installs.remove_tree(inputs)
