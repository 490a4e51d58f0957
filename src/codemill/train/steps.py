"""One optimizer step of SFT or GRPO, read top to bottom.

    zero grads -> for each micro batch: forward, loss / step's loss tokens, backward
               -> clip the global grad norm -> AdamW step -> metrics

Both steps take the step's ``TrainSeq``s (already filtered by ``data.keep``); the loss is
normalized by the *step's* total loss tokens, so accumulating over micro batches gives the
full-batch gradient. Metrics are plain floats, one dict per step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from codemill.train.data import TrainSeq, collate
from codemill.train.losses import grpo_loss, sft_loss, token_logprobs
from codemill.train.policy import Policy


def _micro(seqs: Sequence[TrainSeq], size: int) -> list[Sequence[TrainSeq]]:
    return [seqs[i:i + size] for i in range(0, len(seqs), size)]


def _finish(policy: Policy) -> float:
    import torch

    params = list(policy.trainable().values())
    norm = float(torch.nn.utils.clip_grad_norm_(params, policy.config.grad_clip))
    policy.optimizer.step()
    policy.step += 1
    return norm


def sft_step(policy: Policy, seqs: Sequence[TrainSeq]) -> dict[str, Any]:
    """One SFT step: masked next-token loss on the model's own tokens."""
    started = time.monotonic()
    cfg = policy.config
    n_tokens = sum(s.loss_tokens for s in seqs)
    policy.model.train()
    policy.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for chunk in _micro(seqs, cfg.micro_batch):
        batch = collate(chunk, policy.pad_id, policy.device)
        with policy.autocast():
            logp = token_logprobs(policy.model, batch)
        loss = sft_loss(logp, batch, n_tokens)
        loss.backward()
        total += float(loss.detach())
    norm = _finish(policy)
    seconds = time.monotonic() - started
    return {"step": policy.step, "loss": total, "grad_norm": norm, "sequences": len(seqs),
            "loss_tokens": n_tokens, "tokens": sum(len(s.ids) for s in seqs),
            "seconds": seconds, "tokens_per_s": sum(len(s.ids) for s in seqs) / seconds}


def grpo_step(policy: Policy, seqs: Sequence[TrainSeq]) -> dict[str, Any]:
    """One GRPO update on a round's sequences (advantages already set, zero-advantage
    sequences already dropped): the clipped token-level surrogate at the sampling
    temperature, and the sampler/trainer log-prob gap on the same tokens."""
    started = time.monotonic()
    cfg = policy.config
    n_tokens = sum(s.loss_tokens for s in seqs)
    policy.model.train()
    policy.optimizer.zero_grad(set_to_none=True)
    total, clipped, gap_sum, gap_max = 0.0, 0.0, 0.0, 0.0
    for chunk in _micro(seqs, cfg.micro_batch):
        batch = collate(chunk, policy.pad_id, policy.device)
        with policy.autocast():
            logp = token_logprobs(policy.model, batch, cfg.temperature)
        loss, stats = grpo_loss(logp, batch, n_tokens, cfg.clip_low, cfg.clip_high)
        loss.backward()
        total += float(loss.detach())
        clipped += stats["clip_frac_sum"]
        gap_sum += stats["logp_gap_sum"]
        gap_max = max(gap_max, stats["logp_gap_max"])
    norm = _finish(policy)
    seconds = time.monotonic() - started
    return {"step": policy.step, "loss": total, "grad_norm": norm, "sequences": len(seqs),
            "loss_tokens": n_tokens, "tokens": sum(len(s.ids) for s in seqs),
            "clip_frac": clipped / max(1, n_tokens), "logp_gap_mean": gap_sum / max(1, n_tokens),
            "logp_gap_max": gap_max, "seconds": seconds,
            "tokens_per_s": sum(len(s.ids) for s in seqs) / seconds}
