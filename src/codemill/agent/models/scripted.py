"""A deterministic model backend: replays a list of replies or asks a Python policy.

Shipped as package code (not a test double) so tests, benchmarks and red-team agents run the
real loop, tools and sandbox with a known policy. A reply may be a string (assistant text,
read through the text action format), a ``Message`` (possibly with ``tool_calls``), a
``ModelReply``, or a dict in the OpenAI message shape. A policy is a callable
``(messages, tools) -> reply``; it sees exactly what a model would.

Token counts are whitespace-separated words: deterministic, not a real tokenizer's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codemill.agent.models.chat import message_from_openai
from codemill.core.errors import ModelError
from codemill.core.records import Message, ModelReply, SamplingConfig

ScriptReply = str | Message | ModelReply | Mapping[str, Any]
Policy = Callable[[Sequence[Message], Sequence[Mapping[str, object]] | None], ScriptReply]


def _to_reply(item: ScriptReply, messages: Sequence[Message]) -> ModelReply:
    if isinstance(item, ModelReply):
        return item
    if isinstance(item, str):
        msg = Message(role="assistant", content=item)
    elif isinstance(item, Message):
        msg = item
    else:
        msg = message_from_openai(item)
    words = len(msg.content.split()) + sum(len(json.dumps(c.arguments).split())
                                           for c in msg.tool_calls)
    prompt = sum(len(m.content.split()) for m in messages)
    return ModelReply(message=msg, prompt_tokens=prompt, completion_tokens=words,
                      finish_reason="tool_calls" if msg.tool_calls else "stop")


class ScriptedBackend:
    """Replays ``script`` in order (raising ``ModelError`` when it runs out), or calls
    ``script`` as a policy on every turn. Thread-safe; ``calls`` counts completions."""

    def __init__(self, script: Sequence[ScriptReply] | Policy, *, name: str = "scripted",
                 supports_tools: bool = False) -> None:
        self.name = name
        self.supports_tools = supports_tools
        self._script = script
        self._lock = threading.Lock()
        self.calls = 0

    def complete(self, messages: Sequence[Message], *,
                 tools: Sequence[Mapping[str, object]] | None = None,
                 sampling: SamplingConfig | None = None) -> ModelReply:
        with self._lock:
            index = self.calls
            self.calls += 1
        if callable(self._script):
            return _to_reply(self._script(messages, tools), messages)
        if index >= len(self._script):
            raise ModelError(f"scripted model {self.name!r} has no reply left "
                             f"(script of {len(self._script)})")
        return _to_reply(self._script[index], messages)

    @classmethod
    def from_spec(cls, spec: str) -> ScriptedBackend:
        """``NAME`` of a built-in policy, or a JSON file holding a list of replies."""
        if spec in POLICIES:
            return cls(POLICIES[spec], name=f"scripted:{spec}")
        path = Path(spec)
        try:
            replies = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            known = ", ".join(sorted(POLICIES))
            raise ModelError(f"scripted model {spec!r}: not a built-in policy ({known}) "
                             f"nor a readable JSON list of replies: {exc}") from None
        if not isinstance(replies, list):
            raise ModelError(f"{path}: expected a JSON list of replies")
        return cls(replies, name=f"scripted:{path.name}",
                   supports_tools=any(isinstance(r, dict) and r.get("tool_calls")
                                      for r in replies))


def _submit(messages: Sequence[Message], tools: object) -> str:
    return '<tool name="submit"></tool>'


def _look_then_submit(messages: Sequence[Message], tools: object) -> str:
    turns = sum(1 for m in messages if m.role == "assistant")
    if turns == 0:
        return "Let me look around.\n```bash\nls\n```"
    if turns == 1:
        return '<tool name="run_tests"></tool>'
    return '<tool name="submit"></tool>'


def _echo(messages: Sequence[Message], tools: object) -> str:
    """Answers with the last user message; handy behind ``codemill model serve``."""
    last = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return last


POLICIES: dict[str, Policy] = {
    "submit": _submit,
    "look-then-submit": _look_then_submit,
    "echo": _echo,
}
"""Built-in policies, by name, for ``scripted:NAME`` specs."""
