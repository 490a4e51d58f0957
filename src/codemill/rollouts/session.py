"""One environment session over a task: what others' trainers and agents drive.

    session = open_session(task, env, home, settings, mode="agent")
    obs = session.reset()                      # system prompt (tools, action format) + task
    while True:
        obs, done = session.step(policy(obs.messages))
        if done:
            break
    reward = session.grade()                   # the grader's Reward of the final diff
    session.close()

The observations are exactly what codemill's own agent or patch-mode rollout sees:

- **agent mode**: ``reset`` gives the agent's system prompt (tool list and text action format,
  ``codemill.agent.prompts``) and the problem statement. ``step(text)`` reads the text with
  the agent's action parser and runs the actions with the agent's own tools in this
  episode's sandbox fork; a reply with no action gets the agent's format reminder. A
  ``submit`` action ends the episode, as do the agent config's limits (``max_turns`` steps,
  ``wall_time_s`` seconds from ``reset``, ``max_format_errors`` replies in a row without a
  usable action) and a sandbox failure (a masked reward, as in a rollout).
- **patch mode**: ``reset`` gives the patch-mode prompt (``codemill.rollouts.patch_mode``:
  problem, failing output, numbered listing, answer format); ``step(text)`` reads the one
  answer into a diff and ends the episode.

Each ``reset`` opens a copy-on-write fork of the task's packaged workspace (the same layer
``runner.run_one`` forks: hidden tests removed, one commit), released when the episode ends
or the session closes. ``grade`` is ``runner.reward_for`` on the episode's trajectory, so a
session's reward is the rollout runner's for the same diff and actions. Sessions are
independent: run them in threads, each step of one session is serialized by its lock.

Not here: tokens (a session sees text; token-exact trajectories come from codemill's own
samplers), model calls, and writing rows (the caller's job, through ``codemill.factory``).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from codemill.agent.actions import PARSE_ERROR, parse_actions
from codemill.agent.config import AgentConfig
from codemill.agent.loop import Agent
from codemill.agent.models.scripted import ScriptedBackend
from codemill.agent.prompts import FORMAT_REMINDER
from codemill.agent.tools import ToolContext
from codemill.core.boundary import boundary
from codemill.core.config import Settings
from codemill.core.errors import SessionError
from codemill.core.ids import content_id
from codemill.core.records import (
    EnvSpec,
    Message,
    ModelReply,
    Reward,
    Step,
    StopReason,
    TaskSpec,
    Trajectory,
)
from codemill.envs import installs
from codemill.rewards.config import GraderConfig
from codemill.rollouts.patch_mode import ASK, AnswerFormat, patch_messages, run_patch
from codemill.rollouts.runner import prepare_patch_contexts, prepare_workspaces, reward_for
from codemill.sandbox.api import open_sandbox

SessionMode = Literal["agent", "patch"]
TRUNCATIONS = frozenset({StopReason.MAX_TURNS, StopReason.WALL_TIME, StopReason.MAX_TOKENS})
"""Stops by a limit of the session rather than by the policy (Gymnasium's ``truncated``)."""
__all__ = ["Observation", "Session", "SessionConfig", "SessionError", "SessionMode", "open_session"]


class SessionConfig(BaseModel):
    """How a session's episodes are bounded and graded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: AgentConfig = AgentConfig()
    """Agent mode: the tools' settings and the episode's limits (``max_turns`` steps,
    ``wall_time_s`` from ``reset``, ``command_timeout_s`` per command,
    ``max_format_errors``). Actions are always read in the text format."""
    grader: GraderConfig = GraderConfig()
    answer_format: AnswerFormat = "lines"
    """Patch mode: the answer format the prompt asks for."""
    backend: str | None = None
    """Sandbox backend; default ``settings.sandbox.backend``."""
    policy: str = "session"
    """Name recorded as the policy of the episodes' trajectories and rewards."""


@dataclass(frozen=True)
class Observation:
    """What the environment says: on ``reset`` the system and user messages, after a step
    the messages that answer it (one per action, or the format reminder)."""

    messages: tuple[Message, ...]

    @property
    def text(self) -> str:
        """The messages' contents, one after another (for text-only interfaces)."""
        return "\n\n".join(m.content for m in self.messages)


class Session:
    """An environment over one task; see the module docstring. Build with ``open_session``."""

    def __init__(self, task: TaskSpec, env: EnvSpec, home: Path, settings: Settings,
                 mode: SessionMode, config: SessionConfig, layer: Path | None,
                 context: Any = None) -> None:
        self.task, self.env, self.home, self.settings = task, env, Path(home), settings
        self.mode, self.config = mode, config
        self._layer, self._context = layer, context
        agent_cfg = config.agent.model_copy(update={"native_tools": "off"})
        # The agent's own tools, prompt and action handling; its model is never called.
        self._agent = Agent(ScriptedBackend([], name=config.policy), agent_cfg)
        self._nonce = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._episodes = 0
        self._fork: Any = None
        self._closed = False
        self._begin_episode()

    # --- the episode ------------------------------------------------------------------

    def _begin_episode(self) -> None:
        self.rollout_id = content_id("session", self.task.task_id, self.mode, self._nonce,
                                     self._episodes)
        self._prompt: list[Message] = []
        self._steps: list[Step] = []
        self._format_errors = 0
        self._stop: StopReason | None = None
        self._error: str | None = None
        self._trajectory: Trajectory | None = None
        self._reward: Reward | None = None
        self._started: float | None = None  # set once the episode's fork is open

    @property
    def done(self) -> bool:
        return self._stop is not None

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the episode ended (None while it runs)."""
        return self._stop

    @property
    def truncated(self) -> bool:
        """Whether the episode was cut by a limit rather than ended by the policy."""
        return self._stop in TRUNCATIONS

    @property
    def step_count(self) -> int:
        """Steps taken in the current episode."""
        if self.mode == "patch":  # its one step is in run_patch's trajectory
            return 0 if self._trajectory is None else len(self._trajectory.steps)
        return len(self._steps)

    @property
    def fork(self) -> Any:
        """The episode's open sandbox fork (None in patch mode or once released)."""
        return self._fork

    @property
    def trajectory(self) -> Trajectory | None:
        """The finished episode's trajectory (None while it runs)."""
        return self._trajectory

    def reset(self) -> Observation:
        """Start a new episode (a fresh fork in agent mode) and return its first messages.
        Raises ``SandboxError`` when the fork cannot open (no episode runs then)."""
        with self._lock:
            self._check_open()
            self._release()
            self._episodes += 1
            self._begin_episode()
            if self.mode == "patch":
                self._prompt = patch_messages(self.task.problem_statement, self._context,
                                              self.config.answer_format)
            else:
                spec = installs.sandbox_spec(self.env, self.home, self.settings.sandbox)
                self._fork = open_sandbox(spec.with_top(self._layer), self.home,
                                          backend=self.config.backend)
                self._prompt = [Message(role="system", content=self._agent.system_prompt),
                                Message(role="user", content=self.task.problem_statement)]
            self._started = time.monotonic()
            return Observation(tuple(self._prompt))

    def step(self, action: str) -> tuple[Observation, bool]:
        """Act with ``action`` (the policy's reply text); return the answer and whether the
        episode is over. Raises ``SessionError`` when there is no running episode."""
        with self._lock:
            self._check_open()
            if self._started is None:
                raise SessionError("no episode: call reset() first")
            if self._stop is not None:
                raise SessionError(f"the episode is over ({self._stop}): call grade() for its "
                                   "reward or reset() for a new one")
            if not isinstance(action, str):
                raise SessionError(f"an action is text, got {type(action).__name__}")
            step = self._patch_step if self.mode == "patch" else self._agent_step
            obs = step(action)
            if self._stop is not None:
                self._finish()
            return obs, self._stop is not None

    def _agent_step(self, action: str) -> Observation:
        cfg, started = self._agent.config, self._started or time.monotonic()
        elapsed = time.monotonic() - started
        if elapsed >= cfg.wall_time_s:  # the policy's own time counts, as in the agent loop
            self._stop = StopReason.WALL_TIME
            return Observation((Message(role="user", content=(
                f"time is up: the episode's {cfg.wall_time_s:g} s have passed; "
                "the action was not run")),))
        t0 = time.monotonic()
        index = len(self._steps)
        calls = parse_actions(action, id_prefix=f"call_{index}")
        observations: list[Message] = []
        ctx = ToolContext(self._fork, cfg, max(1.0, min(cfg.command_timeout_s,
                                                        cfg.wall_time_s - elapsed)))
        with boundary("sandbox", f"step {index}") as seam:
            # The agent loop's own handling of a turn's actions (runs them in order until
            # one submits), so an action does here exactly what it does in a rollout.
            tool_s, command_s, submitted = self._agent.act(ctx, calls, False, observations)
        usable = any(PARSE_ERROR not in c.arguments for c in calls)
        self._format_errors = 0 if usable else self._format_errors + 1
        if not calls:
            observations.append(Message(role="user", content=FORMAT_REMINDER))
        if seam.failed:
            tool_s, command_s, submitted = time.monotonic() - t0, 0.0, False
        reply = ModelReply(message=Message(role="assistant", content=action))
        self._steps.append(Step(index=index, reply=reply, observations=tuple(observations),
                                tool_seconds=tool_s,
                                harness_seconds=max(0.0, time.monotonic() - t0 - command_s)))
        if seam.failed:
            self._stop, self._error = StopReason.SANDBOX_ERROR, seam.message
            observations.append(Message(role="user", content=f"error: {seam.message}"))
        elif submitted:
            self._stop = StopReason.SUBMITTED
        elif self._format_errors >= cfg.max_format_errors:
            self._stop = StopReason.FORMAT_ERROR
        elif len(self._steps) >= cfg.max_turns:
            self._stop = StopReason.MAX_TURNS
        elif time.monotonic() - started >= cfg.wall_time_s:
            self._stop = StopReason.WALL_TIME
        return Observation(tuple(observations))

    def _patch_step(self, action: str) -> Observation:
        # run_patch with a one-reply backend: the trajectory is built, and the answer read,
        # exactly as in a patch-mode rollout.
        traj = run_patch(ScriptedBackend([action], name=self.config.policy),
                         self.task.problem_statement, self._context,
                         rollout_id=self.rollout_id, task_id=self.task.task_id,
                         policy=self.config.policy, fmt=self.config.answer_format)
        self._trajectory = traj
        self._stop = traj.stop_reason
        if traj.stop_reason == StopReason.SUBMITTED:
            text = "The answer was read as an edit; the episode is over."
        else:
            text = f"{traj.error}\n{ASK[self.config.answer_format]}"
        return Observation((Message(role="user", content=text),))

    def _finish(self) -> None:
        """Take the final diff, release the fork and keep the trajectory."""
        if self.mode == "patch":
            return  # run_patch made the trajectory
        diff = ""
        with boundary("sandbox", "diff") as seam:
            diff = self._fork.diff()
        if seam.failed and self._error is None:
            self._stop, self._error = StopReason.SANDBOX_ERROR, seam.message
        self._release()
        self._trajectory = Trajectory(
            rollout_id=self.rollout_id, task_id=self.task.task_id, policy=self.config.policy,
            system_prompt=self._prompt[0].content, task_prompt=self._prompt[1].content,
            steps=tuple(self._steps), stop_reason=self._stop or StopReason.SANDBOX_ERROR,
            diff=diff, wall_seconds=time.monotonic() - (self._started or 0.0),
            error=self._error)

    def grade(self) -> Reward:
        """The grader's reward of the finished episode (``runner.reward_for``): masked for a
        sandbox failure, graded otherwise. Computed once per episode."""
        with self._lock:
            if self._trajectory is None:
                raise SessionError("the episode is not over: step until done, then grade()")
            if self._reward is None:
                self._reward = reward_for(self.task, self.env, self._trajectory,
                                          home=self.home, settings=self.settings,
                                          grader=self.config.grader,
                                          backend=self.config.backend)
            return self._reward

    # --- resources --------------------------------------------------------------------

    def _release(self) -> None:
        fork, self._fork = self._fork, None
        if fork is not None:
            fork.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SessionError("the session is closed")

    def close(self) -> None:
        """Release the fork (if an episode is running); later calls but ``close`` raise."""
        with self._lock:
            self._closed = True
            self._release()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(task: TaskSpec, env: EnvSpec, home: Path, settings: Settings,
                 mode: SessionMode = "agent", *, config: SessionConfig | None = None
                 ) -> Session:
    """A session over ``task`` (in ``env``): packages the task's workspace layer (agent
    mode) or builds its patch context (patch mode, one sandboxed run of the failing tests).
    Raises ``SessionError`` when the patch context cannot be built."""
    if mode not in ("agent", "patch"):
        raise SessionError(f"mode must be 'agent' or 'patch', not {mode!r}")
    if task.env_id != env.env_id:
        raise SessionError(f"task {task.task_id[:12]} runs in environment "
                           f"{task.env_id[:12]}, not {env.env_id[:12]}")
    config = config or SessionConfig()
    home = Path(home).absolute()
    envs = {env.env_id: env}
    if mode == "patch":
        context = prepare_patch_contexts([task], envs, home, settings)[task.task_id]
        if context.error:
            raise SessionError(f"task {task.task_id[:12]}: no patch context: {context.error}")
        return Session(task, env, home, settings, mode, config, None, context)
    layer = prepare_workspaces([task], envs, home, settings)[task.task_id]
    return Session(task, env, home, settings, mode, config, layer)
