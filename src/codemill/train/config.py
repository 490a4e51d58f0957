"""``TrainConfig``: every knob of SFT and GRPO, typed, frozen and documented.

The resolved config is stored with every checkpoint (``config`` and ``config_hash``), so a
checkpoint can be reproduced from its lineage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LORA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
LORA_ATTENTION_AND_MLP = (*LORA_ATTENTION, "gate_proj", "up_proj", "down_proj")
"""Llama-family module names. Adapting the MLP too learned the action format about twice
as fast per step in the demo's SFT (loss 0.50 vs 0.83 after 12 steps) for little extra
time: the backward pass runs through those layers either way."""


class TrainConfig(BaseModel):
    """How one training run (SFT or GRPO) updates a policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(10, ge=1)
    """Optimizer steps (SFT) or on-policy rounds (GRPO; ``updates`` steps per round)."""
    batch_size: int = Field(8, ge=1)
    """SFT: sequences per optimizer step. GRPO: groups with a signal per round (one task
    each; see ``max_draws``)."""
    micro_batch: int = Field(1, ge=1)
    """Sequences per forward/backward; gradients are accumulated over a step's micro
    batches, and the loss is normalized by the step's total loss tokens, so the update does
    not depend on how the step is split."""
    lr: float = Field(1e-5, gt=0)
    """AdamW learning rate (constant)."""
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = Field(1.0, gt=0)
    """Clip the global gradient norm to this before each step."""
    max_len: int = Field(2048, ge=8)
    """Sequences (prompt + completion) longer than this are left out, not cut: a cut
    trajectory would train on a conversation the model never finished."""
    seed: int = 0
    """Seeds data order, LoRA init and (with ``group_seed``) rollout sampling."""
    lora: bool = False
    """Train a LoRA adapter (peft) instead of every weight; the checkpoint holds only the
    adapter and names its base."""
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_targets: tuple[str, ...] = LORA_ATTENTION
    lora_layers: int | None = Field(None, ge=1)
    """Adapt only the last N transformer layers (None: all). The backward pass then stops
    at the lowest adapted layer: on CPU this roughly halves a step's time."""
    save_every: int = Field(1, ge=1)
    """Write a resumable state every this many steps (and after the last). A full model's
    state is weights plus two AdamW moments (three times the weights' size), so full fine-tunes
    save less often; a resumed run redoes the unsaved steps exactly (same batches, same
    RNG), so nothing is repeated in the result or lost."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """``bf16`` runs the forward pass under bfloat16 autocast; weights, adapters, gradients
    and AdamW moments stay float32, and log-probs are taken in float32. Faster on CPUs with
    bfloat16 matrix units (``bench_train.py --stage speed:precision`` measures it; figures in
    ``docs/benchmarks.md``). Off by default: GRPO's ratio compares the trainer's log-probs
    with the fp32 sampler's, and bf16 widens that gap."""
    device: str = "auto"
    """``auto`` picks CUDA when available, else CPU; or name one (``cpu``, ``cuda:0``)."""
    threads: int | None = None
    """torch CPU threads (None leaves torch's default). On a busy 2-core machine one thread
    is far faster than two (OpenMP waits on the other core; see ``smollm2.load_smollm2``),
    and a fixed count keeps CPU runs bit-reproducible across a kill and resume."""
    # --- GRPO -------------------------------------------------------------------------------
    group_size: int = Field(8, ge=2)
    """G: rollouts per task and round."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature of rollouts; the trainer divides logits by it too, so the
    ratio compares the same distributions (TRL #4159)."""
    max_new_tokens: int = Field(256, ge=1)
    """Tokens per model call in GRPO rollouts."""
    max_turns: int = Field(6, ge=1)
    """Model calls per GRPO rollout."""
    updates: int = Field(1, ge=1)
    """Optimizer steps per GRPO round: the round's sequences are split into this many
    mini-batches (seeded order), one update each, all against the log-probs the trainer
    gave before the first (``logp_old``). More than one reuses costly rollouts for more
    learning, and is where the clip does its work (with one, the ratio is 1)."""
    clip_low: float = Field(0.2, ge=0)
    """Lower clip: the ratio is held above ``1 - clip_low`` for negative advantages."""
    clip_high: float = Field(0.28, ge=0)
    """Upper clip (DAPO's clip-higher): the ratio is held below ``1 + clip_high``."""
    correction: Literal["tis", "mask_token", "mask_sequence", "none"] = "tis"
    """Sampler/trainer mismatch correction (``codemill.train.losses``): truncated importance
    sampling on the trainer/sampler ratio, masks of tokens or sequences whose ratio is out of
    ``[1/is_cap, is_cap]``, or none (the sampler's log-probs are ``logp_old``). Equal
    numerics give ratio 1 and the same update in every mode."""
    is_cap: float = Field(2.0, gt=1)
    """The cap of ``tis`` (veRL's ``tis_imp_ratio_cap``) and the range of the masks."""
    baseline: Literal["mean", "loo"] = "mean"
    """Group baseline: the group mean, or leave-one-out (each sample against the others)."""
    scale_std: bool = False
    """Divide advantages by the group's std (off by default: Dr. GRPO)."""
    kl_coef: float = Field(0.0, ge=0)
    """No KL term by default; > 0 is not implemented and rejected by the trainer."""
    max_draws: int = Field(3, ge=1)
    """Dynamic sampling (DAPO): a round keeps drawing groups from the task pool, in place
    of those whose rewards are all equal, until ``batch_size`` groups carry a signal or it
    has drawn ``max_draws * batch_size`` groups (veRL's ``max_num_gen_batches``). 1: no
    refill."""
    pass_rate_low: float = Field(0.0, ge=0, le=1)
    pass_rate_high: float = Field(1.0, ge=0, le=1)
    """Tasks whose recorded pass rate is strictly between these are drawn first, then
    tasks never tried (``codemill.train.grpo.choose_tasks``)."""
    task_order: Literal["in_range_first", "untried_first"] = "in_range_first"
    """Which tasks a round draws first: those known to be in range (the few tasks a policy
    already solves sometimes; a group on them is rarely dead), or those never tried
    (breadth: with ``format_reward`` set, a group on any task can carry a signal)."""
    format_reward: float | None = Field(None, le=0)
    """The value a sample whose answer could not be used (stop reason ``format_error``: no
    edit, an edit that changes nothing, a line not in the listing) has in its group's
    advantages, in place of its recorded reward (0). None: the recorded reward. The
    ledger's reward stays the test result; this only shapes the update (SWE-RL gives a
    format error -1). A group that mixes usable and unusable answers then carries a signal
    though none passes. At most 0: an unusable answer is never worth more than a tried
    one."""
