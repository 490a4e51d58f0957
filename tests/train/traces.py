"""Token traces laid out exactly as the agent's local backends lay them out."""

from codemill.agent.models.sampler import TokenConversation
from codemill.core.records import TokenTrace


def chat_trace(tokenizer, task: str, replies: list[str], observations: list[str]) -> TokenTrace:
    """A two-turn conversation laid out exactly as the agent's backends lay it out."""
    from codemill.agent.models.sampler import encode

    conv = TokenConversation()
    chat = [{"role": "system", "content": "You fix code."}, {"role": "user", "content": task}]
    _, prompt = conv.continue_with(tokenizer, chat)
    ids, mask = [], []
    for i, reply in enumerate(replies):
        if i:
            chat = chat + [{"role": "user", "content": observations[i - 1]}]
            _, bridge = conv.continue_with(tokenizer, chat)
            ids += bridge
            mask += [0] * len(bridge)
        sampled = encode(tokenizer, reply) + [tokenizer.eos_token_id]
        conv.record_reply({"role": "assistant", "content": reply}, sampled, sampled[-1])
        chat = chat + [{"role": "assistant", "content": reply}]
        ids += sampled
        mask += [1] * len(sampled)
    return TokenTrace(prompt_ids=tuple(prompt), completion_ids=tuple(ids),
                      loss_mask=tuple(mask), logprobs=(0.0,) * len(ids))
