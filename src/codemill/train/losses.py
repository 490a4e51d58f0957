"""The two losses, on token log-probs of the sampled (model) tokens only.

- SFT: ``-sum(mask * logp) / n`` (masked next-token cross-entropy).
- GRPO: token-level clipped surrogate with an asymmetric clip (DAPO), corrected for the
  sampler/trainer mismatch:

  ``ratio = exp(logp - logp_old)``, with ``logp_old`` the trainer's log-probs under the
  weights the round was sampled with (``prox``), or the sampler's when no correction is
  asked (``correction="none"``);
  ``surr_t = min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)``;
  ``loss = -sum(w_t * surr_t) / n`` over loss tokens, no KL term.

  ``w_t`` is the importance weight of the trainer against the sampler,
  ``rho_t = exp(logp_old - logp_sampler)`` (constant, no gradient): when the sampler's
  numerics differ from the trainer's (a batched engine, bf16, int8) the samples come from
  a slightly different policy than the one being trained, and ``rho`` re-weights them.

  - ``tis``: ``w = min(rho, cap)`` (truncated importance sampling, veRL's
    ``tis_imp_ratio_cap``);
  - ``mask_token``: ``w = 1`` where ``1/cap <= rho <= cap``, else 0;
  - ``mask_sequence``: the same test on a sequence's geometric-mean ``rho``; a sequence
    outside the range loses every token (recommended over token masks by "When Speed
    Kills Stability");
  - ``none``: ``w = 1`` and the sampler's log-probs are ``logp_old``.

  When the sampler and the trainer compute the same numbers, ``rho = 1`` on every token
  and every mode gives the same update.

``n`` is the step's total loss-token count, passed in so gradient accumulation over micro
batches sums to exactly the full-batch gradient; tokens an IS mask removes still count in
``n`` (their weight is 0), so a mask never inflates the other tokens' weight.

``clip_frac`` counts only tokens where ``min`` takes the clipped branch: a positive
advantage with ``ratio > 1 + clip_high`` or a negative one with ``ratio < 1 - clip_low``.
A ratio out of range on the other side is not clipped (the unclipped term is the smaller
one there and keeps its gradient).
"""

from __future__ import annotations

from typing import Any, Literal

Correction = Literal["tis", "mask_token", "mask_sequence", "none"]


def token_logprobs(model: Any, batch: dict[str, Any], temperature: float = 1.0) -> Any:
    """log p(ids[t+1] | ids[:t+1]) at ``temperature``, shape [B, T-1]; 0.0 at positions
    no row trains on. Logits are computed only where some row has a loss token
    (``logits_to_keep``): the vocabulary projection and its softmax are the costliest part
    of a small model's step, and tool output (mask 0) is most of an agent's tokens."""
    import torch

    keep = torch.nonzero(batch["mask"].sum(0) > 0).squeeze(-1)
    out = torch.zeros(batch["mask"].shape, device=batch["mask"].device)
    if keep.numel() == 0:
        return out
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=keep).logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, batch["targets"][:, keep].unsqueeze(-1)).squeeze(-1)
    return out.index_copy(1, keep, picked)


def sft_loss(logp: Any, batch: dict[str, Any], n_tokens: int) -> Any:
    """Masked negative log-likelihood, summed and divided by ``n_tokens``."""
    return -(logp * batch["mask"]).sum() / max(1, n_tokens)


def is_weights(prox: Any, sampler: Any, mask: Any, correction: Correction,
               cap: float) -> tuple[Any, Any]:
    """``(w, rho)`` per token (module docstring); both [B, T-1], no gradient."""
    import torch

    rho = torch.exp(prox - sampler) * mask
    if correction == "none":
        return mask.clone(), rho
    if correction == "tis":
        return torch.clamp(rho, max=cap) * mask, rho
    if correction == "mask_token":
        inside = (rho >= 1.0 / cap) & (rho <= cap)
        return inside.float() * mask, rho
    if correction == "mask_sequence":
        count = mask.sum(-1).clamp(min=1)
        seq_rho = torch.exp(((prox - sampler) * mask).sum(-1) / count)
        inside = (seq_rho >= 1.0 / cap) & (seq_rho <= cap)
        return inside.float().unsqueeze(-1) * mask, rho
    raise ValueError(f"unknown importance-sampling correction {correction!r}")


def grpo_loss(logp: Any, batch: dict[str, Any], n_tokens: int, clip_low: float,
              clip_high: float, *, correction: Correction = "tis",
              cap: float = 2.0) -> tuple[Any, dict[str, float]]:
    """The corrected clipped surrogate (module docstring) and its sums for the step's
    statistics: clipped tokens, |logp - logp_sampler|, the IS ratio ``rho`` and the tokens
    whose weight it changed (capped or masked). ``batch["prox_logprobs"]`` is
    ``logp_old``; when absent (one update per round) it is ``logp`` itself, detached: the
    weights have not moved yet when the step's forward passes run."""
    import torch

    mask = batch["mask"]
    on = mask > 0
    sampler = batch["old_logprobs"]
    prox = batch.get("prox_logprobs")
    prox = logp.detach() if prox is None else prox
    weight, rho = is_weights(prox, sampler, mask, correction, cap)
    old = sampler if correction == "none" else prox
    adv = batch["advantages"].unsqueeze(-1)
    ratio = torch.exp(logp - old)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped) * weight
    loss = (per_token * mask).sum() / max(1, n_tokens)
    with torch.no_grad():
        r = ratio.detach()
        took_clip = ((adv > 0) & (r > 1.0 + clip_high)) | ((adv < 0) & (r < 1.0 - clip_low))
        gap = (logp.detach() - sampler).abs()[on]
        rho_on = rho[on]
        changed = (weight != 1.0) & on if correction != "tis" else (rho > cap) & on
        stats = {
            "clip_frac_sum": float((took_clip & on).sum()),
            "logp_gap_sum": float(gap.sum()) if gap.numel() else 0.0,
            "logp_gap_max": float(gap.max()) if gap.numel() else 0.0,
            "is_ratio_sum": float(rho_on.sum()) if rho_on.numel() else 0.0,
            "is_ratio_max": float(rho_on.max()) if rho_on.numel() else 0.0,
            "is_changed_sum": float(changed.sum()) if correction != "none" else 0.0,
        }
    return loss, stats
