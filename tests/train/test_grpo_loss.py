"""GRPO's loss on small tensors with hand-computed answers: the asymmetric clip with ratios
away from 1, ``clip_frac`` counting only the clipped branch, and the sampler/trainer
importance-sampling corrections (truncation and masks) with their statistics."""

import math

import pytest
import torch

from codemill.train.losses import grpo_loss

RATIOS = [0.5, 0.9, 1.1, 1.5]


def _batch(logp, sampler, advantages, prox=None):
    b = {"mask": torch.ones_like(sampler), "old_logprobs": sampler,
         "advantages": torch.tensor(advantages)}
    if prox is not None:
        b["prox_logprobs"] = prox
    return b


def test_clipped_surrogate_with_ratios_away_from_one():
    # Two rows of four tokens with ratios 0.5, 0.9, 1.1, 1.5 against logp_old; A = +1, -1.
    # With eps_low 0.2, eps_high 0.28, min(r * A, clip(r, 0.8, 1.28) * A) per token is
    #   A = +1: 0.5, 0.9, 1.1, 1.28 (clipped)   sum 3.78
    #   A = -1: -0.8 (clipped), -0.9, -1.1, -1.5  sum -4.30
    # loss = -(3.78 - 4.30) / 8 tokens = 0.065. Ratio 0.5 at A = +1 and 1.5 at A = -1 are
    # out of range but not clipped (the unclipped term is the smaller there): 2 of 8
    # tokens take the clipped branch, not the 4 whose ratio is out of range.
    old = torch.full((2, 4), -2.0)
    logp = (old + torch.log(torch.tensor([RATIOS, RATIOS]))).requires_grad_(True)
    batch = _batch(logp, old, [1.0, -1.0], prox=old)
    loss, stats = grpo_loss(logp, batch, 8, 0.2, 0.28)
    assert loss.item() == pytest.approx(0.065, abs=1e-6)
    assert stats["clip_frac_sum"] == 2.0
    # The clipped tokens get no gradient; the others -A * r / n (d r / d logp = r).
    loss.backward()
    expected = [[-0.5 / 8, -0.9 / 8, -1.1 / 8, 0.0], [0.0, 0.9 / 8, 1.1 / 8, 1.5 / 8]]
    torch.testing.assert_close(logp.grad, torch.tensor(expected), atol=1e-6, rtol=0)


def test_without_correction_the_sampler_is_the_old_policy():
    # correction="none": the ratio is against the sampler's log-probs, weight 1.
    sampler = torch.full((1, 4), -2.0)
    logp = sampler + torch.log(torch.tensor([RATIOS]))
    loss, stats = grpo_loss(logp, _batch(logp, sampler, [1.0]), 4, 0.2, 0.28,
                            correction="none")
    assert loss.item() == pytest.approx(-3.78 / 4, abs=1e-6)
    assert stats["clip_frac_sum"] == 1.0 and stats["is_changed_sum"] == 0.0


def test_tis_caps_the_trainer_sampler_ratio_and_reports_it():
    # The trainer (logp_old = logp: one update a round) against a sampler whose numbers
    # differ: rho = 0.5, 1, 3, 2. TIS with cap 2 weights the tokens 0.5, 1, 2, 2; the
    # policy ratio is 1 on every token (nothing clipped), so loss = -(A * sum w) / n.
    logp = torch.full((1, 4), -1.0, requires_grad=True)
    rho = torch.tensor([[0.5, 1.0, 3.0, 2.0]])
    sampler = logp.detach() - torch.log(rho)
    loss, stats = grpo_loss(logp, _batch(logp, sampler, [1.0]), 4, 0.2, 0.28,
                            correction="tis", cap=2.0)
    assert loss.item() == pytest.approx(-5.5 / 4, abs=1e-6)
    assert stats["clip_frac_sum"] == 0.0
    assert stats["is_ratio_sum"] == pytest.approx(6.5, abs=1e-5)
    assert stats["is_ratio_max"] == pytest.approx(3.0, abs=1e-5)
    assert stats["is_changed_sum"] == 1.0  # only 3.0 is above the cap (2.0 is not)
    assert stats["logp_gap_max"] == pytest.approx(math.log(3.0), abs=1e-5)
    loss.backward()  # the weight is a constant: the gradient is -A * w / n
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5, -1.0, -2.0, -2.0]]) / 4,
                               atol=1e-6, rtol=0)


def test_masks_drop_tokens_or_whole_sequences_out_of_range():
    logp = torch.full((2, 4), -1.0)
    rho = torch.tensor([[0.5, 1.0, 3.0, 2.0], [3.0, 3.0, 3.0, 3.0]])
    sampler = logp - torch.log(rho)
    batch = _batch(logp, sampler, [1.0, 1.0])
    # token masks: keep 1/2 <= rho <= 2 -> row 1 keeps 3 tokens, row 2 none
    loss, stats = grpo_loss(logp, batch, 8, 0.2, 0.28, correction="mask_token", cap=2.0)
    assert loss.item() == pytest.approx(-3 / 8, abs=1e-6) and stats["is_changed_sum"] == 5.0
    # sequence masks: row 1's geometric mean is 3 ** 0.25 (inside), row 2's is 3 (outside)
    loss, stats = grpo_loss(logp, batch, 8, 0.2, 0.28, correction="mask_sequence", cap=2.0)
    assert loss.item() == pytest.approx(-4 / 8, abs=1e-6) and stats["is_changed_sum"] == 4.0


def test_equal_numerics_give_the_same_update_in_every_mode():
    logp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    sampler = logp.detach().clone()
    grads = []
    for mode in ("tis", "mask_token", "mask_sequence", "none"):
        logp.grad = None
        loss, stats = grpo_loss(logp, _batch(logp, sampler, [0.7]), 3, 0.2, 0.28,
                                correction=mode)
        loss.backward()
        grads.append(logp.grad.clone())
        assert stats["is_changed_sum"] == 0.0 and stats["is_ratio_max"] == pytest.approx(1.0)
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0])
