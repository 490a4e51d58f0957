"""A rollout's token-exact record (``TokenTrace``), assembled from its replies' token ids.

A token-exact backend (``codemill.agent.models.local``) answers each turn with the prompt
tokens it *appended* since its previous reply (``prompt_token_ids`` at ``prompt_offset``)
and the tokens it sampled. Laid end to end they are the whole conversation as the model saw
it; nothing is re-tokenized from chat text (that drifts: TRL #5224, veRL's agent-loop
notes). ``token_trace`` checks the chain: every turn's prompt must extend the previous
turn's prompt plus its sampled tokens exactly, or it raises ``ModelError``.
"""

from __future__ import annotations

from collections.abc import Sequence

from codemill.core.errors import ModelError
from codemill.core.records import SamplingConfig, Step, TokenTrace


def token_trace(steps: Sequence[Step], sampling: SamplingConfig) -> TokenTrace | None:
    """The trace of ``steps``; None when the backend recorded no tokens (an API model).

    Raises ``ModelError`` when a turn's prompt does not extend the previous one (the
    backend lost the conversation and re-encoded it): such a record would train on tokens
    the model never saw.
    """
    replies = [s.reply for s in steps]
    if not replies or not any(r.prompt_token_ids for r in replies):
        return None
    first = replies[0]
    if first.prompt_offset != 0 or not first.prompt_token_ids:
        raise ModelError("token trace: the first turn does not start a fresh conversation")
    ids: list[int] = []
    mask: list[int] = []
    logps: list[float] = []
    turns: list[tuple[int, int]] = []
    length = 0  # tokens of the conversation so far, prompt included
    hashes = {r.tokenizer_hash for r in replies}
    if len(hashes) != 1:
        raise ModelError("token trace: turns were tokenized by different tokenizers")
    for i, reply in enumerate(replies):
        if reply.prompt_offset != length:
            raise ModelError(f"token trace: turn {i}'s prompt starts at token "
                             f"{reply.prompt_offset}, not at {length}: it does not extend "
                             "the previous turn")
        if len(reply.logprobs) != len(reply.token_ids):
            raise ModelError(f"token trace: turn {i} has {len(reply.token_ids)} tokens but "
                             f"{len(reply.logprobs)} log-probs")
        if i > 0:
            ids += reply.prompt_token_ids
            mask += [0] * len(reply.prompt_token_ids)
            logps += [0.0] * len(reply.prompt_token_ids)
        start = len(ids)
        ids += reply.token_ids
        mask += [1] * len(reply.token_ids)
        logps += reply.logprobs
        turns.append((start, len(ids)))
        length += len(reply.prompt_token_ids) + len(reply.token_ids)
    return TokenTrace(prompt_ids=first.prompt_token_ids, completion_ids=tuple(ids),
                      loss_mask=tuple(mask), logprobs=tuple(logps), turns=tuple(turns),
                      tokenizer_hash=first.tokenizer_hash, temperature=sampling.temperature,
                      top_p=sampling.top_p, top_k=sampling.top_k)
