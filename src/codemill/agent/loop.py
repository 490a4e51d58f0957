"""The agent loop: a model, a sandbox and tools, until the model submits or a budget ends.

Each turn: check the budgets (turns, completion tokens, wall time), ask the model, read its
actions (native ``tool_calls``, else the text format of ``codemill.agent.actions``), run them
in the sandbox, and send back what they answered. Every stop has a ``StopReason``; a failing
model or sandbox is a recorded stop with ``Trajectory.error``, never an exception for the
caller. The final diff is ``sandbox.diff()``. The same loop serves a user (``codemill
solve``) and RL rollouts; it imports only ``codemill.core``, so it cannot reach the grader.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from codemill.agent.actions import PARSE_ERROR, parse_actions
from codemill.agent.config import AgentConfig
from codemill.agent.prompts import FORMAT_REMINDER, system_prompt
from codemill.agent.tokens import token_trace
from codemill.agent.tools import Tool, ToolContext, ToolOutput, ToolUsageError, default_tools, trim
from codemill.core.boundary import boundary
from codemill.core.protocols import ModelBackend, Sandbox
from codemill.core.records import Message, SamplingConfig, Step, StopReason, ToolCall, Trajectory

__all__ = ["Agent", "AgentConfig"]

TURN_SEED_STRIDE = 1_000_003
"""Turn t of sample i samples with seed + i + t * stride (a prime far above any group size),
so no two calls of a rollout group share a seed."""


class Agent:
    """``Agent(model, config).run(sandbox, task_prompt, rollout_id=...) -> Trajectory``."""

    def __init__(self, model: ModelBackend, config: AgentConfig | None = None,
                 tools: Sequence[Tool] | None = None) -> None:
        self.model = model
        self.config = config or AgentConfig()
        self.tools = {t.name: t for t in (tools or default_tools())}
        mode = self.config.native_tools
        self.native = mode == "on" or (mode == "auto" and
                                      bool(getattr(model, "supports_tools", False)))
        self.system_prompt = system_prompt(self.config.system_template, list(self.tools.values()),
                                           native=self.native, workdir=self.config.workdir)

    def run(self, sandbox: Sandbox, task_prompt: str, *, rollout_id: str, task_id: str = "",
            policy: str = "", sample_index: int = 0) -> Trajectory:
        cfg, start = self.config, time.monotonic()
        schemas = [t.schema() for t in self.tools.values()] if self.native else None
        messages = [Message(role="system", content=self.system_prompt),
                    Message(role="user", content=task_prompt)]
        steps: list[Step] = []
        tokens = format_errors = 0
        stop: StopReason | None = None
        error: str | None = None
        while stop is None:
            stop = self._budget_stop(len(steps), tokens, time.monotonic() - start)
            if stop is not None:
                break
            t0 = time.monotonic()
            with boundary("model", f"turn {len(steps)}") as seam:
                sampling = self._sampling(tokens, sample_index, len(steps))
                reply = self.model.complete(messages, tools=schemas, sampling=sampling)
            if seam.failed:
                stop, error = StopReason.MODEL_ERROR, seam.message
                break
            model_s = time.monotonic() - t0
            if not reply.latency_s:
                reply = reply.model_copy(update={"latency_s": model_s})
            tokens += reply.completion_tokens
            native = bool(reply.message.tool_calls)
            calls = list(reply.message.tool_calls) or parse_actions(
                reply.message.content, id_prefix=f"call_{len(steps)}")
            observations: list[Message] = []
            ctx = ToolContext(sandbox, cfg, max(1.0, min(
                cfg.command_timeout_s, cfg.wall_time_s - (time.monotonic() - start))))
            with boundary("sandbox", f"turn {len(steps)}") as seam:
                tool_s, command_s, submitted = self.act(ctx, calls, native, observations)
            usable = any(PARSE_ERROR not in c.arguments for c in calls)
            format_errors = 0 if usable else format_errors + 1
            if not calls:
                observations.append(Message(role="user", content=FORMAT_REMINDER))
            if seam.failed:  # the partial sums died with the exception: count it all as tools
                tool_s, command_s, submitted = time.monotonic() - t0 - model_s, 0.0, False
            steps.append(Step(
                index=len(steps), reply=reply, observations=tuple(observations),
                tool_seconds=tool_s,
                harness_seconds=max(0.0, time.monotonic() - t0 - model_s - command_s)))
            messages += [reply.message.model_copy(update={"role": "assistant"}), *observations]
            if seam.failed:
                stop, error = StopReason.SANDBOX_ERROR, seam.message
            elif submitted:
                stop = StopReason.SUBMITTED
            elif format_errors >= cfg.max_format_errors:
                stop = StopReason.FORMAT_ERROR
        diff = ""
        with boundary("sandbox", "diff") as seam:
            diff = sandbox.diff()
        if seam.failed and error is None:
            stop, error = StopReason.SANDBOX_ERROR, seam.message
        trace = None
        with boundary("model", "token trace") as seam:
            trace = token_trace(steps, cfg.sampling)
        if seam.failed and error is None:  # not token-exact: unusable for training
            stop, error = StopReason.MODEL_ERROR, seam.message
        return Trajectory(
            rollout_id=rollout_id, task_id=task_id, policy=policy or self.model.name,
            sample_index=sample_index, system_prompt=self.system_prompt, task_prompt=task_prompt,
            steps=tuple(steps), stop_reason=stop, diff=diff,
            wall_seconds=time.monotonic() - start, error=error, tokens=trace)

    def _budget_stop(self, turns: int, tokens: int, elapsed: float) -> StopReason | None:
        cfg = self.config
        if turns >= cfg.max_turns:
            return StopReason.MAX_TURNS
        if tokens >= cfg.max_tokens:
            return StopReason.MAX_TOKENS
        if elapsed >= cfg.wall_time_s:
            return StopReason.WALL_TIME
        return None

    def _sampling(self, tokens: int, sample_index: int, turn: int) -> SamplingConfig:
        """The sampling of one model call. Each (sample, turn) gets its own seed: with one
        seed for every turn, a retry after a format error draws the same random numbers
        over an almost unchanged prompt and a small model repeats its reply word for word."""
        s = self.config.sampling
        return s.model_copy(update={
            "max_tokens": min(s.max_tokens, self.config.max_tokens - tokens),
            "seed": None if s.seed is None else s.seed + sample_index + TURN_SEED_STRIDE * turn,
        })

    def act(self, ctx: ToolContext, calls: Sequence[ToolCall], native: bool,
             observations: list[Message]) -> tuple[float, float, bool]:
        """Run ``calls`` in order until one submits, appending an observation for each;
        return (seconds inside tools, the commands' own seconds, submitted). Public so an
        environment session (``codemill.rollouts.session``) acts exactly as a rollout."""
        tool_s = command_s = 0.0
        for call in calls:
            t0 = time.monotonic()
            out = self._call(ctx, call)
            tool_s += time.monotonic() - t0
            command_s += out.command_seconds
            text = trim(out.text, self.config.observation_limit)
            observations.append(_observation(call, text, native))
            if out.submitted:
                return tool_s, command_s, True
        return tool_s, command_s, False

    def _call(self, ctx: ToolContext, call: ToolCall) -> ToolOutput:
        """Run one call; the model's mistakes become the observation."""
        tool = self.tools.get(call.name)
        if PARSE_ERROR in call.arguments:
            return ToolOutput(f"error: cannot read the arguments of {call.name}: "
                              f"{call.arguments[PARSE_ERROR]}")
        if tool is None:
            return ToolOutput(f"error: unknown tool {call.name!r}; tools: "
                              + ", ".join(self.tools))
        try:
            return tool(ctx, call.arguments)
        except ToolUsageError as exc:
            return ToolOutput(f"error: {exc}")


def _observation(call: ToolCall, text: str, native: bool) -> Message:
    """A native call is answered by a ``tool`` message; a text action by a user turn."""
    if native:
        return Message(role="tool", content=text, tool_call_id=call.id, name=call.name)
    return Message(role="user", content=f"{call.name} output:\n{text}")
