"""Replies of the embedded model for the adapters' client loops, and the native grading that
their rewards must equal.

The loops are the packages' own; only the policy is codemill's embedded SmolLM2, sampled
greedily with a short budget so that each test costs one or two short turns.
"""

from __future__ import annotations

from codemill.core.records import Message, ModelReply, SamplingConfig

MAX_TOKENS = 32
SAMPLING = SamplingConfig(max_tokens=MAX_TOKENS)  # greedy (temperature 0)
# Reward fields that name the attempt or time it, not what the grader concluded.
ATTEMPT = {"reward_id", "rollout_id", "policy", "grading_seconds"}


def say(backend, chat: list[dict[str, str]]) -> ModelReply:
    """The model's reply to ``chat`` (role/content dicts), checked to be a real sample."""
    reply = backend.complete([Message(role=m["role"], content=m["content"]) for m in chat],
                             sampling=SAMPLING)
    assert 0 < reply.completion_tokens <= MAX_TOKENS
    assert len(reply.token_ids) == reply.completion_tokens == len(reply.logprobs)
    return reply


def verdict(reward) -> dict:
    """What the grader concluded about an attempt, without what names or times it."""
    return reward.model_dump(mode="json", exclude=ATTEMPT)
