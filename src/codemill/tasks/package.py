"""The agent's workspace for a task, packaged so that it cannot leak the answer.

``package_task(bed, task)`` builds, inside a sandbox over the environment's layers:

1. the broken state (``broken_patch`` applied);
2. minus the hidden paths (the test patch's files and the FAIL_TO_PASS test files), which
   the grader restores later;
3. a fresh single-commit git repository of what is left: ``git init``, ``add -A``, one
   commit with a fixed identity and date, then the reflog removed. No history, remotes,
   tags or reflog; the gold patch and the hidden tests were never written, so no object
   (loose or packed) can hold them;

then freezes the sandbox into a read-only layer at ``<home>/tasks/<task_id>/layer``. An
agent's sandbox is ``bed.spec.with_top(layer)``: the snapshot and build layer below, the
task layer on top. ``workspace_spec`` returns that spec (packaging once, reusing after).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from codemill.core.errors import TaskError
from codemill.core.records import TaskSpec
from codemill.sandbox.api import SandboxSpec
from codemill.tasks.patches import apply_patch
from codemill.tasks.testbed import TestBed

GIT_DATE = "2000-01-01T00:00:00+0000"
GIT_NAME = "codemill"
GIT_EMAIL = "tasks@codemill.invalid"
_SCRIPT = """set -e
rm -rf .git
git init -q .
git add -A
git commit -q --no-verify --no-gpg-sign -m "Task workspace"
rm -rf .git/logs .git/hooks .git/COMMIT_EDITMSG .git/description
git update-ref -d ORIG_HEAD 2>/dev/null || true
"""


def layer_path(home: Path, task_id: str) -> Path:
    return Path(home).absolute() / "tasks" / task_id / "layer"


def git_env() -> dict[str, str]:
    """A git with a fixed identity and clock, and no user or system configuration."""
    return {
        "GIT_AUTHOR_NAME": GIT_NAME, "GIT_AUTHOR_EMAIL": GIT_EMAIL,
        "GIT_COMMITTER_NAME": GIT_NAME, "GIT_COMMITTER_EMAIL": GIT_EMAIL,
        "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE,
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "init.defaultBranch",
        "GIT_CONFIG_VALUE_0": "main", "GIT_CONFIG_KEY_1": "safe.directory",
        "GIT_CONFIG_VALUE_1": "*",
    }


def workspace_changes(bed: TestBed, task: TaskSpec) -> dict[str, bytes | None]:
    """The broken state minus hidden paths, as changes to the environment's layers."""
    changes = apply_patch(task.broken_patch, bed.read_base) if task.broken_patch else {}
    for path in task.hidden_paths:
        if changes.get(path) is not None or bed.read_base(path) is not None:
            changes[path] = None
        elif path in changes:
            del changes[path]
    return changes


def package_task(bed: TestBed, task: TaskSpec, *, rebuild: bool = False) -> Path:
    """The task's workspace layer (built once; see the module docstring)."""
    dest = layer_path(bed.home, task.task_id)
    if dest.is_dir() and not rebuild:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with bed.sandbox(workspace_changes(bed, task)) as sb:
        res = sb.run(["sh", "-c", _SCRIPT], timeout_s=300, env=git_env())
        if res.exit_code != 0:
            raise TaskError(f"packaging {task.task_id[:12]} failed: "
                            f"{(res.stderr or res.stdout).strip()[-300:]}")
        return Path(sb.freeze(dest))


def workspace_spec(bed: TestBed, task: TaskSpec) -> SandboxSpec:
    """The sandbox spec of an agent working on ``task``."""
    return bed.spec.with_top(package_task(bed, task))
