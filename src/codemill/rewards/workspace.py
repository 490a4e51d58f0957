"""The grading workspace: a fresh sandbox over the pristine task state, the candidate diff
applied, the pristine tests and test configuration put back, the task's tests added.

Steps (``prepare``), all inside the sandbox, none running the candidate's code:

1. the broken state: the environment's layers (snapshot and build layer) plus
   ``broken_patch``, applied here. Never the task's workspace layer: it hides the test
   files the agent must not see, and grading needs them back;
2. read the pristine bytes of every protected path the diff touches (``paths.protected``);
3. ``git apply`` the candidate diff (outside git's repository mode, so no ``.git`` config
   of the workspace is read and ``.git`` paths are refused). Sections under ``.git/`` are
   dropped first (an agent that ran ``git commit`` changed them; they are no solution).
   When the whole diff does not apply, its sections on protected paths are dropped and the
   rest applied: those paths are restored next anyway, so the result is the same as
   applying everything, and a diff made against the agent's view (where hidden test files
   are absent) still applies. Binary files named without their bytes (``Binary files ...
   differ``, as workspace diffs write them) are dropped too: nobody can apply them;
4. compare the pristine and candidate pytest sections of shared config files, then remove
   every protected path the diff touched (the diff's own list, and the workspace's diff as
   a second opinion) and write the pristine bytes back;
5. ``git apply`` the task's ``test_patch``: the gold tests, hidden from the agent.

What this does not do: judge anything. ``grader`` runs the tests and reads the verdict.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codemill.core.config import SandboxConfig
from codemill.core.diffs import (
    GIT_APPLY_ENV,
    GIT_APPLY_TIMEOUT_S,
    git_apply_argv,
    parse_diff,
    strip_level,
    text_bytes,
    touched_paths,
)
from codemill.core.errors import SandboxError
from codemill.core.records import EnvSpec, ExecResult, TaskSpec
from codemill.envs import installs
from codemill.rewards import flags as F
from codemill.rewards import paths as P
from codemill.rewards import shadow as S
from codemill.rewards import special_case as SC
from codemill.sandbox.api import SandboxSpec
from codemill.sandbox.layers import MergedView


@dataclass
class Prepared:
    """What ``prepare`` did: the outcome and what a person would want to know."""

    ok: bool = True
    patch_failed: bool = False
    infra: str | None = None
    """``task:broken_patch`` / ``task:test_patch`` / ``infra:git``: not the candidate's
    fault, the reward is masked."""
    flags: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def env_spec(env: EnvSpec, home: Path, limits: SandboxConfig) -> SandboxSpec:
    """The environment's sandbox spec (build layer over the snapshot, venv at ``/env``).
    ``BuildError`` when the environment is not on disk."""
    return installs.sandbox_spec(env, home, limits)


def git_apply(sb: Any, patch: str, strip: int = 1, *, extra: Iterable[str] = ()) -> ExecResult:
    """Apply ``patch`` in the sandbox's /repo with ``git apply -p<strip>``."""
    return sb.run(git_apply_argv(strip, *extra), timeout_s=GIT_APPLY_TIMEOUT_S,
                  env=GIT_APPLY_ENV, stdin=patch)


def _read(sb: Any, path: str) -> bytes | None:
    try:
        return bytes(sb.read_file(path))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except SandboxError:  # a link out of the workspace, a device: nothing pristine to keep
        return None


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def sections(diff: str) -> list[str]:
    """``diff`` cut into one text per file, each with its own headers."""
    out: list[str] = []
    cur: list[str] = []
    in_git_header = False
    lines = diff.splitlines(keepends=True)
    for i, line in enumerate(lines):
        start = False
        if line.startswith("diff --git "):
            start, in_git_header = True, True
        elif (line.startswith("--- ") and i + 1 < len(lines)
              and lines[i + 1].startswith("+++ ")):
            start, in_git_header = not in_git_header, False
        elif line.startswith("@@"):
            in_git_header = False
        if start and cur:
            out.append("".join(cur))
            cur = []
        cur.append(line)
    if cur:
        out.append("".join(cur))
    return [s for s in out if parse_diff(s)]


def _paths_of(section: str) -> list[str]:
    return touched_paths(parse_diff(section))


def apply_candidate(sb: Any, diff: str, strip: int, protect: Any) -> tuple[ExecResult, list[str]]:
    """Apply the candidate (step 3); returns the result and notes. A diff with wrong hunk
    line counts gets a second try with ``--recount`` (hand- and model-written diffs often
    miscount)."""
    notes: list[str] = []
    parts = sections(diff)
    kept = [s for s in parts if not any(p == ".git" or p.startswith(".git/")
                                        for p in _paths_of(s))]
    if len(kept) < len(parts):
        notes.append(f"dropped {len(parts) - len(kept)} section(s) under .git/")
    applicable = [s for s in kept if not any(c.binary and not c.binary_content
                                             for c in parse_diff(s))]
    if len(applicable) < len(kept):
        notes.append(f"dropped {len(kept) - len(applicable)} binary file(s) named without "
                     "their bytes")
    kept = applicable
    if not kept:
        return git_apply(sb, "", strip), notes
    res = _apply_twice(sb, "".join(kept), strip)
    if res.exit_code != 0:
        unprotected = [s for s in kept if not any(protect(p) for p in _paths_of(s))]
        if len(unprotected) < len(kept):
            retry = _apply_twice(sb, "".join(unprotected), strip) if unprotected else res
            if retry.exit_code == 0:
                notes.append("applied without its sections on protected paths "
                             f"(the whole diff did not: {_first_line(res)})")
                return retry, notes
    return res, notes


def _apply_twice(sb: Any, diff: str, strip: int) -> ExecResult:
    res = git_apply(sb, diff, strip)
    if res.exit_code != 0:
        retry = git_apply(sb, diff, strip, extra=("--recount",))
        if retry.exit_code == 0:
            return retry
    return res


@dataclass(frozen=True)
class Defences:
    """Which workspace defences ``prepare`` applies (``GraderConfig`` switches them)."""

    restore_protected: bool = True
    remove_metadata: bool = True
    remove_shadowing: bool = True
    scan_special_cases: bool = True
    shadow_names: frozenset[str] = frozenset()
    support_paths: tuple[str, ...] = ()
    """Workspace files the task's tests were seen to import or open (validation)."""


def prepare(sb: Any, task: TaskSpec, diff: str, *, base_layers: Iterable[Path],
            defences: Defences | None = None) -> Prepared:
    """Steps 1-5 of the module docstring on an open, fresh sandbox."""
    d = defences or Defences()
    out = Prepared()
    if task.broken_patch.strip():
        res = git_apply(sb, task.broken_patch, strip_level(parse_diff(task.broken_patch)))
        if res.exit_code != 0:
            out.ok, out.infra = False, "task:broken_patch"
            out.notes.append(f"broken_patch does not apply: {_first_line(res)}")
            return out
    changes = parse_diff(diff)
    strip = strip_level(changes)
    test_patch_paths = touched_paths(parse_diff(task.test_patch))
    task_paths = P.task_test_paths(test_patch_paths, task.hidden_paths,
                                   (*task.fail_to_pass, *task.pass_to_pass))
    task_paths = task_paths | frozenset(d.support_paths)

    def protect(path: str) -> bool:
        if P.is_metadata(path):
            return d.remove_metadata
        return d.restore_protected and P.protected(path, task_paths)

    claimed = touched_paths(changes, strip)
    pristine = {p: _read(sb, p) for p in claimed if protect(p)}
    # What broken_patch made differs from the layers below: its bytes are the pristine ones.
    broken = {p: _read(sb, p) for p in touched_paths(parse_diff(task.broken_patch))}
    sources = {p: _read(sb, p) for p in claimed if p.endswith(".py") and not protect(p)}

    res, notes = apply_candidate(sb, diff, strip, protect)
    out.notes += notes
    if res.exit_code != 0:
        out.ok, out.patch_failed = False, True
        out.notes.append(f"candidate diff does not apply: {_first_line(res)}")
        return out

    if d.scan_special_cases:
        for p, before in sources.items():
            out.flags += SC.added_special_cases(_text(before), _text(_read(sb, p)))

    # The workspace's own account of what changed catches paths the diff parser missed.
    seen = touched_paths(parse_diff(sb.diff()))
    base = MergedView(list(base_layers))
    for p in seen:
        if p not in pristine and protect(p):
            pristine[p] = broken[p] if p in broken else _read_base(base, p)
            if P.is_hook(p):
                out.flags.append(F.HOOK_FILES)
        if P.is_metadata(p) and d.remove_metadata:
            out.flags.append(F.METADATA)
    if d.remove_shadowing and d.shadow_names:
        created = [p for p in seen if _read_base(base, p) is None and p not in broken]
        doomed = S.shadowing(created, d.shadow_names,
                             has_init=lambda f: _read(sb, f"{f}/__init__.py") is not None,
                             existed=lambda p: base.lookup(tuple(p.split("/"))) is not None)
        for p in doomed:
            pristine.setdefault(p, None)
        if doomed:
            out.flags.append(F.SHADOW_MODULE)
            out.notes.append(f"removed new modules shadowing installed ones: {', '.join(doomed)}")
    for p, before in pristine.items():
        name = posixpath.basename(p)
        if P.is_shared_config(p) and F.config_section_changed(name, _text(before),
                                                              _text(_read(sb, p))):
            out.flags.append(F.TOUCHED_TEST_CONFIG)
    restore(sb, pristine)
    # For people: a name that is not UTF-8 is shown with U+FFFD, never as text that cannot
    # be printed or stored.
    out.restored = sorted(text_bytes(p).decode("utf-8", "replace") for p in pristine)

    if task.test_patch.strip():
        tp_strip = strip_level(parse_diff(task.test_patch))
        res = git_apply(sb, task.test_patch, tp_strip)
        if res.exit_code != 0:
            out.ok, out.infra = False, "task:test_patch"
            out.notes.append(f"test_patch does not apply: {_first_line(res)}")
    return out


def _read_base(base: MergedView, path: str) -> bytes | None:
    try:
        return base.read(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, SandboxError):
        return None


def restore(sb: Any, pristine: dict[str, bytes | None]) -> None:
    """Remove each path (whatever the candidate made of it: file, dir, link) and write its
    pristine bytes back where it existed. Removal runs inside the sandbox."""
    if not pristine:
        return
    res = sb.run(["rm", "-rf", "--", *sorted(pristine)], timeout_s=GIT_APPLY_TIMEOUT_S)
    if res.exit_code != 0:
        raise SandboxError(f"could not remove candidate files: {_first_line(res)}")
    for path, data in sorted(pristine.items()):
        if data is not None:
            sb.write_file(path, data)


def _first_line(res: ExecResult) -> str:
    text = (res.stderr or res.stdout or "").strip()
    line = text.splitlines()[0] if text else f"exit {res.exit_code}"
    return line[:300]
