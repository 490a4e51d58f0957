"""One optimizer step of SFT or GRPO, read top to bottom.

    zero grads -> for each micro batch: forward, loss / step's loss tokens, backward
               -> clip the global grad norm -> AdamW step -> metrics

A GRPO round may make several such steps over mini-batches of its sequences
(``TrainConfig.updates``); ``policy.step`` counts SFT steps and GRPO rounds.

Both steps take the step's ``TrainSeq``s (already filtered by ``data.keep``); the loss is
normalized by the *step's* total loss tokens, so accumulating over micro batches gives the
full-batch gradient. Metrics are plain floats, one dict per step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
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
    policy.step += 1
    seconds = time.monotonic() - started
    return {"step": policy.step, "loss": total, "grad_norm": norm, "sequences": len(seqs),
            "loss_tokens": n_tokens, "tokens": sum(len(s.ids) for s in seqs),
            "seconds": seconds, "tokens_per_s": sum(len(s.ids) for s in seqs) / seconds}


def with_prox(policy: Policy, seqs: Sequence[TrainSeq]) -> list[TrainSeq]:
    """``seqs`` with the trainer's log-probs under the current weights (``logp_old``),
    computed without gradients in the same numerics as the update."""
    import torch

    out: list[TrainSeq] = []
    for chunk in _micro(seqs, policy.config.micro_batch):
        batch = collate(chunk, policy.pad_id, policy.device)
        with torch.no_grad(), policy.autocast():
            logp = token_logprobs(policy.model, batch, policy.config.temperature).cpu()
        for i, s in enumerate(chunk):
            row = (0.0, *logp[i, :len(s.ids) - 1].tolist())
            out.append(replace(s, prox_logprobs=row))
    return out


def _mini_batches(seqs: Sequence[TrainSeq], n: int, seed: str) -> list[list[TrainSeq]]:
    order = list(seqs)
    if n > 1:
        random.Random(seed).shuffle(order)
    n = min(n, len(order))
    return [order[i::n] for i in range(n)]


def grpo_step(policy: Policy, seqs: Sequence[TrainSeq]) -> dict[str, Any]:
    """One GRPO round's update (advantages already set, zero-advantage sequences already
    dropped): ``config.updates`` optimizer steps over seeded mini-batches of ``seqs``, the
    corrected clipped token-level surrogate at the sampling temperature
    (``codemill.train.losses``), and per round: the clipped share, the sampler/trainer
    log-prob gap and the importance ratio's mean, max and capped or masked share."""
    started = time.monotonic()
    cfg = policy.config
    policy.model.train()
    if cfg.updates > 1:  # logp_old must be fixed before the first update moves the weights
        seqs = with_prox(policy, seqs)
    sums = {"clip_frac_sum": 0.0, "logp_gap_sum": 0.0, "is_ratio_sum": 0.0,
            "is_changed_sum": 0.0}
    maxima = {"logp_gap_max": 0.0, "is_ratio_max": 0.0}
    total, norms = 0.0, []
    for part in _mini_batches(seqs, cfg.updates, f"{cfg.seed}-{policy.step}"):
        n_tokens = sum(s.loss_tokens for s in part)
        policy.optimizer.zero_grad(set_to_none=True)
        for chunk in _micro(part, cfg.micro_batch):
            batch = collate(chunk, policy.pad_id, policy.device)
            with policy.autocast():
                logp = token_logprobs(policy.model, batch, cfg.temperature)
            loss, stats = grpo_loss(logp, batch, n_tokens, cfg.clip_low, cfg.clip_high,
                                    correction=cfg.correction, cap=cfg.is_cap)
            loss.backward()
            total += float(loss.detach())
            for k in sums:
                sums[k] += stats[k]
            for k in maxima:
                maxima[k] = max(maxima[k], stats[k])
        norms.append(_finish(policy))
    policy.step += 1
    seconds = time.monotonic() - started
    n_all = max(1, sum(s.loss_tokens for s in seqs))
    changed = sums["is_changed_sum"] / n_all
    return {"step": policy.step, "loss": total / len(norms), "grad_norm": norms[-1],
            "updates": len(norms), "sequences": len(seqs),
            "loss_tokens": sum(s.loss_tokens for s in seqs),
            "tokens": sum(len(s.ids) for s in seqs),
            "clip_frac": sums["clip_frac_sum"] / n_all,
            "logp_gap_mean": sums["logp_gap_sum"] / n_all, "logp_gap_max": maxima["logp_gap_max"],
            "is_correction": cfg.correction,
            "is_ratio_mean": sums["is_ratio_sum"] / n_all, "is_ratio_max": maxima["is_ratio_max"],
            "is_capped_frac": changed if cfg.correction == "tis" else 0.0,
            "is_masked_frac": changed if cfg.correction.startswith("mask") else 0.0,
            "seconds": seconds, "tokens_per_s": sum(len(s.ids) for s in seqs) / seconds}
