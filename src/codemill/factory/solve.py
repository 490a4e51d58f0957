"""``codemill solve``: the same agent that runs in RL, on a user's own repository.

The repository is snapshotted (the user's files are never touched), its environment is
built or reused through the factory (so it is recorded and cached like any other), and the
agent works in a sandboxed copy. The result is a diff; applying it to the user's tree is
the caller's choice (``--apply``), done with ``git apply`` on the host, which runs no code
from the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codemill.core.config import Settings
from codemill.core.diffs import git_apply_on_host, parse_diff, strip_level
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id, new_run_id
from codemill.core.records import EnvSpec, Trajectory
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
          python: str | None = None, progress: Progress | None = None) -> SolveResult:
    """Run the agent on ``task_text`` in a sandboxed copy of ``repo``; record the rollout."""
    from codemill.agent.config import AgentConfig
    from codemill.agent.loop import Agent
    from codemill.agent.models import make_backend
    from codemill.envs.envstore import sandbox_spec
    from codemill.factory.record import recorded_run
    from codemill.sandbox.api import open_sandbox
    from codemill.store.rows import record_to_row, step_rows

    say = progress or (lambda _m: None)
    env = ensure_env(repo, settings, python=python, progress=say, usable_only=False)
    say(f"environment {env.env_id[:12]} ready; loading model {model}")
    backend = make_backend(model, home=settings.home)
    config = AgentConfig(max_turns=max_turns)
    rollout_id = content_id("solve", env.env_id, task_text, model, new_run_id())
    sandbox = open_sandbox(sandbox_spec(env, settings.home, settings.sandbox), settings.home,
                           backend=settings.sandbox.backend)
    try:
        say("agent running")
        traj = Agent(backend, config).run(sandbox, task_text, rollout_id=rollout_id,
                                          task_id="", policy=model)
    finally:
        sandbox.close()
    run_config = {"repo": repo, "model": model, "task": task_text,
                  "agent": config.model_dump(mode="json")}
    with recorded_run(settings, "solve", run_config) as rec:
        row = record_to_row(traj)
        row["env_id"] = env.env_id
        rec.add(row, "rollouts")
        rec.add_many(step_rows(traj), "steps")
        rec.summary.update(stop_reason=traj.stop_reason.value,
                           diff_lines=traj.diff.count("\n"))
        run_id = rec.run_id
    return SolveResult(env=env, trajectory=traj, run_id=run_id)


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
