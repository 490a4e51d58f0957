"""Record a mini-swe-agent episode on a task: the agent runs and is graded in
``codemill.interop.mini_swe_agent``; its rows are written here, through the one rollout-row
writer (``codemill.store.rows.rollout_rows``), like any other rollout.

An episode is a group of one (its ``group_id`` is its own rollout id, as for ``solve``):
it has a ``rollouts`` row, a ``steps`` row per model reply and a ``rewards`` row; no
``trajectories`` row, since mini-swe-agent's trajectory is text, not tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codemill.core.config import Settings
from codemill.core.records import EnvSpec, TaskSpec


@dataclass(frozen=True)
class RecordedEpisode:
    episode: Any
    """The ``MiniEpisode``: trajectory, reward, mini-swe-agent's exit status and record."""
    run_id: str


def run_mini_swe_agent(task: TaskSpec, env: EnvSpec, settings: Settings, model: Any, *,
                       config: Any = None, policy: str | None = None) -> RecordedEpisode:
    """Run mini-swe-agent with ``model`` on ``task`` (``interop.mini_swe_agent.run_episode``:
    ``model`` is a mini-swe-agent ``Model``, ``config`` a ``MiniConfig``) and record the
    episode's rows under a ``runs`` row of command ``mini-swe-agent``."""
    from codemill.factory.record import recorded_run
    from codemill.interop.mini_swe_agent import MiniConfig, run_episode
    from codemill.store.rows import rollout_rows

    config = config or MiniConfig()
    episode = run_episode(task, env, settings.home, settings, model, config=config,
                          policy=policy)
    traj, reward = episode.trajectory, episode.reward
    run_config = {"task": task.task_id, "policy": traj.policy,
                  "mini": config.model_dump(mode="json")}
    with recorded_run(settings, "mini-swe-agent", run_config) as rec:
        for table, row in rollout_rows(traj, env_id=env.env_id, group_id=traj.rollout_id,
                                       reward=reward):
            rec.add(row, table)
        rec.summary.update(stop_reason=traj.stop_reason.value, exit_status=episode.exit_status,
                           reward=reward.value, masked=reward.masked)
        run_id = rec.run_id
    return RecordedEpisode(episode=episode, run_id=run_id)
