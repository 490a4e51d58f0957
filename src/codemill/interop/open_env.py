"""A codemill task as an OpenEnv environment (``openenv-core``): its server and its client.

Server (one codemill session, so one sandbox fork, per WebSocket connection)::

    app = task_app(task, env_spec, home, settings, mode="agent", max_sessions=4)
    uvicorn.run(app, host="127.0.0.1", port=8000)

Client (OpenEnv's WebSocket ``EnvClient``)::

    with TaskClient(base_url="http://127.0.0.1:8000").sync() as client:
        result = client.reset()                 # result.observation.text: prompt + task
        while not result.done:
            result = client.step(TaskAction(text=policy(result.observation.messages)))
        result.reward                           # the grader's value; None when masked

``TaskEnvironment`` is OpenEnv's ``Environment`` over ``codemill.rollouts.session``:
observations are what codemill's own agent (or patch-mode rollout) sees, as ``text`` and as
chat ``messages``; the reward is 0.0 before the end and the grader's ``Reward.value`` at
the end, ``None`` when masked (the sandbox or the grader failed: drop the episode, never
score it 0). The final observation carries ``stop_reason``, ``truncated`` and ``verdict``
(resolved, tests passed, hack flags). A step after the end, or before ``reset``, is an
error the client raises with the session's message. Closing the connection closes the
session and removes its fork (OpenEnv's server calls ``close``).

What OpenEnv's server adds (capacity, idle reaping, ``/health``, ``/schema``) is its own;
this module adds no authentication: bind it to loopback or put it behind one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openenv.core import EnvClient
from openenv.core.client_types import StepResult
from openenv.core.env_server import Action, Environment, Observation, State, create_app
from pydantic import Field

from codemill.core.config import Settings
from codemill.core.records import EnvSpec, TaskSpec
from codemill.rollouts.session import SessionConfig, SessionMode, open_session

ENV_NAME = "codemill"
# The verdict without what names the attempt or times it (as in ``codemill.interop.gym``).
_ATTEMPT_FIELDS = {"reward_id", "rollout_id", "grading_seconds"}


class TaskAction(Action):
    """The policy's reply: text actions in agent mode, the edit in patch mode."""

    text: str = Field(..., description="The policy's reply, read as codemill's agent reads it")


class TaskObservation(Observation):
    """What the environment answered; ``reward`` and ``done`` are OpenEnv's own fields."""

    text: str = Field("", description="The messages' contents, one after another")
    messages: list[dict[str, str]] = Field(
        default_factory=list, description="The same as chat messages (role, content)")
    stop_reason: str | None = Field(None, description="Why the episode ended (at the end)")
    truncated: bool = Field(False, description="Ended by a step or time limit")
    verdict: dict[str, Any] = Field(default_factory=dict,
                                    description="The grader's verdict (at the end)")


class TaskState(State):
    """``episode_id`` is the episode's rollout id."""

    task_id: str = ""
    mode: str = "agent"
    done: bool = False


class TaskEnvironment(Environment[TaskAction, TaskObservation, TaskState]):
    """OpenEnv's ``Environment`` over one codemill session (see the module docstring)."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # each instance has its own session and fork

    def __init__(self, task: TaskSpec, env: EnvSpec, home: Path, settings: Settings,
                 mode: SessionMode = "agent", config: SessionConfig | None = None) -> None:
        super().__init__()
        self.session = open_session(task, env, home, settings, mode, config=config)

    def reset(self, seed: int | None = None, episode_id: str | None = None,
              **kwargs: Any) -> TaskObservation:
        """A new episode; ``seed`` and ``episode_id`` are accepted and unused (the task is
        deterministic; the episode's id is its rollout id, in ``state``)."""
        return _observation(self.session.reset().messages, done=False, reward=None)

    def step(self, action: TaskAction, timeout_s: float | None = None,
             **kwargs: Any) -> TaskObservation:
        """One action; ``timeout_s`` is not used: the session's config bounds commands."""
        obs, done = self.session.step(action.text)
        if not done:
            return _observation(obs.messages, done=False, reward=0.0)
        reward = self.session.grade()
        return _observation(
            obs.messages, done=True, reward=reward.value,
            stop_reason=str(self.session.stop_reason), truncated=self.session.truncated,
            verdict=reward.model_dump(mode="json", exclude=_ATTEMPT_FIELDS))

    @property
    def state(self) -> TaskState:
        s = self.session
        return TaskState(episode_id=s.rollout_id, step_count=s.step_count,
                         task_id=s.task.task_id, mode=s.mode, done=s.done)

    def close(self) -> None:
        self.session.close()


def _observation(messages: Any, *, done: bool, reward: float | None,
                 **extra: Any) -> TaskObservation:
    return TaskObservation(text="\n\n".join(m.content for m in messages),
                           messages=[{"role": m.role, "content": m.content} for m in messages],
                           done=done, reward=reward, **extra)


def task_app(task: TaskSpec, env: EnvSpec, home: Path, settings: Settings,
             mode: SessionMode = "agent", config: SessionConfig | None = None, *,
             max_sessions: int = 4) -> Any:
    """OpenEnv's FastAPI app serving sessions over ``task``, at most ``max_sessions``
    connections at once (each its own fork)."""
    def factory() -> TaskEnvironment:
        return TaskEnvironment(task, env, home, settings, mode, config)

    return create_app(factory, TaskAction, TaskObservation, env_name=ENV_NAME,
                      max_concurrent_envs=max_sessions)


class TaskClient(EnvClient[TaskAction, TaskObservation, TaskState]):
    """OpenEnv's WebSocket client for ``task_app`` (async; ``.sync()`` for a blocking one)."""

    def _step_payload(self, action: TaskAction) -> dict[str, Any]:
        return {"text": action.text}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[TaskObservation]:
        obs = TaskObservation(**payload.get("observation", {}), done=payload.get("done", False),
                              reward=payload.get("reward"))
        return StepResult(observation=obs, reward=obs.reward, done=obs.done)

    def _parse_state(self, payload: dict[str, Any]) -> TaskState:
        return TaskState(**payload)
