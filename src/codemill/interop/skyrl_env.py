"""A codemill task as a SkyRL-gym text environment: chat messages in, the grader's reward out.

    import skyrl_gym
    from codemill.interop.skyrl_env import register
    env = skyrl_gym.make(register(), env_config=None, extras={
        "task": task, "env": env_spec, "home": home, "settings": settings, "mode": "agent"})
    prompt, _ = env.init(dataset_prompt)       # codemill's own first messages
    while True:
        out = env.step(policy(prompt))         # BaseTextEnvStepOutput
        if out["done"]:
            break                              # out["reward"]: the grader's value
        prompt += [{"role": "assistant", ...}] + out["observations"]
    env.close()

SkyRL's generator builds each environment from a dataset row's ``extras``: a row of the
veRL Parquet (``codemill.interop.datasets.save_verl``, with SkyRL's ``env_class`` column set
to ``ENV_ID``) works as is, its ``extra_info`` naming the task, environment, home and
settings; live records (``task``, ``env``, ``home``, ``settings``) work in process. Each
worker process calls ``register()`` once. ``extras["mode"]`` picks agent mode (default:
tools in a sandbox fork, many steps) or patch mode (one answer).

Each environment is one episode of a session (``codemill.rollouts.session``): ``init``
ignores the dataset's prompt and returns the session's first messages (what codemill's own
agent sees), each ``step`` is a session step, and the last step's reward is the grader's
``Reward.value`` (0.0 before). A masked reward (sandbox failure, no verdict) is ``nan``
with ``metadata["masked"]`` true: drop such episodes, never score them 0. ``max_turns``
is the session's step limit; ``close`` removes the episode's fork.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput, ConversationType
from skyrl_gym.envs.registration import register as skyrl_register
from skyrl_gym.envs.registration import registry

from codemill.interop.datasets import records_of
from codemill.rollouts.session import Observation, SessionConfig, open_session

ENV_ID = "codemill"
_ATTEMPT_FIELDS = {"reward_id", "rollout_id", "grading_seconds"}


def _messages(obs: Observation) -> ConversationType:
    return [{"role": m.role, "content": m.content} for m in obs.messages]


class CodemillTextEnv(BaseTextEnv):
    """SkyRL-gym's ``BaseTextEnv`` over one session episode (see the module docstring)."""

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        extras = dict(extras or {})
        if "task" in extras and not isinstance(extras["task"], str):
            task, env = extras["task"], extras["env"]
            home, settings = Path(extras["home"]), extras["settings"]
        else:
            task, env, home, settings = records_of(extras["extra_info"])
        config = extras.get("config") or SessionConfig(policy="skyrl")
        mode = extras.get("mode", "agent")
        self.session = open_session(task, env, home, settings, mode, config=config)
        self.max_turns = 1 if mode == "patch" else config.agent.max_turns

    def init(self, prompt: ConversationType) -> tuple[ConversationType, dict[str, Any]]:
        """Start the episode; returns the session's first messages (the dataset's
        ``prompt`` is not used: the session's is the one its actions are read against)."""
        obs = self.session.reset()
        return _messages(obs), {"task_id": self.session.task.task_id,
                                "mode": self.session.mode}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        obs, done = self.session.step(action)
        self.turns += 1
        metadata: dict[str, Any] = {}
        reward = 0.0
        if done:
            graded = self.session.grade()
            reward = math.nan if graded.value is None else float(graded.value)
            metadata = {"stop_reason": str(self.session.stop_reason),
                        "truncated": self.session.truncated, "masked": graded.masked,
                        "reward": graded.model_dump(mode="json", exclude=_ATTEMPT_FIELDS)}
        return BaseTextEnvStepOutput(observations=[] if done else _messages(obs),
                                     reward=reward, done=done, metadata=metadata)

    def get_metrics(self) -> dict[str, Any]:
        traj = self.session.trajectory
        return {"steps": self.session.step_count,
                "submitted": float(traj is not None and traj.stop_reason == "submitted")}

    def close(self) -> None:
        self.session.close()


def register() -> str:
    """Register ``ENV_ID`` with SkyRL-gym (idempotent); returns the id for ``make``."""
    if ENV_ID not in registry:
        # By import path, as a Ray worker re-resolves it in its own process.
        skyrl_register(id=ENV_ID, entry_point=f"{__name__}:CodemillTextEnv")
    return ENV_ID
