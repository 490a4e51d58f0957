"""Bring your own agent: mini-swe-agent's ``DefaultAgent`` on a codemill task, in its sandbox.

    from minisweagent.models.test_models import DeterministicModel
    episode = run_episode(task, env, home, settings, model)   # any mini-swe-agent Model
    episode.reward.value, episode.trajectory.diff, episode.exit_status

``SessionEnvironment`` is a mini-swe-agent ``Environment`` whose ``execute`` runs the
agent's shell command as one step of a codemill session (``codemill.rollouts.session``):
the command goes to the session's bash tool, so it runs in the episode's copy-on-write
sandbox fork and nowhere else, under the session's limits; a sandbox failure ends the
episode as it would a rollout. mini-swe-agent's own submit convention (a command whose
output starts with ``COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT``) ends the agent's run, as in
its ``LocalEnvironment``.

``run_episode`` runs one ``DefaultAgent`` episode with the package's text-action templates
(``mini_textbased.yaml``), takes the fork's final diff (not the agent's printed
submission), grades it with ``runner.reward_for`` (the rollout runner's grading, masked for
an infrastructure stop) and returns the episode as a codemill ``Trajectory`` whose steps
are mini-swe-agent's messages: a text trajectory, never token-exact (the agent talks to
its model through litellm). ``served_model`` is mini-swe-agent's text-action litellm model
over an OpenAI-compatible endpoint (``codemill model serve``, vLLM, SGLang, ...);
``model_from_spec`` gives it any codemill model spec, serving a local one on loopback with
codemill's model server for the episode.

Not here: writing rows (``codemill.factory.mini_swe_agent`` records an episode through the
one rollout-row writer) and mini-swe-agent's Docker or local environments, which would run
the agent's commands outside codemill's sandbox.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codemill.agent.config import AgentConfig
from codemill.core.boundary import boundary
from codemill.core.config import Settings
from codemill.core.ids import content_id
from codemill.core.records import (
    EnvSpec,
    Message,
    ModelReply,
    Reward,
    Step,
    StopReason,
    TaskSpec,
    ToolCall,
    Trajectory,
)
from codemill.rewards.config import GraderConfig
from codemill.rollouts.runner import reward_for
from codemill.rollouts.session import Session, SessionConfig, open_session

# mini-swe-agent prints a banner at import unless told not to; a library prints nothing.
os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")

import yaml  # noqa: E402  (mini-swe-agent's own dependency, for its shipped config)
from minisweagent import package_dir  # noqa: E402
from minisweagent.agents.default import DefaultAgent  # noqa: E402
from minisweagent.exceptions import InterruptAgentFlow, Submitted  # noqa: E402

SUBMIT_SENTINEL = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
"""mini-swe-agent's submit convention: a command whose output's first line is this."""
_SUBMIT = '<tool name="submit"></tool>'
_STATUS = re.compile(r"\n?\[(?:exit code (?P<code>-?\d+)|(?P<other>timed out after [^\]\n]*"
                     r"|the command could not be started))\]\s*\Z")
_STOPS = {"Submitted": StopReason.SUBMITTED, "LimitsExceeded": StopReason.MAX_TURNS,
          "TimeExceeded": StopReason.WALL_TIME, "RepeatedFormatError": StopReason.FORMAT_ERROR}
"""mini-swe-agent's exit statuses and the codemill stop each is."""
__all__ = ["MiniConfig", "MiniEpisode", "SessionEnvironment", "model_from_spec", "run_episode",
           "served_model"]


def package_config() -> dict[str, Any]:
    """mini-swe-agent's shipped text-action config (``agent``, ``environment``, ``model``)."""
    return yaml.safe_load((Path(package_dir) / "config" / "mini_textbased.yaml").read_text())


class MiniConfig(BaseModel):
    """How one mini-swe-agent episode runs in a codemill task session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step_limit: int = Field(30, ge=1)
    """Model calls at most (mini-swe-agent's ``step_limit``)."""
    wall_time_s: int = Field(1800, ge=1)
    """Seconds the episode may take (mini-swe-agent's ``wall_time_limit_seconds``; the
    session's own limit is set just above it)."""
    command_timeout_s: float = Field(60.0, gt=0)
    """Each command's timeout in the sandbox; a command cut by it gets returncode -1."""
    agent: dict[str, Any] = Field(default_factory=dict)
    """``DefaultAgent`` settings over the package's ``mini_textbased.yaml`` agent section
    (``system_template``, ``instance_template``, ``max_consecutive_format_errors`` ...)."""
    grader: GraderConfig = GraderConfig()
    backend: str | None = None
    """Sandbox backend; default ``settings.sandbox.backend``."""

    def session_config(self, policy: str) -> SessionConfig:
        """The session under the agent: mini-swe-agent's limits bind first (one session
        step per command, plus the step that closes the episode)."""
        env = package_config().get("environment", {}).get("env", {})
        agent = AgentConfig(
            max_turns=self.step_limit + 1, wall_time_s=self.wall_time_s + 60,
            command_timeout_s=self.command_timeout_s, max_format_errors=self.step_limit + 1,
            command_env=(("PYTHONDONTWRITEBYTECODE", "1"),
                         *((str(k), str(v)) for k, v in env.items())))
        return SessionConfig(agent=agent, grader=self.grader, backend=self.backend,
                             policy=policy)


class SessionEnvironment:
    """A mini-swe-agent ``Environment`` over a running codemill session (``reset`` done):
    ``execute({"command": ...})`` runs the command in the session's sandbox fork and
    answers ``{"output", "returncode", "exception_info"}`` like ``LocalEnvironment``
    (stdout then stderr in ``output``). Raises mini-swe-agent's ``Submitted`` on its submit
    convention, and an exit (``InterruptAgentFlow``) when the session's episode ends under
    the agent (a sandbox failure, the session's limits)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.config = {"session": session.rollout_id, "task_id": session.task.task_id}

    def execute(self, action: dict[str, Any] | str, cwd: str = "",
                *, timeout: int | None = None) -> dict[str, Any]:
        """Run one command; ``timeout`` is ignored (the session's per-command timeout
        holds); ``cwd`` is relative to the repository or absolute inside the sandbox."""
        command = action.get("command", "") if isinstance(action, dict) else str(action)
        if cwd:
            command = f"cd {shlex.quote(cwd)} && {command}"
        obs, done = self.session.step(bash_action(command))
        output = exec_output(obs.messages[0].content if obs.messages else "")
        if done:
            stop = self.session.stop_reason or StopReason.SANDBOX_ERROR
            raise InterruptAgentFlow({"role": "exit", "content": obs.text,
                                      "extra": {"exit_status": stop.value, "submission": ""}})
        lines = output["output"].lstrip().splitlines(keepends=True)
        if lines and lines[0].strip() == SUBMIT_SENTINEL and output["returncode"] == 0:
            submission = "".join(lines[1:])
            raise Submitted({"role": "exit", "content": submission,
                             "extra": {"exit_status": "Submitted", "submission": submission}})
        return output

    def get_template_vars(self, **kwargs: Any) -> dict[str, Any]:
        # The sandbox shares the host's kernel, so uname is true inside it; the host's
        # environment variables are not the sandbox's and are left out.
        return {**platform.uname()._asdict(), "cwd": "", **kwargs}

    def serialize(self) -> dict[str, Any]:
        return {"info": {"config": {"environment": self.config,
                                    "environment_type": f"{__name__}.SessionEnvironment"}}}


def bash_action(command: str) -> str:
    """``command`` as the session's bash action. JSON in a tool tag survives any command
    text (fences, tags): ``</`` is written ``<\\/``, which JSON reads back as ``</``."""
    args = json.dumps({"command": command}).replace("</", "<\\/")
    return f'<tool name="bash">{args}</tool>'


def exec_output(text: str) -> dict[str, Any]:
    """The bash tool's observation (``bash output:`` + output + status line, as
    ``codemill.agent.tools.format_exec`` writes it) as mini-swe-agent's output dict."""
    head, _, body = text.partition("\n")
    if not head.endswith(" output:"):  # not a tool output: the session's own message
        return {"output": text, "returncode": -1, "exception_info": text}
    status = _STATUS.search(body)
    if status is None:  # a tool usage error: no command ran
        return {"output": body, "returncode": -1, "exception_info": body}
    output = body[:status.start()]
    output = output + "\n" if output else output
    if status.group("code") is not None:
        return {"output": output, "returncode": int(status.group("code")),
                "exception_info": ""}
    return {"output": output, "returncode": -1,
            "exception_info": f"the command {status.group('other')}"}


@dataclass(frozen=True)
class MiniEpisode:
    """One finished episode: codemill's trajectory and reward, and mini-swe-agent's own
    record of it (``DefaultAgent.serialize()``: its messages, config and exit status)."""

    trajectory: Trajectory
    reward: Reward
    exit_status: str
    record: dict[str, Any] = field(default_factory=dict)


def run_episode(task: TaskSpec, env: EnvSpec, home: Path, settings: Settings, model: Any,
                *, config: MiniConfig | None = None, policy: str | None = None) -> MiniEpisode:
    """Run mini-swe-agent with ``model`` (any mini-swe-agent ``Model``) on ``task`` in a
    fresh fork of its workspace and grade the fork's final diff. A failure of the model
    or the agent is a masked reward (``model_error``), a sandbox failure one with
    ``sandbox_error``; neither raises. ``policy`` (the name on the rows) defaults to
    ``mini-swe-agent/<model_name>``. Raises ``SessionError``/``SandboxError`` only when the
    session cannot open."""
    config = config or MiniConfig()
    name = getattr(getattr(model, "config", None), "model_name", type(model).__name__)
    policy = policy or f"mini-swe-agent/{name}"
    kwargs = {**package_config()["agent"], "step_limit": config.step_limit,
              "wall_time_limit_seconds": config.wall_time_s, "cost_limit": 0.0,
              **config.agent}
    with open_session(task, env, home, settings, "agent",
                      config=config.session_config(policy)) as session:
        session.reset()
        started = time.monotonic()
        agent = DefaultAgent(model, SessionEnvironment(session), **kwargs)
        with boundary("model", "mini-swe-agent episode") as seam:
            agent.run(task.problem_statement)
        if not session.done:  # mini-swe-agent stopped the run: close the episode
            session.step(_SUBMIT)
        closed = session.trajectory
        assert closed is not None  # a done session has its trajectory
        record = agent.serialize()
    exit_status = str(record["info"].get("exit_status") or "")
    stop, error = _stop(exit_status, closed, seam.message if seam.failed else None)
    traj = Trajectory(
        rollout_id=content_id("mini-swe-agent", task.task_id, policy, closed.rollout_id),
        task_id=task.task_id, policy=policy, system_prompt=_text(agent.messages[0]),
        task_prompt=_text(agent.messages[1]), steps=steps_of(agent.messages[2:]),
        stop_reason=stop, diff=closed.diff, wall_seconds=time.monotonic() - started,
        error=error)
    reward = reward_for(task, env, traj, home=Path(home), settings=settings,
                        grader=config.grader, backend=config.backend)
    return MiniEpisode(trajectory=traj, reward=reward, exit_status=exit_status, record=record)


def _stop(exit_status: str, closed: Trajectory, failure: str | None
          ) -> tuple[StopReason, str | None]:
    """The episode's stop: the sandbox's failure first (the diff is partial), then the
    agent's failure, then mini-swe-agent's exit status."""
    if closed.stop_reason == StopReason.SANDBOX_ERROR:
        return StopReason.SANDBOX_ERROR, closed.error
    if failure is not None:
        return StopReason.MODEL_ERROR, failure
    if exit_status in _STOPS:
        return _STOPS[exit_status], None
    try:  # an exit the session raised: its own stop reason
        return StopReason(exit_status), None
    except ValueError:
        return StopReason.MODEL_ERROR, f"mini-swe-agent exit status {exit_status!r}"


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # multimodal parts: keep the text
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    calls = []
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {"_raw": fn.get("arguments")}
        calls.append(ToolCall(id=str(call.get("id") or f"call_{i}"),
                              name=str(fn.get("name") or "?"),
                              arguments=args if isinstance(args, dict) else {"_raw": args}))
    return tuple(calls)


def steps_of(messages: list[dict[str, Any]]) -> tuple[Step, ...]:
    """mini-swe-agent's messages after the first two as codemill steps: each model reply
    (an assistant message, or the text of a reply its parser rejected) with the messages
    that answered it; the final ``exit`` message is not a step."""
    steps: list[tuple[Message, list[Message]]] = []
    for m in messages:
        role, extra = m.get("role"), m.get("extra") or {}
        if role == "exit":
            continue
        if role == "assistant":
            steps.append((Message(role="assistant", content=_text(m),
                                  tool_calls=_tool_calls(m)), []))
            continue
        if extra.get("interrupt_type") == "FormatError" or not steps:
            reply = str(extra.get("model_response") or "")
            steps.append((Message(role="assistant", content=reply), []))
        steps[-1][1].append(Message(role="tool" if role == "tool" else "user",
                                    content=_text(m), tool_call_id=m.get("tool_call_id")))
    return tuple(Step(index=i, reply=ModelReply(message=reply), observations=tuple(obs))
                 for i, (reply, obs) in enumerate(steps))


def served_model(base_url: str, model: str = "codemill", *, temperature: float = 0.0,
                 max_tokens: int = 1024) -> Any:
    """mini-swe-agent's text-action litellm model (``LitellmTextbasedModel``) talking to
    the OpenAI-compatible endpoint at ``base_url`` (``.../v1``), with the package's
    observation and format-error templates; cost is not tracked (a local model has none)."""
    # litellm fetches a price list from the network when imported unless told not to
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from minisweagent.models.litellm_textbased_model import LitellmTextbasedModel

    # litellm prints a provider list to stdout when its cost lookup meets a model it does
    # not know (every local one); stdout belongs to the caller (``--json``)
    litellm.suppress_debug_info = True
    templates = package_config()["model"]
    return LitellmTextbasedModel(
        model_name=f"openai/{model}", cost_tracking="ignore_errors",
        model_kwargs={"api_base": base_url, "api_key": "codemill", "temperature": temperature,
                      "max_tokens": max_tokens, "drop_params": True},
        observation_template=templates["observation_template"],
        format_error_template=templates["format_error_template"])


@contextmanager
def model_from_spec(spec: str, home: Path | None = None, *, temperature: float = 0.0,
                    max_tokens: int = 1024) -> Iterator[Any]:
    """mini-swe-agent's model for a codemill model spec: ``openai:MODEL@URL`` is called
    at ``URL``; any other spec (``smollm2``, ``transformers:PATH``, ``ckpt:ID``,
    ``scripted:PATH``) is loaded here and served by ``codemill.agent.serve.ModelServer``
    on a free loopback port until the block ends."""
    from codemill.agent.models import make_backend
    from codemill.agent.serve import ModelServer

    kind, _, rest = spec.strip().partition(":")
    if kind == "openai" and "@" in rest:
        name, _, url = rest.partition("@")
        yield served_model(url, name, temperature=temperature, max_tokens=max_tokens)
        return
    backend = make_backend(spec, home=home)
    server = ModelServer(backend, port=0)
    server.start()
    try:
        yield served_model(server.url, backend.name, temperature=temperature,
                           max_tokens=max_tokens)
    finally:
        server.shutdown()
        server.server_close()
