"""History mining: real bug fixes and features from a repository's own commits.

    for task, row in mine(bed, mirror, head, MineConfig(max_commits=50), repo="o/r"): ...

For each first-parent commit C (newest first) that changes both code and tests:

* base state = the tree of C's parent P, written over the environment's snapshot (every
  path where the snapshot's file differs from P's; the snapshot's build layer stays);
* broken state = base + C's test changes (the parent's code with the commit's tests);
* gold state = broken + C's other changes. Renames are a deletion plus an addition,
  deleted tests stay deleted. Binary files outside Python, tests and C's own change that
  differ between P and the snapshot keep the snapshot's bytes (``kept_from_snapshot`` in
  the task's metadata): a text patch cannot carry them, and validation runs the states
  as they are.
* FAIL_TO_PASS = tests failing in the broken state and passing in the gold state;
  PASS_TO_PASS = passing in both (derived by validation from full-suite runs, k times).

Commits are rejected, each with a counted reason, when they touch no tests (``no test
change``) or no Python code (``no code change``), are
root commits, declare requirements the environment does not meet (``deps not met``: the
parent's or the commit's manifests, held to the environment's lock and Python by
``tasks.deps.unmet_requirements``; without a lock, ``deps changed``: manifests whose
declared requirements differ from the snapshot's or across the commit), carry binary
changes, lie too far from the snapshot, or yield no fail-to-pass test (``no fail-to-pass``;
``gold state: no test passes`` when even the commit's own state passes none of its tests,
as when its code no longer runs on the environment's Python). All git access is plumbing
on a mirror (``codemill.repos``); the repository's code runs only in sandboxes.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from codemill.core.errors import SourceError
from codemill.core.records import Outcome, TaskKind
from codemill.repos.gitcmd import git
from codemill.repos.history import CommitInfo, changed_files, list_commits
from codemill.sandbox.layers import MergedView
from codemill.tasks.deps import Installed, deps_changed, unmet_requirements
from codemill.tasks.patches import (
    BinaryChangeError,
    Changes,
    changed_lines,
    is_text,
    make_diff,
)
from codemill.tasks.paths import is_dependency_path, is_test_path
from codemill.tasks.records import FunnelCounter, candidate_id
from codemill.tasks.statements import failure_statement, forbidden_lines
from codemill.tasks.testbed import TestBed, failed
from codemill.tasks.validate import Candidate, Decision, ValidationConfig, reject, validate


class MineConfig(BaseModel):
    """How far back mining looks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_commits: int = 50
    """First-parent commits to look at, newest first."""
    max_tasks: int = 20
    max_base_files: int = 300
    """Reject a commit whose parent differs from the snapshot in more files than this."""
    validation: ValidationConfig = ValidationConfig()


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def tree_files(mirror: Path, commit: str) -> dict[str, str]:
    """Regular files of ``commit``: path -> blob sha (links and submodules left out)."""
    out: dict[str, str] = {}
    raw = git(["ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit],
              git_dir=mirror)
    for rec in raw.split(b"\0"):
        if not rec:
            continue
        meta, path = rec.split(b"\t", 1)
        mode, kind, sha = meta.decode().split(" ")
        if kind == "blob" and mode in ("100644", "100755"):
            out[path.decode("utf-8", "surrogateescape")] = sha
    return out


class _Blobs:
    def __init__(self, mirror: Path) -> None:
        self.mirror = mirror
        self.cache: dict[str, bytes] = {}

    def get(self, sha: str | None) -> bytes | None:
        if sha is None:
            return None
        if sha not in self.cache:
            self.cache[sha] = git(["cat-file", "blob", sha], git_dir=self.mirror)
        return self.cache[sha]


def snapshot_files(layer: Path) -> dict[str, tuple[str, bytes]]:
    """The snapshot layer's regular files: path -> (git blob sha, bytes)."""
    out = {}
    view = MergedView([layer])
    for e in view.walk():
        if e.is_file:
            rel = "/".join(e.rel)
            data = view.read(rel)
            out[rel] = (_blob_sha(data), data)
    return out


class _DepsFit:
    """``unmet_requirements`` of trees, cached by their manifests' blobs (most commits
    leave them alone, so a long history holds few distinct ones)."""

    def __init__(self, installed: Installed, blobs: _Blobs) -> None:
        self.installed, self.blobs = installed, blobs
        self.cache: dict[tuple[tuple[str, str], ...], list[str]] = {}

    def unmet(self, tree: dict[str, str]) -> list[str]:
        key = tuple(sorted((p, sha) for p, sha in tree.items() if is_dependency_path(p)))
        if key not in self.cache:
            self.cache[key] = unmet_requirements(
                {p: self.blobs.get(sha) for p, sha in key}, self.installed)
        return self.cache[key]


def mine(bed: TestBed, mirror: Path, head: str, cfg: MineConfig, *, repo: str = "",
         funnel: FunnelCounter | None = None, skip: Iterable[str] = (),
         installed: Installed | None = None) -> Iterator[Decision]:
    """Mined tasks for ``bed``'s environment from ``head``'s history; see module doc.
    ``installed`` (``Installed.of(env)``) is what the environment has; without it a commit
    whose manifests differ from the snapshot's is skipped as ``deps changed``."""
    funnel = funnel if funnel is not None else FunnelCounter(bed.env_id, "mined")
    skip = set(skip)
    snap = snapshot_files(bed.spec.layers[-1])
    blobs = _Blobs(mirror)
    fit = _DepsFit(installed, blobs) if installed is not None else None
    made = 0
    for info in list_commits(mirror, head, limit=cfg.max_commits):
        if made >= cfg.max_tasks:
            break
        started = time.monotonic()
        built = _build(bed, mirror, info, cfg, snap, blobs, repo, fit)
        if isinstance(built, tuple):
            reason, stage, why = built
            cid = candidate_id(bed.env_id, "mined", info.sha, "")
            if cid in skip:
                funnel.skipped_known += 1
                continue
            funnel.reached("candidates")
            if stage == "compiled":
                funnel.reached("compiled")
            funnel.reject(reason)
            yield None, reject(bed.env_id, None, reason, stage, kind="mined", candidate_id=cid,
                               detail=f"commit {info.sha[:12]}: {info.subject[:200]}{why}",
                               seconds=time.monotonic() - started)
            continue
        c = built
        if c.candidate_id in skip:
            funnel.skipped_known += 1
            continue
        funnel.reached("candidates")
        funnel.reached("compiled")
        why = _screen(bed, c, funnel)
        if why:
            funnel.reject(why)
            yield None, reject(bed.env_id, c, why, "compiled",
                               detail=f"commit {info.sha[:12]}: {info.subject[:200]}",
                               seconds=time.monotonic() - started)
            continue
        funnel.reached("broke_a_test")
        c.screen_seconds = time.monotonic() - started
        decision = validate(bed, c, cfg.validation, funnel)
        if decision[0] is not None:
            made += 1
        yield decision


def prescreen(bed: TestBed, mirror: Path, head: str, cfg: MineConfig, *,
              installed: Installed | None = None) -> Counter[str]:
    """How the static checks (all of them before a sandbox runs) sort the newest
    ``cfg.max_commits`` commits: reason -> count, ``candidate`` for the commits that pass.
    Runs no project code and records nothing; for measuring the miner."""
    snap = snapshot_files(bed.spec.layers[-1])
    blobs = _Blobs(mirror)
    fit = _DepsFit(installed, blobs) if installed is not None else None
    return Counter(
        b[0] if isinstance(b := _build(bed, mirror, info, cfg, snap, blobs, "", fit), tuple)
        else "candidate" for info in list_commits(mirror, head, limit=cfg.max_commits))


def _build(bed: TestBed, mirror: Path, info: CommitInfo, cfg: MineConfig,
           snap: dict[str, tuple[str, bytes]], blobs: _Blobs, repo: str,
           fit: _DepsFit | None = None) -> Candidate | tuple[str, str, str]:
    """The candidate of one commit, or (reason, stage, detail) when it cannot be one."""
    if info.parent is None:
        return "root commit", "candidates", ""
    try:
        files = changed_files(mirror, info.sha)
    except SourceError as exc:
        return f"git: {exc}", "candidates", ""
    tests = [f for f in files if f.is_test]
    code = [f for f in files if not f.is_test]
    if not tests:
        return "no test change", "candidates", ""
    if not any(f.path.endswith(".py") for f in code):
        return "no code change", "candidates", ""
    parent, after = tree_files(mirror, info.parent), tree_files(mirror, info.sha)
    if fit is not None:
        unmet = sorted(set(fit.unmet(parent)) | set(fit.unmet(after)))
        if unmet:
            return "deps not met", "candidates", f" (needs {', '.join(unmet)[:300]})"
    else:
        dep_paths = {p for p in (*parent, *after, *snap) if is_dependency_path(p)}
        p_deps = {p: blobs.get(parent.get(p)) for p in dep_paths}
        if deps_changed(p_deps, {p: blobs.get(after.get(p)) for p in dep_paths}) or \
                deps_changed({p: snap[p][1] if p in snap else None for p in dep_paths}, p_deps):
            return "deps changed", "candidates", ""
    def at(tree: dict[str, str], p: str) -> bytes | None:
        return blobs.get(tree.get(p))

    touched = {x for f in files for x in (f.path, f.old_path) if x}
    base_paths = sorted({p for p in (*parent, *snap)
                         if parent.get(p) != (snap[p][0] if p in snap else None)})
    # A binary asset that only the snapshot's side changed (a docs image, an inventory)
    # cannot travel in a text patch; it stays at the snapshot's bytes. Python files, test
    # files and what the commit itself touches are never approximated.
    kept = [p for p in base_paths if p not in touched and not p.endswith(".py")
            and not is_test_path(p) and not (
                is_text(at(parent, p)) and is_text(snap[p][1] if p in snap else None))]
    base_paths = [p for p in base_paths if p not in set(kept)]
    if len(base_paths) > cfg.max_base_files:
        return "too far from the snapshot", "candidates", ""

    base: Changes = {p: at(parent, p) for p in base_paths}
    test_paths = sorted({x for f in tests for x in (f.path, f.old_path) if x})
    code_paths = sorted({x for f in code for x in (f.path, f.old_path) if x})
    test_changes: Changes = {p: at(after, p) for p in test_paths}
    code_changes: Changes = {p: at(after, p) for p in code_paths}
    try:
        broken_patch = make_diff({p: snap[p][1] if p in snap else None for p in base}, base)
        test_patch = make_diff({p: at(parent, p) for p in test_paths}, test_changes)
        gold_patch = make_diff({p: at(parent, p) for p in code_paths}, code_changes)
    except BinaryChangeError:
        return "binary change", "candidates", ""
    hidden = tuple(p for p in test_paths if test_changes[p] is not None and is_test_path(p))
    selection = tuple(p for p in hidden if p.rsplit("/", 1)[-1].startswith("test_")
                      or p.endswith("_test.py"))
    hidden_src = [(test_changes[p] or b"").decode("utf-8", "replace") for p in hidden]
    forbidden = forbidden_lines(gold_patch, hidden_src)
    message = f"{info.subject}\n\n{info.body}".strip()
    broken = {**base, **test_changes}
    gold_lines = {p: ls for p, ls in changed_lines(gold_patch).items() if p.endswith(".py")}
    return Candidate(
        kind=TaskKind.MINED,
        candidate_id=candidate_id(bed.env_id, "mined", broken_patch + gold_patch, test_patch),
        broken_state=broken, gold_state={**broken, **code_changes}, broken_patch=broken_patch,
        gold_patch=gold_patch, test_patch=test_patch, selection=selection or None,
        labels="derive", hidden_paths=hidden, gold_lines=gold_lines,
        describe=lambda failures: failure_statement(failures, forbidden=forbidden,
                                                    commit_message=message),
        metadata={"commit": info.sha, "base_commit": info.parent, "created_at": info.date,
                  "subject": info.subject[:200], "repo": repo,
                  "renames": [f"{f.old_path} -> {f.path}" for f in files if f.status == "R"],
                  "kept_from_snapshot": kept},
    )


def _screen(bed: TestBed, c: Candidate, funnel: FunnelCounter) -> str | None:
    """Run the commit's test files in both states; None when some test flips."""
    sel = list(c.selection) if c.selection else None
    gold = bed.run(c.gold_state, sel)
    broken = bed.run(c.broken_state, sel)
    funnel.test_seconds += gold.duration_s + broken.duration_s
    for state, rep in (("gold", gold), ("broken", broken)):
        if rep.timed_out:
            return f"{state} state: timeout"
        if not rep.ran and not (state == "broken" and rep.results):
            return f"{state} state: no test results"
    go, bo = gold.outcomes(), broken.outcomes()
    flips = [t for t, o in go.items() if o == Outcome.PASSED and (failed(bo.get(t))
                                                                   or t not in bo)]
    if not flips:
        # None passing even after the fix: the past does not run here (a Python or a test
        # dependency the environment lacks), which is not the same as tests that never flip
        passed = [t for t, o in go.items() if o == Outcome.PASSED]
        return "no fail-to-pass" if passed else "gold state: no test passes"
    c.fail_to_pass = tuple(sorted(flips))
    return None
