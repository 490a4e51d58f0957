"""``Message`` <-> OpenAI chat-completions dicts, shared by the client and the server.

Tool-call arguments travel as JSON strings in the OpenAI shape; a model that writes invalid
JSON gets a call carrying ``_parse_error`` (the loop shows it the error) instead of a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from codemill.agent.actions import PARSE_ERROR, loads_lenient
from codemill.core.records import Message, ToolCall


def arguments_from_json(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        return loads_lenient(str(raw))
    except ValueError:
        return {PARSE_ERROR: f"arguments are not a JSON object: {str(raw)[:200]!r}"}


def message_to_openai(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": msg.role, "content": msg.content}
    if msg.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in msg.tool_calls
        ]
    if msg.tool_call_id is not None:
        out["tool_call_id"] = msg.tool_call_id
    if msg.name is not None and msg.role == "tool":
        out["name"] = msg.name
    return out


def messages_to_openai(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [message_to_openai(m) for m in messages]


def message_from_openai(data: Mapping[str, Any]) -> Message:
    """A ``Message`` from the OpenAI chat shape (a dict, or a client object's dump)."""
    calls = []
    for i, raw in enumerate(data.get("tool_calls") or ()):
        fn = raw.get("function") or raw
        calls.append(ToolCall(id=raw.get("id") or f"call_{i}", name=str(fn.get("name") or "?"),
                              arguments=arguments_from_json(fn.get("arguments"))))
    content = data.get("content") or ""
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return Message(role=str(data.get("role") or "assistant"), content=str(content),
                   tool_calls=tuple(calls), tool_call_id=data.get("tool_call_id"),
                   name=data.get("name"))
