"""A local ``transformers`` causal LM, prompted through its own chat template.

Samples with the given temperature, top-p, top-k, seed and token budget on CPU (or
``device``) and returns token-exact replies: the prompt tokens each turn appended
(``codemill.agent.models.sampler.TokenConversation``), the sampled ids and their
full-vocabulary log-probabilities, which RL training needs, with the KV cache kept across
the turns of a conversation. It has no native tool calls: the agent describes its text
action format in the prompt instead.

One backend serves many conversations at once: every thread that calls ``complete`` has
its own conversation, and all of them share the backend's ``BatchedEngine``
(``codemill.agent.models.engine``), which decodes the turns waiting at the same time in one
batch. Rollouts of a local model therefore run as threads of one process around one copy of
the weights (``codemill.rollouts.runner``). ``swap_weights`` serves new weights (a GRPO
round's policy) without a restart. Requires the ``model`` extra (torch, transformers,
gguf); imports them only when built.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codemill.agent.models.omp import release_openmp_threads
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
    batched = True
    """Calls from many threads are decoded together (``codemill.agent.models.engine``)."""

    def __init__(self, path: str | Path | None = None, *, gguf_file: str | None = None,
                 device: str = "cpu", name: str | None = None,
                 threads: int | None = None) -> None:
        """``threads`` sets torch's (process-wide) CPU thread count; None leaves it."""
        self.name = name or f"transformers:{path}"
        self.device = device
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self._local = threading.local()  # each calling thread's own conversation
        self._engine: Any = None
        self._engine_lock = threading.Lock()
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
        release_openmp_threads()  # the engine's thread samples from now on
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
        # Loading ran torch kernels on this thread; the engine's thread samples from now on
        # and would share the cores with this thread's idle OpenMP workers.
        release_openmp_threads()

    @property
    def engine(self) -> Any:
        """The batched sampler over ``self.model``, started on first use."""
        with self._engine_lock:
            if self._engine is None:
                from codemill.agent.models.engine import BatchedEngine

                self._engine = BatchedEngine(self.model, device=self.device, policy=self.name)
                # A backend dropped without ``close`` (one per GRPO round) stops its engine
                # thread, which would otherwise keep its caches alive for good.
                weakref.finalize(self, self._engine.close)
            return self._engine

    def swap_weights(self, model: Any, name: str | None = None) -> None:
        """Serve ``model`` from now on (between rounds: waits for turns in flight)."""
        self.name = name or self.name
        self.model = model.to(self.device).eval()
        if self._engine is not None:
            self._engine.swap(self.model, self.name)

    def end_conversation(self) -> None:
        """Forget the calling thread's conversation: its turns are over, so its keys and
        values (SmolLM2 keeps 46 KB a token: 90 MB for a 2,000-token prompt) need not stay
        alive while its rollout is graded. The next ``complete`` on this thread starts a
        new conversation, as it would anyway for a chat that does not extend this one."""
        self._local.conv = None

    def close(self) -> None:
        """Stop the sampler thread (a later ``complete`` starts a new one)."""
        with self._engine_lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def complete(self, messages: Sequence[Message], *,
                 tools: Sequence[Mapping[str, object]] | None = None,
                 sampling: SamplingConfig | None = None) -> ModelReply:
        from codemill.agent.models.sampler import tokenizer_hash

        s = sampling or SamplingConfig()
        start = time.monotonic()
        tok = self.tokenizer
        chat = _chat_dicts(messages)
        if self._tok_hash is None:
            self._tok_hash = tokenizer_hash(tok)
        conv = getattr(self._local, "conv", None)
        if conv is None:
            conv = self._local.conv = TokenConversation()
        offset, prompt_ids = conv.continue_with(tok, chat)
        stops = {tok.eos_token_id} | set(_as_list(self.model.generation_config.eos_token_id))
        stops.discard(None)
        try:
            turn = self.engine.generate(conv.ids, conv.cache, s, stops)
        except ModelError:
            self._local.conv = None  # the conversation's state is unknown: start over
            raise
        new_ids, logprobs = turn.ids, turn.logprobs
        conv.cache = turn.saved
        text = tok.decode(new_ids, skip_special_tokens=True)
        conv.record_reply({"role": "assistant", "content": text}, new_ids,
                          new_ids[-1] if turn.stopped else None)
        total = len(conv.ids) - len(new_ids)
        stopped = turn.stopped
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
