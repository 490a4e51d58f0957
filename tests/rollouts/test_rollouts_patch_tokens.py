"""A patch-mode attempt by a local model is one token-exact turn (a tiny random model with
the real SmolLM2 tokenizer, as in ``tests/train``), recorded like an agent rollout."""

from __future__ import annotations

from codemill.core.records import SamplingConfig
from codemill.rollouts.plan import RolloutConfig
from codemill.rollouts.runner import run_rollouts
from codemill.store.rows import trajectory_row
from train.conftest import smollm2_dir, tiny_dir, tokenizer  # noqa: F401 (fixtures)


def test_local_model_attempt_is_one_token_exact_turn(toy, tiny_dir, tokenizer):  # noqa: F811
    config = RolloutConfig(group_size=2, mode="patch",
                           sampling=SamplingConfig(temperature=1.0, max_tokens=24, seed=3))
    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=f"transformers:{tiny_dir}", config=config)
    assert len(batch.results) == 2 and batch.failed == []
    for r in batch.results:
        traj, trace = r.trajectory, r.trajectory.tokens
        [step] = traj.steps
        reply = step.reply
        assert trace is not None and trace.turns == ((0, len(reply.token_ids)),)
        assert trace.prompt_ids == reply.prompt_token_ids
        assert trace.completion_ids == reply.token_ids and set(trace.loss_mask) == {1}
        assert len(trace.logprobs) == len(trace.completion_ids) > 0
        # the prompt tokens are the patch prompt, rendered by the model's own template
        assert "1: def add(a, b):" in tokenizer.decode(list(trace.prompt_ids))
        assert tokenizer.decode(list(reply.token_ids), skip_special_tokens=True).strip() == \
            reply.message.content.strip()
        # a random model's answer is malformed or wrong: graded, never dropped
        assert r.reward is not None and r.reward.value == 0.0 and not r.reward.masked
        row = trajectory_row(traj, r.item.group_id)
        assert row is not None and row["rollout_id"] == traj.rollout_id
    assert batch.results[0].item.group_id == batch.results[1].item.group_id
