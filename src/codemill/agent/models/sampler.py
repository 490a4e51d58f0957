"""Token-level sampling for local models: one conversation's tokens and KV cache, kept
across turns.

``TokenConversation.continue_with(chat)`` returns the prompt tokens a new turn appends:
the whole prompt for a fresh conversation, or, when ``chat`` extends the previous turn's
messages plus the model's reply, only the tokens after the model's own sampled ids (the end
of its turn, the observations, the next header), rendered from the chat template's *text
difference* and tokenized alone. The model's tokens are never re-tokenized, so each turn's
prompt extends the previous one token for token, and the KV cache of the earlier turns is
reused (re-encoding the whole conversation every turn is the main waste of a multi-turn
rollout on CPU).

``sample`` draws one sequence's tokens one at a time with the cache: log-probs are
``log_softmax(logits / T)`` over the full vocabulary at the sampled token (T = 1 when
greedy), the quantity an RL trainer recomputes; top-p / top-k only filter what is drawn.
The backends sample through the batched engine (``codemill.agent.models.engine``), which
keeps these numerics for many sequences at once; ``sample`` stays as the one-sequence
reference it is tested and benchmarked against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from codemill.core.errors import ModelError
from codemill.core.records import SamplingConfig

_SENTINEL = "\x00codemill-reply\x00"


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 of the vocabulary, the special tokens and the chat template."""
    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), separators=(",", ":")).encode())
    h.update(json.dumps(tokenizer.all_special_tokens).encode())
    h.update((getattr(tokenizer, "chat_template", None) or "").encode())
    return h.hexdigest()


def render(tokenizer: Any, chat: Sequence[dict[str, str]], generation: bool) -> str:
    return str(tokenizer.apply_chat_template(list(chat), tokenize=False,
                                             add_generation_prompt=generation))


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of template text (its special tokens are in the text already)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class TokenConversation:
    """The token state of the conversation a backend is in: messages so far (the last one
    the model's reply), every token so far, and the KV cache of all but the newest."""

    chat: list[dict[str, str]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    cache: Any = None
    last_stop: int | None = None
    """The stop token the last reply ended with, if it ended on one."""

    def continue_with(self, tokenizer: Any, chat: list[dict[str, str]]) -> tuple[int, list[int]]:
        """``(offset, new prompt ids)`` for a turn asking ``chat``; resets the state when
        ``chat`` does not extend this conversation."""
        n = len(self.chat)
        if n and len(chat) > n and chat[:n] == self.chat:
            bridge = self._bridge(tokenizer, chat)
            if bridge is not None:
                offset = len(self.ids)
                self.ids += bridge
                self.chat = list(chat)
                return offset, bridge
        self.chat, self.ids, self.cache, self.last_stop = list(chat), [], None, None
        self.ids = encode(tokenizer, render(tokenizer, chat, True))
        return 0, list(self.ids)

    def _bridge(self, tokenizer: Any, chat: list[dict[str, str]]) -> list[int] | None:
        """Tokens between the model's last sampled token and the new generation point."""
        previous = render(tokenizer, self.chat, False)
        full = render(tokenizer, chat, True)
        if not full.startswith(previous):
            return None  # the template rewrites earlier turns: start over
        marked = render(tokenizer, self.chat[:-1] + [{"role": "assistant",
                                                      "content": _SENTINEL}], False)
        if _SENTINEL not in marked:
            return None
        end = marked[marked.index(_SENTINEL) + len(_SENTINEL):]  # e.g. "<|im_end|>\n"
        if self.last_stop is not None:
            said = tokenizer.decode([self.last_stop])
            if not end.startswith(said):
                return None
            end = end[len(said):]  # the model already sampled the end-of-turn token
        return encode(tokenizer, end + full[len(previous):])

    def record_reply(self, reply: dict[str, str], sampled: list[int],
                     stop: int | None) -> None:
        self.chat.append(reply)
        self.ids += sampled
        self.last_stop = stop


def sample(model: Any, conv: TokenConversation, sampling: SamplingConfig,
           stop_ids: set[int], device: str) -> tuple[list[int], list[float], bool]:
    """Sample after ``conv.ids`` with its cache; returns (ids, logprobs, stopped)."""
    import torch
    from transformers import DynamicCache

    limit = getattr(model.config, "max_position_embeddings", None)
    budget = max(1, sampling.max_tokens)
    if limit is not None and len(conv.ids) + budget > limit:
        budget = limit - len(conv.ids)
        if budget < 1:
            raise ModelError(f"the conversation has {len(conv.ids)} tokens; the model's "
                             f"context is {limit}")
    if conv.cache is None:
        conv.cache = DynamicCache()
    generator = torch.Generator(device=device)
    if sampling.seed is not None:
        generator.manual_seed(sampling.seed)
    else:
        generator.seed()
    ids: list[int] = []
    logps: list[float] = []
    feed = conv.ids[conv.cache.get_seq_length():]
    cache_kw = cache_keyword(model)
    with torch.inference_mode():
        while True:
            out = model(input_ids=torch.tensor([feed], device=device), use_cache=True,
                        logits_to_keep=1, **{cache_kw: conv.cache})
            [(token, logp)] = draw(out.logits[:, -1], [sampling], [generator])
            ids.append(token)
            logps.append(logp)
            if token in stop_ids:
                return ids, logps, True
            if len(ids) >= budget:
                return ids, logps, False
            feed = [token]


def cache_keyword(model: Any) -> str:
    """``cache`` in transformers >= 5.24 (``past_key_values`` is deprecated there), else
    ``past_key_values``; looked up on the innermost model (a peft wrapper passes it on)."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(inner.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


TOP_TOKENS = 64
"""Tokens that each get a Gumbel number of their own in ``draw``; the rest of the
vocabulary competes as one (exactly: see ``draw``)."""


def draw(logits: Any, samplings: list[SamplingConfig],
         generators: list[Any]) -> list[tuple[int, float]]:
    """One sampled token per row of ``logits`` ``[rows, vocab]`` and its full-vocabulary
    log-prob after temperature (T = 1 when greedy).

    The log-softmax of all rows is one batched op. A row sampled without top-k / top-p
    (what RL does) draws by the Gumbel-max trick over its top ``TOP_TOKENS`` tokens plus
    one competitor for the rest: the largest of ``logp_i + G_i`` over the tail is itself
    a Gumbel at the tail's log-mass, and which tail token wins is independent of that
    value, so comparing the top tokens' scores with one such number, and drawing inside
    the tail (``multinomial``) only when it wins, samples exactly from the full
    distribution while each row needs ``TOP_TOKENS + 1`` random numbers, not one per
    vocabulary entry. The numbers come from the row's own generator and go to the top
    tokens in token-id order, so a row's token depends only on its logits and its
    generator, never on who shares its batch, and a rounding-level change of the logits
    changes it only at a near-tie (of the winner with another token, or of the 64th and
    65th tokens, which reorders the numbers). (Inverse-CDF sampling from one uniform is cheaper
    still, but a cumulative sum over the whole vocabulary moves every boundary by
    rounding error, and a sequence alone and in a batch then drew different tokens.) A row
    with top-k / top-p draws from the filtered distribution by ``multinomial``; the
    recorded log-prob is always the unfiltered one."""
    import torch

    logits = logits.float()
    scale = torch.tensor([s.temperature if s.temperature > 0 else 1.0 for s in samplings],
                         device=logits.device)
    logp = torch.log_softmax(logits / scale.unsqueeze(1), -1)
    tokens = torch.zeros(len(samplings), dtype=torch.long, device=logp.device)
    greedy = [b for b, s in enumerate(samplings) if s.temperature <= 0]
    if greedy:
        tokens[greedy] = logp[greedy].argmax(-1)
    plain = [b for b, s in enumerate(samplings)
             if s.temperature > 0 and s.top_k == 0 and s.top_p >= 1.0]
    for b, s in enumerate(samplings):
        if s.temperature > 0 and b not in plain:
            tokens[b] = torch.multinomial(filtered(logp[b], s).exp(), 1,
                                          generator=generators[b])[0]
    if plain:
        _gumbel_top(logp, plain, generators, tokens)
    chosen = logp.gather(1, tokens.unsqueeze(1)).squeeze(1)
    return list(zip(tokens.tolist(), chosen.tolist(), strict=True))


def _gumbel_top(logp: Any, rows: list[int], generators: list[Any], tokens: Any) -> None:
    """Set ``tokens[b]`` for each of ``rows`` by the exact top-k Gumbel draw of ``draw``."""
    import torch

    sub = logp if len(rows) == logp.shape[0] else logp[rows]
    k = min(TOP_TOKENS, sub.shape[1])
    top_ix = sub.topk(k, -1).indices.sort(-1).values  # token-id order: see ``draw``
    top_lp = sub.gather(1, top_ix).double()
    # The tail's log-mass from the top's (no second pass over the vocabulary); its
    # absolute error is float32 rounding of the log-probs, and none left is -inf.
    tail = torch.log((1.0 - top_lp.exp().sum(-1)).clamp(min=0.0))
    # float64 uniforms: float32's spacing near 1 would make large Gumbels coarse steps
    u = torch.stack([torch.rand(k + 1, generator=generators[b], device=sub.device,
                                dtype=torch.float64) for b in rows])
    gumbel = -torch.log(-torch.log(u))  # u == 0 gives -inf: that entry never wins
    scores = top_lp + gumbel[:, :k]
    best_score, best = scores.max(-1)
    tail_wins = (tail + gumbel[:, k] > best_score).tolist()
    picked = top_ix.gather(1, best.unsqueeze(1)).squeeze(1)
    for j, b in enumerate(rows):
        if tail_wins[j]:
            rest = sub[j].scatter(0, top_ix[j], float("-inf"))
            tokens[b] = torch.multinomial(rest.exp(), 1, generator=generators[b])[0]
        else:
            tokens[b] = picked[j]


def filtered(logp: Any, sampling: SamplingConfig) -> Any:
    """``logp`` with tokens outside top-k / the top-p nucleus set to -inf."""
    import torch

    if sampling.top_k > 0:
        kth = torch.topk(logp, min(sampling.top_k, logp.numel())).values[-1]
        logp = logp.masked_fill(logp < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_lp, order = torch.sort(logp, descending=True)
        cum = sorted_lp.exp().cumsum(-1)
        drop = cum - sorted_lp.exp() > sampling.top_p  # keep the token that crosses top_p
        logp = logp.clone()
        logp[order[drop]] = float("-inf")
    return logp
