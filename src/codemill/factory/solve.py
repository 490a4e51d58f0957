"""``codemill solve``: the same agent that runs in RL, on a user's own repository.

The repository is snapshotted (the user's files are never touched), its environment is
built or reused through the factory (so it is recorded and cached like any other), and the
agent works in a sandboxed copy. The result is a diff; applying it to the user's tree is
the caller's choice (``--apply``), done with ``git apply`` on the host, which runs no code
from the repository.

``mode="patch"`` asks the model once instead (``codemill.rollouts.patch_mode``): the prompt
holds the task text, the output of the repository's failing tests and the code they reach
(measured in a sandbox, ``codemill.tasks.patch_context.repo_patch_context``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codemill.core.config import Settings
from codemill.core.diffs import git_apply_on_host, parse_diff, strip_level
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id, new_run_id
from codemill.core.records import EnvSpec, SamplingConfig, Trajectory
from codemill.factory.environments import ensure_env

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SolveResult:
    env: EnvSpec
    trajectory: Trajectory
    run_id: str

    @property
    def diff(self) -> str:
        return self.trajectory.diff


def solve(repo: str, task_text: str, settings: Settings, *, model: str, max_turns: int = 30,
          python: str | None = None, progress: Progress | None = None,
          mode: str = "agent") -> SolveResult:
    """Run the agent on ``task_text`` in a sandboxed copy of ``repo`` (or, with
    ``mode="patch"``, ask for one edit); record the rollout's rows (``rollout_rows``, the
    ``trajectories`` row when the model is token-exact). A solve has no task and no
    sampled group: its ``group_id`` is its own rollout id (a group of one), and it is
    ungraded (no ``rewards`` row)."""
    from codemill.agent.config import AgentConfig
    from codemill.agent.loop import Agent
    from codemill.agent.models import make_backend
    from codemill.envs.installs import sandbox_spec
    from codemill.factory.record import recorded_run
    from codemill.sandbox.api import open_sandbox
    from codemill.store.rows import rollout_rows

    say = progress or (lambda _m: None)
    env = ensure_env(repo, settings, python=python, progress=say, usable_only=False)
    say(f"environment {env.env_id[:12]} ready; loading model {model}")
    backend = make_backend(model, home=settings.home)
    config = AgentConfig(max_turns=max_turns)
    rollout_id = content_id("solve", env.env_id, task_text, model, new_run_id())
    if mode == "patch":
        traj = _solve_patch(env, task_text, settings, backend, rollout_id, model, say)
    else:
        sandbox = open_sandbox(sandbox_spec(env, settings.home, settings.sandbox),
                               settings.home, backend=settings.sandbox.backend)
        try:
            say("agent running")
            traj = Agent(backend, config).run(sandbox, task_text, rollout_id=rollout_id,
                                              task_id="", policy=model)
        finally:
            sandbox.close()
    run_config = {"repo": repo, "model": model, "task": task_text, "mode": mode,
                  "agent": config.model_dump(mode="json")}
    with recorded_run(settings, "solve", run_config) as rec:
        # No task, so no GRPO group: the rollout is a group of one, its own id.
        for table, row in rollout_rows(traj, env_id=env.env_id, group_id=traj.rollout_id):
            rec.add(row, table)
        rec.summary.update(stop_reason=traj.stop_reason.value,
                           diff_lines=traj.diff.count("\n"))
        run_id = rec.run_id
    return SolveResult(env=env, trajectory=traj, run_id=run_id)


def _solve_patch(env: EnvSpec, task_text: str, settings: Settings, backend: Any,
                 rollout_id: str, model: str, say: Progress) -> Trajectory:
    from codemill.core.errors import TaskError
    from codemill.rollouts.patch_mode import run_patch
    from codemill.tasks.patch_context import repo_patch_context
    from codemill.tasks.testbed import TestBed

    say("running the failing tests under coverage")
    bed = TestBed.from_env(env, settings.home, settings.sandbox,
                           backend=settings.sandbox.backend)
    try:
        context = repo_patch_context(bed)
    except TaskError as exc:
        raise FactoryError(str(exc)) from None
    say("asking the model for an edit")
    return run_patch(backend, task_text, context, rollout_id=rollout_id, policy=model,
                     sampling=SamplingConfig(max_tokens=512))


def apply_diff(repo: Path, diff: str) -> None:
    """Apply ``diff`` to the user's working tree with ``git apply`` (checked first), at the
    strip level the grader uses."""
    if not diff.strip():
        return
    strip = strip_level(parse_diff(diff))
    for args in (["--check"], []):
        out = git_apply_on_host(repo, diff, strip, *args)
        if out.returncode != 0:
            why = out.stderr.decode(errors="replace").strip()[:300]
            raise FactoryError(f"cannot apply the diff to {repo}: {why}")
