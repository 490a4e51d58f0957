"""SFT and GRPO on a tiny random model with the real tokenizer: the losses do their job."""

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
    losses = [sft_step(policy, seqs)["loss"] for _ in range(60)]
    assert losses[0] > 5.0  # a random model: about ln(49152) = 10.8 per token
    assert losses[-1] < 0.05, losses[-10:]
    assert policy.step == 60
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


def test_grpo_raises_the_mean_reward_where_a_better_action_exists(tiny_dir, tokenizer):
    """SFT on two actions for one prompt leaves the policy split between them; GRPO,
    rewarded for the better one, moves the policy to it."""
    from codemill.agent.models.sampler import encode

    both = [_chat_trace(tokenizer, "Act.", [reply], []) for reply in (GOOD, BAD)]
    prompt = list(both[0].prompt_ids)
    good = encode(tokenizer, GOOD)[0]
    assert good != encode(tokenizer, BAD)[0]
    cfg = TrainConfig(lr=1e-2, micro_batch=16, threads=1, group_size=8)
    policy = load_policy(tiny_dir, cfg)
    for _ in range(25):
        sft_step(policy, [from_trace(t) for t in both])
    before = round_data(_round(policy, prompt, good, 8, 8, seed=999), cfg).reward_mean
    for group in policy.optimizer.param_groups:
        group["lr"] = 3e-3
    dead = 0
    for step in range(10):
        data = round_data(_round(policy, prompt, good, 2, 8, seed=step), cfg)
        dead += data.dead_groups
        if data.seqs:
            metrics = grpo_step(policy, data.seqs)
            # On-policy, one update per round: the trainer's log-probs are the sampler's.
            assert metrics["logp_gap_max"] < 1e-3 and metrics["clip_frac"] == 0.0
    after = round_data(_round(policy, prompt, good, 8, 8, seed=999), cfg).reward_mean
    assert 0.2 < before < 0.8 and after > max(0.8, before + 0.4), (before, after, dead)
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
