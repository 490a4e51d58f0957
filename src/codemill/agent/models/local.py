"""A local ``transformers`` causal LM, prompted through its own chat template.

Samples with the given temperature, top-p, seed and token budget on CPU (or ``device``) and
returns the sampled token ids and their log-probabilities, which RL training needs. It has no
native tool calls: the agent describes its text action format in the prompt instead.
Requires the ``model`` extra (torch, transformers, gguf); imports them only when built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
        import torch

        s = sampling or SamplingConfig()
        start = time.monotonic()
        tok = self.tokenizer
        prompt = tok.apply_chat_template(_chat_dicts(messages), add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)
        input_ids = prompt["input_ids"].to(self.device)
        sample = s.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(1, s.max_tokens), "do_sample": sample,
            "return_dict_in_generate": True, "output_scores": True,
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None
            else tok.eos_token_id,
        }
        if sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
        else:  # greedy: unset the model's default sampling knobs so none is reported unused
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with self._lock, torch.inference_mode():
            if s.seed is not None:
                torch.manual_seed(s.seed)
            out = self.model.generate(input_ids, attention_mask=prompt["attention_mask"]
                                      .to(self.device), **kwargs)
            scores = self.model.compute_transition_scores(out.sequences, out.scores,
                                                          normalize_logits=True)
        new_ids = out.sequences[0, input_ids.shape[1]:].tolist()
        logprobs = scores[0].tolist()[: len(new_ids)]
        eos = {tok.eos_token_id} | set(_as_list(self.model.generation_config.eos_token_id))
        stopped = bool(new_ids) and new_ids[-1] in eos
        text = tok.decode(new_ids, skip_special_tokens=True)
        return ModelReply(
            message=Message(role="assistant", content=text),
            prompt_tokens=int(input_ids.shape[1]), completion_tokens=len(new_ids),
            finish_reason="stop" if stopped else "length",
            latency_s=time.monotonic() - start,
            token_ids=tuple(new_ids), logprobs=tuple(float(x) for x in logprobs),
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
