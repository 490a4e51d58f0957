"""Record a mini-swe-agent episode on a task: the agent runs and is graded in
``codemill.interop.mini_swe_agent``; its rows are written here, through the one rollout-row
writer (``codemill.store.rows.rollout_rows``), like any other rollout.

``codemill rollout TASK... --agent mini-swe-agent --model SPEC`` runs through here. An
episode is a group of one (its ``group_id`` is its own rollout id, as for ``solve``):
it has a ``rollouts`` row, a ``steps`` row per model reply and a ``rewards`` row; no
``trajectories`` row, since mini-swe-agent's trajectory is text, not tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    [recorded] = run_mini_swe_agents([task], {env.env_id: env}, settings, lambda: model,
                                     config=config, policy=policy)
    return recorded


def run_mini_swe_agents(tasks: Sequence[TaskSpec], envs: Mapping[str, EnvSpec],
                        settings: Settings, make_model: Callable[[], Any], *,
                        group: int = 1, config: Any = None, policy: str | None = None,
                        progress: Callable[[Any], None] | None = None
                        ) -> list[RecordedEpisode]:
    """``group`` episodes per task, one after another, each with a fresh model from
    ``make_model`` (a mini-swe-agent model keeps its own per-episode state); every
    episode's rows are recorded as it ends, all under one ``runs`` row. ``progress`` gets
    each ``MiniEpisode``."""
    from codemill.factory.record import recorded_run
    from codemill.interop.mini_swe_agent import MiniConfig, run_episode
    from codemill.store.rows import rollout_rows

    config = config or MiniConfig()
    run_config = {"tasks": [t.task_id for t in tasks], "group": group, "policy": policy,
                  "mini": config.model_dump(mode="json")}
    out: list[RecordedEpisode] = []
    with recorded_run(settings, "mini-swe-agent", run_config) as rec:
        for task in tasks:
            for _ in range(group):
                episode = run_episode(task, envs[task.env_id], settings.home, settings,
                                      make_model(), config=config, policy=policy)
                traj, reward = episode.trajectory, episode.reward
                for table, row in rollout_rows(traj, env_id=task.env_id,
                                               group_id=traj.rollout_id, reward=reward):
                    rec.add(row, table)
                rec.flush()  # an episode is minutes of work: keep it if the next fails
                out.append(RecordedEpisode(episode=episode, run_id=rec.run_id))
                if progress is not None:
                    progress(episode)
        scored = [e.episode.reward for e in out if not e.episode.reward.masked]
        rec.summary.update(episodes=len(out), masked=len(out) - len(scored),
                           resolved=sum(1 for r in scored if r.resolved))
    return out
