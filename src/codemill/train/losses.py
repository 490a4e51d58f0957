"""The two losses, on token log-probs of the sampled (model) tokens only.

- SFT: ``-sum(mask * logp) / n`` (masked next-token cross-entropy).
- GRPO: token-level clipped surrogate with an asymmetric clip (DAPO):
  ``ratio = exp(logp - logp_sampler)``,
  ``loss_t = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)``,
  summed over the step's loss tokens and divided by their count (every token weighs the
  same, whatever its trajectory's length). No KL term.

``n`` is the step's total loss-token count, passed in so gradient accumulation over micro
batches sums to exactly the full-batch gradient.
"""

from __future__ import annotations

from typing import Any


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


def grpo_loss(logp: Any, batch: dict[str, Any], n_tokens: int, clip_low: float,
              clip_high: float) -> tuple[Any, dict[str, float]]:
    """The clipped surrogate (module docstring) and its statistics: the fraction of
    clipped tokens and the mean / max |logp - logp_sampler| on loss tokens."""
    import torch

    mask = batch["mask"]
    adv = batch["advantages"].unsqueeze(-1)
    delta = logp - batch["old_logprobs"]
    ratio = torch.exp(delta)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    loss = (per_token * mask).sum() / max(1, n_tokens)
    with torch.no_grad():
        on = mask > 0
        gap = delta.detach().abs()[on]
        stats = {
            "clip_frac_sum": float(((unclipped != clipped) & on).sum()),
            "logp_gap_sum": float(gap.sum()) if gap.numel() else 0.0,
            "logp_gap_max": float(gap.max()) if gap.numel() else 0.0,
        }
    return loss, stats
