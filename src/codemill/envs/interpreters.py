"""Find the Python interpreters on this machine and pick one for a project.

Discovery looks where interpreters live in practice: ``/usr/bin`` and ``/usr/local/bin``,
pyenv (``$PYENV_ROOT/versions/*``), uv-managed Pythons and every ``python3*`` on ``PATH``
(virtualenvs resolve to their base interpreter; pyenv shims are skipped). Each candidate is
asked for its version and install prefix once per process. These are the machine's own
interpreters, trusted like the rest of the host; no project code runs here.

The install prefix matters for sandboxing: ``/root`` is mode 0700, so an interpreter under
``/root/.pyenv`` is invisible to an unprivileged sandbox unless its prefix is exposed
(``SandboxSpec.python_home``).

Choice (``choose_interpreter``): ``requires-python`` is a hard constraint; then, as soft
preferences that apply only when something is left: no newer than the newest version the
project declares (classifiers, CI matrix, tox/nox), no newer than its era (the newest
Python released before the snapshot date plus a grace period), and the newest of what
remains.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import subprocess
from datetime import date, timedelta
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from pydantic import BaseModel, ConfigDict

from codemill.core.dates import parse_iso
from codemill.core.errors import BuildError

MIN_MINOR = 7
"""Oldest Python 3 minor the builder uses (uv and today's pip tooling need 3.7+)."""

RELEASES = {6: date(2016, 12, 23), 7: date(2018, 6, 27), 8: date(2019, 10, 14),
            9: date(2020, 10, 5), 10: date(2021, 10, 4), 11: date(2022, 10, 24),
            12: date(2023, 10, 2), 13: date(2024, 10, 7), 14: date(2025, 10, 7)}
"""First release date of each Python 3 minor version."""

ERA_GRACE = timedelta(days=30)
"""A project of date D is assumed to work on Pythons released up to D + this. Kept short:
dependencies resolved as of D rarely support (or ship wheels for) a later Python."""

_PROBE = ("import json, sys, platform; print(json.dumps({'v': platform.python_version(), "
          "'impl': sys.implementation.name, 'base': sys.base_prefix, "
          "'prefix': sys.prefix, 'exe': sys.executable}))")


class Interpreter(BaseModel):
    """One Python installation on the host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    """The executable to hand to ``uv venv --python``."""
    version: str
    """Full version, e.g. ``3.9.18``."""
    prefix: str
    """Install prefix (``sys.base_prefix``); exposed read-only inside sandboxes."""

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @property
    def short(self) -> str:
        return "{}.{}".format(*self.minor)


class InterpreterChoice(BaseModel):
    """The interpreter picked for a project and why, in words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interpreter: Interpreter
    reason: str


def _candidate_paths() -> list[str]:
    home = Path.home()
    pyenv = Path(os.environ.get("PYENV_ROOT", home / ".pyenv"))
    uv_dir = Path(os.environ.get("UV_PYTHON_INSTALL_DIR", home / ".local/share/uv/python"))
    patterns = ["/usr/bin/python3*", "/usr/local/bin/python3*",
                f"{pyenv}/versions/*/bin/python3", f"{uv_dir}/*/bin/python3"]
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and "shims" not in entry:
            patterns.append(os.path.join(entry, "python3*"))
    paths: list[str] = []
    for pattern in patterns:
        for p in sorted(glob.glob(pattern)):
            name = os.path.basename(p)
            if name.endswith(("-config", "m-config")) or not os.access(p, os.X_OK):
                continue
            if name == "python3" or name[len("python3"):].lstrip(".").replace(".", "").isdigit():
                paths.append(p)
    return list(dict.fromkeys(paths))


def _probe(path: str) -> Interpreter | None:
    try:
        out = subprocess.run([path, "-I", "-S", "-c", _PROBE], capture_output=True, text=True,
                             timeout=15, check=True).stdout
        data = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if data.get("impl") != "cpython":
        return None
    exe = path
    if data["prefix"] != data["base"]:  # a virtualenv: use the interpreter underneath
        exe = os.path.join(data["base"], "bin", os.path.basename(os.path.realpath(path)))
        if not os.access(exe, os.X_OK):
            return None
    return Interpreter(path=exe, version=data["v"], prefix=data["base"])


@functools.cache
def find_interpreters() -> tuple[Interpreter, ...]:
    """Every usable CPython 3.7+ on the machine, one per (version, prefix), oldest first."""
    found: dict[tuple[str, str], Interpreter] = {}
    for path in _candidate_paths():
        interp = _probe(path)
        if interp is None or interp.minor < (3, MIN_MINOR) or interp.minor[0] != 3:
            continue
        key = (interp.version, interp.prefix)
        found.setdefault(key, interp)  # the first place searched names it best
    return tuple(sorted(found.values(), key=lambda i: Version(i.version)))


def _specifier(requires_python: str) -> SpecifierSet | None:
    text = requires_python.strip().rstrip(",")
    for candidate in (text, text.replace(".*", ""), text.replace(" ", "")):
        try:
            return SpecifierSet(candidate)
        except InvalidSpecifier:
            continue
    return None


def _era(created_at: str) -> date | None:
    stamp = parse_iso(created_at)
    return stamp.date() if stamp else None


def choose_interpreter(
    requires_python: str = "",
    declared: tuple[str, ...] = (),
    created_at: str = "",
    *,
    requested: str | None = None,
    available: tuple[Interpreter, ...] | None = None,
) -> InterpreterChoice:
    """Pick an interpreter (see the module docstring). ``requested`` is a version prefix
    (``3.9``) or a path and overrides the preferences but not existence. Raises
    ``BuildError`` when nothing fits."""
    pool = find_interpreters() if available is None else available
    if not pool:
        raise BuildError("no Python 3.7+ interpreter found on this machine")
    have = ", ".join(i.version for i in pool)
    if requested:
        for interp in reversed(pool):
            if requested in (interp.path, interp.version, interp.short) or \
                    interp.version.startswith(requested + "."):
                return InterpreterChoice(interpreter=interp, reason=f"requested {requested}")
        raise BuildError(f"requested Python {requested} not found", f"have {have}")
    spec = _specifier(requires_python) if requires_python else None
    allowed = [i for i in pool if spec is None or spec.contains(i.version, prereleases=True)]
    if not allowed:
        raise BuildError(f"no interpreter satisfies requires-python {requires_python!r}",
                         f"have {have}")
    why = [f"requires-python {requires_python!r}" if spec else "no requires-python"]
    declared_minors = [int(v.split(".")[1]) for v in declared]
    if declared_minors:
        newest = max(declared_minors)
        kept = [i for i in allowed if i.minor[1] <= newest]
        if kept:
            allowed = kept
            why.append(f"declared up to 3.{newest}")
    era = _era(created_at)
    if era is not None:
        kept = [i for i in allowed if RELEASES.get(i.minor[1], date.max) <= era + ERA_GRACE]
        allowed = kept or allowed[:1]
        why.append(f"era {era.isoformat()}" if kept else
                   f"era {era.isoformat()} predates every allowed interpreter: oldest taken")
    choice = allowed[-1]
    return InterpreterChoice(interpreter=choice, reason=f"{choice.version}: " + ", ".join(why))


# --- a neutral path inside sandboxes ----------------------------------------------------------
# An interpreter under a home directory (pyenv's /root/.pyenv/versions/X) must not be seen at
# its host path inside a sandbox: the path names the host's home and what is in it. Sandboxes
# see its prefix at NEUTRAL_PREFIX instead, and venvs are made against that path. A shared
# build (pyenv's) finds libpython through an absolute RUNPATH naming the host prefix, so the
# sandbox gets a copy of the executable whose RUNPATH says ``$ORIGIN/..`` in its place.

NEUTRAL_PREFIX = "/opt/codemill/python"
"""Where sandboxes see an interpreter's install prefix when it lies outside ``/usr``."""

_DT_RPATH, _DT_STRTAB, _DT_RUNPATH = 15, 5, 29


def needs_neutral_path(prefix: str | Path) -> bool:
    """True for a prefix outside ``/usr`` (those are bound; ``/usr`` is always visible)."""
    p = Path(prefix)
    return p != Path("/usr") and Path("/usr") not in p.parents


def relocated_elf(data: bytes, prefix: str) -> bytes | None:
    """``data`` (an ELF64 little-endian executable) with ``prefix`` in its RUNPATH/RPATH
    replaced by ``$ORIGIN/..``, in place (the string only shrinks; the rest is NUL);
    None when there is nothing to change or the file is not such an ELF."""
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x02\x01":
        return None

    def u(off: int, size: int) -> int:
        return int.from_bytes(data[off:off + size], "little")

    phoff, phentsize, phnum = u(0x20, 8), u(0x36, 2), u(0x38, 2)
    loads, dynamic = [], None
    for i in range(phnum):
        at = phoff + i * phentsize
        kind, offset, vaddr, filesz = u(at, 4), u(at + 8, 8), u(at + 16, 8), u(at + 32, 8)
        if kind == 1:
            loads.append((vaddr, offset, filesz))
        elif kind == 2:
            dynamic = (offset, filesz)
    if dynamic is None:
        return None
    strtab, paths = None, []
    for j in range(dynamic[1] // 16):
        tag, val = u(dynamic[0] + 16 * j, 8), u(dynamic[0] + 16 * j + 8, 8)
        if tag == 0:
            break
        if tag == _DT_STRTAB:
            strtab = next((off + val - va for va, off, size in loads if va <= val < va + size),
                          None)
        elif tag in (_DT_RPATH, _DT_RUNPATH):
            paths.append(val)
    if strtab is None:
        return None
    out, old_prefix = bytearray(data), prefix.rstrip("/").encode()
    for rel in paths:
        start = strtab + rel
        end = data.index(b"\0", start)
        old = data[start:end]
        new = old.replace(old_prefix, b"$ORIGIN/..")
        if new != old and len(new) <= len(old):
            out[start:end] = new + b"\0" * (len(old) - len(new))
    return bytes(out) if out != data else None


def neutral_binds(python_path: str, store: Path) -> tuple[tuple[Path, str], ...]:
    """Read-only ``(host, inside)`` binds that let the interpreter at ``python_path`` run
    from ``NEUTRAL_PREFIX``: its executable, relocated (``relocated_elf``), kept under
    ``store`` by content. Empty when the executable needs no change."""
    exe = Path(os.path.realpath(python_path))
    prefix = exe.parent.parent
    data = exe.read_bytes()
    patched = relocated_elf(data, str(prefix))
    if patched is None:
        return ()
    target = Path(store) / hashlib.sha256(patched).hexdigest()[:16] / exe.name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{exe.name}.{os.getpid()}")
        tmp.write_bytes(patched)
        tmp.chmod(0o755)
        os.replace(tmp, target)
        target.parent.chmod(0o755)
    return ((target, f"{NEUTRAL_PREFIX}/bin/{exe.name}"),)


def neutral_executable(python_path: str) -> str:
    """The path of the interpreter at ``python_path`` inside a sandbox that binds its
    prefix at ``NEUTRAL_PREFIX`` (the real file's name, not a ``python3`` link's)."""
    return f"{NEUTRAL_PREFIX}/bin/{Path(os.path.realpath(python_path)).name}"


def venv_is_neutral(venv: Path) -> bool:
    """Was the venv at ``venv`` made against ``NEUTRAL_PREFIX`` (its ``pyvenv.cfg`` home)?
    Venvs made before then name the host path and are still bound that way."""
    try:
        text = (Path(venv) / "pyvenv.cfg").read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return value.strip().startswith(NEUTRAL_PREFIX + "/")
    return False
