"""SFT and GRPO on a tiny random model with the real tokenizer: the losses do their job."""

import zlib
from dataclasses import replace

import pytest
from tests.train.traces import chat_trace as _chat_trace

from codemill.agent.models.sampler import TokenConversation, sample
from codemill.core.records import SamplingConfig, TokenTrace
from codemill.train.config import TrainConfig
from codemill.train.data import from_trace
from codemill.train.grpo import Sample, round_data
from codemill.train.policy import load_policy
from codemill.train.steps import grpo_step, sft_step

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sft_drives_the_loss_of_a_small_batch_near_zero(tiny_dir, tokenizer, precision):
    # Four tasks, one way to act: a tiny model memorizes the replies (copying a detail
    # from the prompt into a reply is beyond it in this many steps).
    traces = [
        _chat_trace(tokenizer, f"Task {i}: {name}() is wrong.",
                    ["Let me run the tests.\n<tool name=\"run_tests\"></tool>",
                     'Fixed. <tool name="submit"></tool>'],
                    [f"FAILED test_{name} ({i} failures)"])
        for i, name in enumerate(("add", "mul", "parse", "render"))
    ]
    seqs = [from_trace(t) for t in traces]
    policy = load_policy(tiny_dir, TrainConfig(lr=1e-2, micro_batch=4, threads=1,
                                               precision=precision))
    # bf16 autocast is slow on a model this small (it pays off at SmolLM2's size): its run
    # is shorter and only has to be well on the way.
    steps, below = (60, 0.05) if precision == "fp32" else (15, 4.0)
    losses = [sft_step(policy, seqs)["loss"] for _ in range(steps)]
    assert losses[0] > 5.0  # a random model: about ln(49152) = 10.8 per token
    assert losses[-1] < below, losses[-10:]
    assert policy.step == steps
    import torch

    with policy.autocast():  # the forward pass of every step runs in this context
        assert torch.is_autocast_enabled("cpu") == (precision == "bf16")
    # bf16 is autocast only: what is trained and saved stays float32
    assert {str(p.dtype) for p in policy.trainable().values()} == {"torch.float32"}


GOOD, BAD = '<tool name="submit"></tool>', "```bash\nls\n```"


def _round(policy, prompt: list[int], good: int, groups: int, g: int,
           seed: int) -> list[Sample]:
    """``groups`` groups of ``g`` samples of 4 tokens; reward 1 when the reply starts with
    the better action's first token."""
    policy.model.eval()
    samples = []
    for k in range(groups):
        for i in range(g):
            conv = TokenConversation(chat=[], ids=list(prompt))
            s = SamplingConfig(temperature=1.0, max_tokens=4, seed=seed * 1000 + k * g + i)
            ids, logps, _ = sample(policy.model, conv, s, set(), policy.device)
            trace = TokenTrace(prompt_ids=tuple(prompt), completion_ids=tuple(ids),
                               loss_mask=(1,) * len(ids), logprobs=tuple(logps),
                               temperature=1.0)
            samples.append(Sample(f"r{k}-{i}", f"t{k}", f"g{k}", trace,
                                  1.0 if ids[0] == good else 0.0))
    return samples


def _sampler(policy, prompt: list[int], good: int, seed: int):
    """A ``SampleFn`` for ``train_rounds``: G samples of the current weights per task, the
    seed naming the round and draw."""
    from codemill.train.grpo import Drawn

    def sample(task_ids, draw):
        samples = []
        for k, task in enumerate(task_ids):
            samples += [Sample(f"{draw}/{task}/{x.rollout_id}", task, f"{draw}/{task}",
                               x.trace, x.reward)
                        for x in _round(policy, prompt, good, 1, policy.config.group_size,
                                        seed=zlib.crc32(f"{seed}/{draw}/{k}".encode()) % 100_000)]
        return Drawn(samples)

    return sample


def test_grpo_raises_the_mean_reward_where_a_better_action_exists(tiny_dir, tokenizer):
    """SFT on two actions for one prompt leaves the policy split between them; GRPO rounds
    (``train_rounds``, dynamic sampling), rewarded for the better one, move the policy to
    it."""
    from codemill.agent.models.sampler import encode
    from codemill.train.grpo import train_rounds

    both = [_chat_trace(tokenizer, "Act.", [reply], []) for reply in (GOOD, BAD)]
    prompt = list(both[0].prompt_ids)
    good = encode(tokenizer, GOOD)[0]
    assert good != encode(tokenizer, BAD)[0]
    cfg = TrainConfig(lr=1e-2, micro_batch=16, threads=1, group_size=8, steps=10,
                      batch_size=2)
    policy = load_policy(tiny_dir, cfg)
    for _ in range(25):
        sft_step(policy, [from_trace(t) for t in both])
    policy.step = 0  # the SFT steps were a warm start; the GRPO rounds count from 0
    before = round_data(_round(policy, prompt, good, 8, 8, seed=999), cfg).reward_mean
    for group in policy.optimizer.param_groups:
        group["lr"] = 3e-3
    rounds = []
    train_rounds(policy, ["t0", "t1"], _sampler(policy, prompt, good, seed=1),
                 on_round=rounds.append)
    after = round_data(_round(policy, prompt, good, 8, 8, seed=999), cfg).reward_mean
    assert 0.2 < before < 0.8 and after > max(0.8, before + 0.4), (before, after)
    assert [m["step"] for m in rounds] == list(range(1, 11)) and policy.step == 10
    for m in rounds:
        # every drawn group is live or dropped, every attempt scored
        assert m["live_groups"] + m["dropped_groups"] == m["drawn_groups"] <= 6
        assert m["attempts"] == 8 * m["drawn_groups"] == m["scored"]
        if m["loss"] is not None:
            # On-policy, one update per round, same numerics: ratio 1, nothing clipped
            assert m["logp_gap_max"] < 1e-3 and m["clip_frac"] == 0.0
            assert m["is_ratio_max"] == pytest.approx(1.0, abs=1e-3)
            assert m["is_capped_frac"] == 0.0
    assert any(m["loss"] is not None for m in rounds)


def test_grpo_step_measures_and_caps_the_trainer_sampler_ratio(tiny_dir, tokenizer):
    """A sampler whose log-probs are lower by log 3 on every other model token (rho = 3
    there): TIS caps those tokens and the step reports the ratio's mean, max and capped
    share; a token mask removes the same tokens."""
    import math

    from codemill.train.steps import with_prox

    trace = _chat_trace(tokenizer, "Act.", [GOOD], [])
    for mode, key in (("tis", "is_capped_frac"), ("mask_token", "is_masked_frac")):
        policy = load_policy(tiny_dir, TrainConfig(lr=1e-3, threads=1, correction=mode,
                                                   is_cap=2.0))
        seq = from_trace(trace, advantage=1.0)
        [own] = with_prox(policy, [seq])
        shifted = [i for i, m in enumerate(seq.mask) if m][::2]
        sampler = tuple(lp - math.log(3.0) if i in shifted else lp
                        for i, lp in enumerate(own.prox_logprobs))
        m = grpo_step(policy, [replace(seq, old_logprobs=sampler)])
        n = seq.loss_tokens
        assert m[key] == pytest.approx(len(shifted) / n)
        assert m["is_ratio_max"] == pytest.approx(3.0, rel=1e-3)
        assert m["is_ratio_mean"] == pytest.approx((3 * len(shifted) + n - len(shifted)) / n,
                                                   rel=1e-3)
        assert m["logp_gap_max"] == pytest.approx(math.log(3.0), rel=1e-3)


def test_bf16_training_against_an_fp32_sampler_engages_the_correction(tiny_dir, tokenizer):
    """The trainer in bf16 autocast, the sampler's log-probs from fp32: the two disagree,
    the step reports the gap and the ratio, and TIS caps the tokens beyond its cap; the
    same sequences trained in fp32 show ratio 1 and nothing capped."""
    from codemill.train.steps import with_prox

    seqs = [from_trace(_chat_trace(tokenizer, f"Act {i}.", [GOOD if i % 2 else BAD], []),
                       advantage=0.5 if i % 2 else -0.5) for i in range(4)]
    fp32 = load_policy(tiny_dir, TrainConfig(lr=1e-3, threads=1, micro_batch=4))
    sampled = [replace(s, old_logprobs=s.prox_logprobs, prox_logprobs=None)
               for s in with_prox(fp32, seqs)]
    stats = {}
    for precision in ("fp32", "bf16"):
        policy = load_policy(tiny_dir, TrainConfig(lr=1e-3, threads=1, micro_batch=4,
                                                   precision=precision, is_cap=1.001))
        stats[precision] = grpo_step(policy, sampled)
    assert stats["fp32"]["logp_gap_max"] < 1e-5 and stats["fp32"]["is_capped_frac"] == 0.0
    bf16 = stats["bf16"]
    assert bf16["logp_gap_max"] > 1e-3 and bf16["is_ratio_max"] > 1.001
    assert 0.0 < bf16["is_capped_frac"] < 1.0


def test_several_updates_a_round_clip_against_the_first_log_probs(tiny_dir, tokenizer):
    """``updates=4``: four optimizer steps on one round's sequences, each against the
    log-probs before the first; a large step moves the ratio past the clip, and clipped
    tokens are counted."""
    seqs = [from_trace(_chat_trace(tokenizer, f"Act {i}.", [GOOD if i % 2 else BAD], []),
                       advantage=0.5 if i % 2 else -0.5) for i in range(8)]
    from codemill.train.steps import with_prox

    policy = load_policy(tiny_dir, TrainConfig(lr=5e-2, threads=1, updates=4, micro_batch=8))
    # the sampler's log-probs: the trainer's own (a sampler with the same numerics)
    seqs = [replace(s, old_logprobs=s.prox_logprobs, prox_logprobs=None)
            for s in with_prox(policy, seqs)]
    m = grpo_step(policy, seqs)
    assert m["updates"] == 4 and policy.step == 1 and m["sequences"] == 8
    assert 0.0 < m["clip_frac"] < 1.0
    assert m["is_ratio_max"] == pytest.approx(1.0, abs=1e-3)  # same numerics throughout


def test_zero_variance_groups_are_dropped_and_counted():
    trace = TokenTrace(prompt_ids=(1,), completion_ids=(2, 3), loss_mask=(1, 1),
                       logprobs=(-1.0, -1.0))
    samples = [Sample("a", "t1", "g1", trace, 1.0), Sample("b", "t1", "g1", trace, 1.0),
               Sample("c", "t2", "g2", trace, 1.0), Sample("d", "t2", "g2", trace, 0.0),
               Sample("e", "t2", "g2", trace, None),
               Sample("f", "t2", "g2", trace, 0.0, stop_reason="max_tokens")]
    data = round_data(samples, TrainConfig())
    assert data.groups == 2 and data.dead_groups == 1
    assert [s.rollout_id for s in data.seqs] == ["c", "d"]
    assert [s.advantage for s in data.seqs] == [0.5, -0.5]
    assert data.left_out == {"masked": 1, "truncated": 1}
    loo = round_data(samples, TrainConfig(baseline="loo"))
    assert [s.advantage for s in loo.seqs] == [1.0, -1.0]
