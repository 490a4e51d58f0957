"""Token records -> training sequences -> padded tensor batches.

A ``TrainSeq`` is one trajectory laid flat: ``ids = prompt_ids + completion_ids``, a loss
mask over ``ids`` (0 on the prompt and on every tool/template token), the sampler's
log-probs over ``ids`` (0.0 where the mask is 0) and the trajectory's advantage (0 for
SFT). ``collate`` shifts everything by one so position ``t`` predicts ``ids[t + 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codemill.core.records import TokenTrace


@dataclass(frozen=True)
class TrainSeq:
    """One training sequence (see the module docstring)."""

    ids: tuple[int, ...]
    mask: tuple[int, ...]
    old_logprobs: tuple[float, ...]
    advantage: float = 0.0
    rollout_id: str = ""
    prox_logprobs: tuple[float, ...] | None = None
    """The trainer's log-probs over ``ids`` before a GRPO round's first update (GRPO's
    ``logp_old`` when a round makes several updates; ``codemill.train.losses``)."""

    @property
    def loss_tokens(self) -> int:
        return sum(self.mask)


def from_trace(trace: TokenTrace, *, advantage: float = 0.0, rollout_id: str = "") -> TrainSeq:
    """The sequence of one token trace; prompt positions are masked out."""
    n = len(trace.prompt_ids)
    return TrainSeq(ids=trace.prompt_ids + trace.completion_ids,
                    mask=(0,) * n + trace.loss_mask,
                    old_logprobs=(0.0,) * n + trace.logprobs,
                    advantage=advantage, rollout_id=rollout_id)


def keep(seqs: Sequence[TrainSeq], max_len: int) -> tuple[list[TrainSeq], int]:
    """Sequences that fit ``max_len`` and have a loss token; returns (kept, left out)."""
    kept = [s for s in seqs if len(s.ids) <= max_len and s.loss_tokens > 0]
    return kept, len(seqs) - len(kept)


def collate(seqs: Sequence[TrainSeq], pad_id: int, device: Any) -> dict[str, Any]:
    """Right-padded tensors: ``input_ids``/``attention_mask`` [B, T]; ``targets``,
    ``mask``, ``old_logprobs`` (the sampler's) [B, T-1] (shifted); ``advantages`` [B];
    ``prox_logprobs`` [B, T-1] when every sequence has them."""
    import torch

    width = max(len(s.ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.float32)
    old = torch.zeros((len(seqs), width), dtype=torch.float32)
    has_prox = all(s.prox_logprobs is not None for s in seqs)
    prox = torch.zeros((len(seqs), width), dtype=torch.float32)
    for i, s in enumerate(seqs):
        n = len(s.ids)
        ids[i, :n] = torch.tensor(s.ids)
        attn[i, :n] = 1
        mask[i, :n] = torch.tensor(s.mask, dtype=torch.float32)
        old[i, :n] = torch.tensor(s.old_logprobs, dtype=torch.float32)
        if has_prox and s.prox_logprobs is not None:
            prox[i, :n] = torch.tensor(s.prox_logprobs, dtype=torch.float32)
    out = {
        "input_ids": ids.to(device), "attention_mask": attn.to(device),
        "targets": ids[:, 1:].to(device), "mask": mask[:, 1:].to(device),
        "old_logprobs": old[:, 1:].to(device),
        "advantages": torch.tensor([s.advantage for s in seqs], dtype=torch.float32)
        .to(device),
    }
    if has_prox:
        out["prox_logprobs"] = prox[:, 1:].to(device)
    return out
