"""``codemill solve``: the same agent that runs in RL, on a user's own repository.

The repository is snapshotted (the user's files are never touched), its environment is
built or reused through the factory (so it is recorded and cached like any other), and the
agent works in a sandboxed copy. The result is a diff; applying it to the user's tree is
the caller's choice (``--apply``), done with ``git apply`` on the host, which runs no code
from the repository.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.ids import content_id, new_run_id
from codemill.core.records import EnvSpec, Trajectory

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SolveResult:
    env: EnvSpec
    trajectory: Trajectory
    run_id: str

    @property
    def diff(self) -> str:
        return self.trajectory.diff


def ensure_env(source: str, settings: Settings, *, python: str | None = None,
               progress: Progress | None = None, usable_only: bool = True) -> EnvSpec:
    """Snapshot ``source`` and return its environment, building it if needed; with
    ``usable_only=False`` an installed environment whose tests fail will do."""
    from codemill.factory.graph import REGISTRY
    from codemill.factory.materialize import materialize
    from codemill.factory.pipeline import find_env_for_snapshot
    from codemill.repos.sources import snapshot_source

    snap = snapshot_source(source, settings.home)
    env = find_env_for_snapshot(settings.home, snap.snapshot_id, usable_only=usable_only)
    if env is not None:
        return env
    cfg = {"source": source, "python": python}
    result = materialize(["environments"], {"snapshots": {"source": source},
                                            "environments": cfg},
                         settings, registry=REGISTRY, command=f"env for {source}",
                         progress=(lambda name, done, total: progress(f"{name} {done}"))
                         if progress else None)
    result.raise_for_status()
    env = find_env_for_snapshot(settings.home, snap.snapshot_id, usable_only=usable_only)
    if env is None:
        from codemill.envs.envstore import load_records

        failed = [e for e in load_records(settings.home) if e.snapshot_id == snap.snapshot_id]
        why = failed[-1].reason if failed else "no environment was recorded"
        raise FactoryError(f"no usable environment for {source}: {why}")
    return env


def solve(repo: str, task_text: str, settings: Settings, *, model: str, max_turns: int = 30,
          python: str | None = None, progress: Progress | None = None) -> SolveResult:
    """Run the agent on ``task_text`` in a sandboxed copy of ``repo``; record the rollout."""
    from codemill.agent.config import AgentConfig
    from codemill.agent.loop import Agent
    from codemill.agent.models import make_backend
    from codemill.envs.envstore import sandbox_spec
    from codemill.envs.sandbox import open_sandbox
    from codemill.store.ledger import Ledger
    from codemill.store.rows import record_to_row, step_rows

    say = progress or (lambda _m: None)
    env = ensure_env(repo, settings, python=python, progress=say, usable_only=False)
    say(f"environment {env.env_id[:12]} ready; loading model {model}")
    backend = make_backend(model, home=settings.home)
    config = AgentConfig(max_turns=max_turns)
    run_id = new_run_id()
    rollout_id = content_id("solve", env.env_id, task_text, model, run_id)
    sandbox = open_sandbox(sandbox_spec(env, settings.home, settings.sandbox), settings.home,
                           backend=settings.sandbox.backend)
    try:
        say("agent running")
        traj = Agent(backend, config).run(sandbox, task_text, rollout_id=rollout_id,
                                          task_id="", policy=model)
    finally:
        sandbox.close()
    with Ledger.open(settings) as ledger:
        ledger.start_run(run_id, "solve", {"repo": repo, "model": model, "task": task_text,
                                           "agent": config.model_dump(mode="json")})
        kw = {"run_id": run_id, "asset": "solve", "config_hash": settings.config_hash}
        with ledger.writer("rollouts", **kw) as w:
            w.add(record_to_row(traj))
        with ledger.writer("steps", **kw) as w:
            w.add_many(step_rows(traj))
        ledger.finish_run(run_id, "success", {"stop_reason": traj.stop_reason.value,
                                              "diff_lines": traj.diff.count("\n")})
    return SolveResult(env=env, trajectory=traj, run_id=run_id)


def apply_diff(repo: Path, diff: str) -> None:
    """Apply ``diff`` to the user's working tree with ``git apply`` (checked first)."""
    if not diff.strip():
        return
    for args in (["--check"], []):
        out = subprocess.run(["git", "apply", *args, "-"], cwd=repo, input=diff, text=True,
                             capture_output=True, timeout=60)
        if out.returncode != 0:
            raise FactoryError(f"cannot apply the diff to {repo}: {out.stderr.strip()[:300]}")
