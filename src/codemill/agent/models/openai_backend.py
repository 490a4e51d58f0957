"""A model behind any OpenAI-compatible chat-completions endpoint, via the ``openai`` client.

Works with hosted APIs and local servers (vLLM, SGLang, llama.cpp server, Ollama, and
``codemill model serve``). The API key comes from the argument, else ``OPENAI_API_KEY``, else
``"none"`` (local servers ignore it). The client retries transient failures itself
(``max_retries``); what still fails is raised as ``ModelError`` with one line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from codemill.agent.models.chat import message_from_openai, messages_to_openai
from codemill.core.errors import ModelError
from codemill.core.records import Message, ModelReply, SamplingConfig


class OpenAIBackend:
    """``complete`` = one ``chat.completions.create`` call; native tool calls supported."""

    supports_tools = True

    def __init__(self, model: str, base_url: str | None = None, *, api_key: str | None = None,
                 timeout_s: float = 600.0, max_retries: int = 2,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        import openai  # lazily: importing codemill.agent must stay cheap

        self.model = model
        self.name = f"openai:{model}" + (f"@{base_url}" if base_url else "")
        self.extra_body = dict(extra_body or {})
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none",
            timeout=timeout_s, max_retries=max_retries)
        self._errors = (openai.OpenAIError,)

    def close(self) -> None:
        """Close the client's pooled connections (a kept-alive socket otherwise lingers)."""
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, messages: Sequence[Message], *,
                 tools: Sequence[Mapping[str, object]] | None = None,
                 sampling: SamplingConfig | None = None) -> ModelReply:
        s = sampling or SamplingConfig()
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": messages_to_openai(messages),
            "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
        }
        if s.seed is not None:
            kwargs["seed"] = s.seed
        if tools:
            kwargs["tools"] = list(tools)
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        start = time.monotonic()
        try:
            resp = self._client.chat.completions.create(**kwargs)
        except self._errors as exc:
            raise ModelError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        latency = time.monotonic() - start
        if not resp.choices:
            raise ModelError(f"{self.name}: the response has no choices")
        choice = resp.choices[0]
        usage = resp.usage
        return ModelReply(
            message=message_from_openai(choice.message.model_dump()),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "",
            latency_s=latency,
        )
