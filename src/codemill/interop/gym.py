"""A codemill task as a Gymnasium environment: text in, text out, the grader's reward at the end.

    from codemill.interop.gym import TaskEnv
    env = TaskEnv.from_task(task, env_spec, home, settings, mode="agent")
    obs, info = env.reset(seed=0)              # system prompt (tools, action format) + task
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            break                              # reward: the grader's value; 0.0 before
    env.close()

or, through the registry, ``register()`` then ``gymnasium.make(ENV_ID, task=..., env=...,
home=..., settings=..., mode=...)``.

Each ``reset`` starts an episode of the wrapped session (``codemill.rollouts.session``: a
fresh sandbox fork in agent mode), so observations are what codemill's own agent sees and
the final reward is the grader's ``Reward.value`` of the episode's diff. ``truncated`` means
the session's step or time limit ended the episode; ``terminated`` that the policy did
(submit, an answer in patch mode, too many unreadable replies) or the sandbox failed.

A masked reward (the sandbox failed, or the grader could not reach a verdict) is ``nan``,
never 0.0, with ``info["masked"]`` true: drop such episodes from training. The terminal
``info["reward"]`` holds the grader's verdict (resolved, tests passed, hack flags); the whole
``Reward`` and ``Trajectory`` are on ``env.session`` (``grade()``, ``trajectory``).

Observations and actions are ``AnyText`` spaces: strings of any characters (tool output is
whatever the repository prints) up to a length; ``sample()`` draws printable ASCII.
Observations longer than the space allows are trimmed the way the agent trims tool output.
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any

import gymnasium
from gymnasium.spaces import Text

from codemill.agent.tools import trim
from codemill.core.config import Settings
from codemill.core.records import EnvSpec, TaskSpec
from codemill.rollouts.session import Session, SessionConfig, SessionMode, open_session

ENV_ID = "codemill/Task-v0"
MAX_OBSERVATION_CHARS = 1_000_000
MAX_ACTION_CHARS = 65_536
# The verdict, without what names the attempt or times it (those differ between two
# episodes of the same actions; Gymnasium's checker expects equal infos for equal steps).
_ATTEMPT_FIELDS = {"reward_id", "rollout_id", "grading_seconds"}


class AnyText(Text):
    """Text of any characters, ``min_length..max_length`` long; samples printable ASCII."""

    def __init__(self, max_length: int, *, min_length: int = 0) -> None:
        super().__init__(max_length, min_length=min_length, charset=string.printable)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.min_length}, {self.max_length})"


class TaskEnv(gymnasium.Env[str, str]):
    """A ``gymnasium.Env`` over one session (see the module docstring); closing the env
    closes the session and its fork."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, session: Session, *, max_observation_chars: int = MAX_OBSERVATION_CHARS,
                 max_action_chars: int = MAX_ACTION_CHARS) -> None:
        self.session = session
        self.observation_space = AnyText(max_observation_chars)
        self.action_space = AnyText(max_action_chars)

    @classmethod
    def from_task(cls, task: TaskSpec, env: EnvSpec, home: Path, settings: Settings,
                  mode: SessionMode = "agent", config: SessionConfig | None = None,
                  **spaces: int) -> TaskEnv:
        """Open a session over ``task`` (``open_session``) and wrap it."""
        return cls(open_session(task, env, home, settings, mode, config=config), **spaces)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        """A new episode; ``seed`` seeds ``np_random`` only (the task is deterministic)."""
        super().reset(seed=seed)
        obs = self.session.reset()
        info = {"task_id": self.session.task.task_id, "mode": self.session.mode,
                "rollout_id": self.session.rollout_id}
        return self._text(obs.text), info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, done = self.session.step(action)
        info: dict[str, Any] = {"stop_reason": None if not done else str(self.session.stop_reason)}
        reward = 0.0
        if done:
            graded = self.session.grade()
            reward = math.nan if graded.value is None else float(graded.value)
            info["masked"] = graded.masked
            info["reward"] = graded.model_dump(mode="json", exclude=_ATTEMPT_FIELDS)
        truncated = done and self.session.truncated
        return self._text(obs.text), reward, done and not truncated, truncated, info

    def close(self) -> None:
        self.session.close()

    def _text(self, text: str) -> str:
        limit = self.observation_space.max_length
        return text if len(text) <= limit else trim(text, limit)


def task_env(**kwargs: Any) -> TaskEnv:
    """``gymnasium.make``'s entry point: ``TaskEnv.from_task(**kwargs)``."""
    return TaskEnv.from_task(**kwargs)


def register() -> str:
    """Register ``ENV_ID`` with Gymnasium (idempotent); returns the id for ``make``."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point=task_env, disable_env_checker=False)
    return ENV_ID
