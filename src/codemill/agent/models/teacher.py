"""Record another policy's replies token-exactly, as a local model would have produced them.

``TeacherBackend(inner, tokenizer)`` asks ``inner`` (a scripted expert, an API model in
rejection sampling) for each reply and returns it with the tokens a local model with
``tokenizer`` would see: the conversation's prompt tokens continued exactly as
``codemill.agent.models.sampler`` continues them for sampling, and the reply's text
tokenized once, followed by the end-of-turn token. SFT on these records therefore trains
the model on the very token layout it meets when it acts. Log-probs are 0.0: the teacher's
probabilities are not the student's (SFT does not use them).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codemill.agent.models.local import _chat_dicts
from codemill.agent.models.sampler import TokenConversation, encode, tokenizer_hash
from codemill.core.protocols import ModelBackend
from codemill.core.records import Message, ModelReply, SamplingConfig


class TeacherBackend:
    """See the module docstring. ``tokenizer`` is a loaded tokenizer or a model dir."""

    supports_tools = False

    def __init__(self, inner: ModelBackend, tokenizer: Any, *, name: str | None = None) -> None:
        if isinstance(tokenizer, (str, Path)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.inner, self.tokenizer = inner, tokenizer
        self.name = name or inner.name
        self._conv = TokenConversation()
        self._hash = tokenizer_hash(tokenizer)
        self._lock = threading.Lock()

    def complete(self, messages: Sequence[Message], *,
                 tools: Sequence[Mapping[str, object]] | None = None,
                 sampling: SamplingConfig | None = None) -> ModelReply:
        reply = self.inner.complete(messages, tools=None, sampling=sampling)
        text = reply.message.content
        tok = self.tokenizer
        with self._lock:
            offset, prompt_ids = self._conv.continue_with(tok, _chat_dicts(messages))
            ids = encode(tok, text) + [int(tok.eos_token_id)]
            self._conv.record_reply({"role": "assistant", "content": text}, ids, ids[-1])
            total = len(self._conv.ids) - len(ids)
        return reply.model_copy(update={
            "message": Message(role="assistant", content=text),
            "prompt_tokens": total, "completion_tokens": len(ids), "finish_reason": "stop",
            "token_ids": tuple(ids), "logprobs": (0.0,) * len(ids),
            "prompt_token_ids": tuple(prompt_ids), "prompt_offset": offset,
            "tokenizer_hash": self._hash})
