"""A local ``transformers`` causal LM, prompted through its own chat template.

Samples with the given temperature, top-p, top-k, seed and token budget on CPU (or
``device``) and returns token-exact replies (``codemill.agent.models.sampler``): the prompt
tokens each turn appended, the sampled ids and their full-vocabulary log-probabilities,
which RL training needs, with the KV cache kept across the turns of a conversation. It has
no native tool calls: the agent describes its text action format in the prompt instead.
Requires the ``model`` extra (torch, transformers, gguf); imports them only when built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codemill.agent.models.sampler import TokenConversation
from codemill.core.errors import ModelError
from codemill.core.records import Message, ModelReply, SamplingConfig


def _chat_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    # Chat templates of small models know system/user/assistant only: a tool result is
    # shown as a user turn.
    out = []
    for m in messages:
        role = m.role if m.role in ("system", "user", "assistant") else "user"
        out.append({"role": role, "content": m.content})
    return out


class TransformersBackend:
    """``TransformersBackend(path)`` loads a model directory or a ``.gguf`` file;
    ``TransformersBackend.from_objects(model, tokenizer)`` wraps loaded objects."""

    supports_tools = False

    def __init__(self, path: str | Path | None = None, *, gguf_file: str | None = None,
                 device: str = "cpu", name: str | None = None,
                 threads: int | None = None) -> None:
        """``threads`` sets torch's (process-wide) CPU thread count; None leaves it."""
        self.name = name or f"transformers:{path}"
        self.device = device
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self._lock = threading.Lock()  # one generation at a time: the model is not reentrant
        self._conv = TokenConversation()  # the conversation whose KV cache is kept
        self._tok_hash: str | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        if path is not None:
            self._load(Path(path), gguf_file)

    @classmethod
    def from_objects(cls, model: Any, tokenizer: Any, *, name: str = "transformers",
                     device: str = "cpu") -> TransformersBackend:
        backend = cls(None, device=device, name=name)
        backend.model, backend.tokenizer = model.to(device).eval(), tokenizer
        return backend

    def _load(self, path: Path, gguf_file: str | None) -> None:
        if not path.exists():
            raise ModelError(f"{path}: no such model directory or file")
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ModelError("local models need the 'model' extra: "
                             "pip install 'codemill[model]'") from exc
        quiet_transformers()
        if path.is_file() and path.suffix == ".gguf":
            path, gguf_file = path.parent, path.name
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, **kw)
            self.model = AutoModelForCausalLM.from_pretrained(path, **kw).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model from {path}: {exc}") from exc

    def complete(self, messages: Sequence[Message], *,
                 tools: Sequence[Mapping[str, object]] | None = None,
                 sampling: SamplingConfig | None = None) -> ModelReply:
        from codemill.agent.models.sampler import sample, tokenizer_hash

        s = sampling or SamplingConfig()
        start = time.monotonic()
        tok = self.tokenizer
        chat = _chat_dicts(messages)
        with self._lock:
            if self._tok_hash is None:
                self._tok_hash = tokenizer_hash(tok)
            conv = self._conv
            offset, prompt_ids = conv.continue_with(tok, chat)
            stops = {tok.eos_token_id} | set(_as_list(self.model.generation_config.eos_token_id))
            stops.discard(None)
            new_ids, logprobs, stopped = sample(self.model, conv, s, stops, self.device)
            text = tok.decode(new_ids, skip_special_tokens=True)
            conv.record_reply({"role": "assistant", "content": text}, new_ids,
                              new_ids[-1] if stopped else None)
            total = len(conv.ids) - len(new_ids)
        return ModelReply(
            message=Message(role="assistant", content=text),
            prompt_tokens=total, completion_tokens=len(new_ids),
            finish_reason="stop" if stopped else "length",
            latency_s=time.monotonic() - start,
            token_ids=tuple(new_ids), logprobs=tuple(logprobs),
            prompt_token_ids=tuple(prompt_ids), prompt_offset=offset,
            tokenizer_hash=self._tok_hash,
        )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def quiet_transformers() -> None:
    """Turn off transformers' progress bars and info logs: loading and converting print
    hundreds of bars that drown a command's own output. Errors still show."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
