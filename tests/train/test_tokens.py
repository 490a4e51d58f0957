"""Token-exact trajectories from the real agent loop, a real sandbox and a local model."""

import pytest

from codemill.agent.config import AgentConfig
from codemill.agent.loop import Agent
from codemill.agent.models.local import TransformersBackend
from codemill.agent.models.sampler import render
from codemill.core.records import SamplingConfig

pytestmark = pytest.mark.slow
TEST_COMMAND = "python3 -m unittest -q"


@pytest.fixture(scope="module")
def tiny_backend(tiny_dir):
    return TransformersBackend(tiny_dir, name="tiny", threads=1)


def _run(backend, sandbox, *, turns=3, tokens=12, seed=5):
    cfg = AgentConfig(max_turns=turns, test_command=TEST_COMMAND, max_format_errors=turns,
                      observation_limit=400,
                      sampling=SamplingConfig(temperature=1.0, max_tokens=tokens, seed=seed))
    return Agent(backend, cfg).run(sandbox, "add() in calc.py subtracts; make it add.",
                                   rollout_id="r", task_id="t")


def test_multi_turn_prompts_extend_token_for_token(tiny_backend, tokenizer, sandbox):
    traj = _run(tiny_backend, sandbox)
    trace = traj.tokens
    assert trace is not None and len(traj.steps) == 3 and len(trace.turns) == 3
    assert len(trace.completion_ids) == len(trace.loss_mask) == len(trace.logprobs)
    # Independent check of the prefix invariant: the tokens before each turn decode to the
    # chat template's rendering of the messages the model was shown at that turn.
    chat = [{"role": "system", "content": traj.system_prompt},
            {"role": "user", "content": traj.task_prompt}]
    for step, (start, end) in zip(traj.steps, trace.turns, strict=True):
        before = list(trace.prompt_ids) + list(trace.completion_ids[:start])
        assert tokenizer.decode(before) == render(tokenizer, chat, True)
        assert trace.completion_ids[start:end] == step.reply.token_ids
        chat.append({"role": "assistant", "content": step.reply.message.content})
        chat += [{"role": "user", "content": o.content} for o in step.observations]


def test_loss_mask_covers_exactly_the_sampled_tokens(tiny_backend, tokenizer, sandbox):
    traj = _run(tiny_backend, sandbox, seed=9)
    trace = traj.tokens
    sampled = [i for i, m in enumerate(trace.loss_mask) if m == 1]
    in_turns = [i for a, b in trace.turns for i in range(a, b)]
    assert sampled == in_turns
    assert [trace.completion_ids[i] for i in sampled] == [
        t for s in traj.steps for t in s.reply.token_ids]
    # Every tool observation shown to the model lies in the masked-out tokens.
    outside = tokenizer.decode([t for t, m in zip(trace.completion_ids, trace.loss_mask,
                                                  strict=True) if m == 0])
    for step in traj.steps[:-1]:
        for obs in step.observations:
            assert obs.content.strip() and obs.content in outside
    assert all(lp == 0.0 for lp, m in zip(trace.logprobs, trace.loss_mask, strict=True)
               if m == 0)


def test_sampler_logprobs_match_a_full_forward_pass(tiny_backend, sandbox):
    """The KV-cached sampler and the trainer's recomputation agree token for token."""
    import torch

    from codemill.train.data import collate, from_trace
    from codemill.train.losses import token_logprobs

    traj = _run(tiny_backend, sandbox, seed=3)
    seq = from_trace(traj.tokens)
    batch = collate([seq], 0, "cpu")
    with torch.no_grad():
        logp = token_logprobs(tiny_backend.model, batch, temperature=1.0)
    mask = batch["mask"] > 0
    gap = (logp - batch["old_logprobs"]).abs()[mask]
    assert mask.sum() == sum(len(s.reply.token_ids) for s in traj.steps)
    assert float(gap.max()) < 1e-4


def test_teacher_records_expert_text_in_the_same_token_layout(tiny_dir, tokenizer, sandbox):
    from codemill.agent.models.scripted import ScriptedBackend
    from codemill.agent.models.teacher import TeacherBackend

    replies = ["Let me look.\n```bash\nls\n```", '<tool name="submit"></tool>']
    teacher = TeacherBackend(ScriptedBackend(replies), tiny_dir)
    cfg = AgentConfig(max_turns=4, test_command=TEST_COMMAND)
    traj = Agent(teacher, cfg).run(sandbox, "fix add", rollout_id="e")
    trace = traj.tokens
    assert traj.stop_reason.value == "submitted" and len(trace.turns) == 2
    for (a, b), text in zip(trace.turns, replies, strict=True):
        assert tokenizer.decode(trace.completion_ids[a:b], skip_special_tokens=True) == text
        assert trace.completion_ids[b - 1] == tokenizer.eos_token_id
    assert "calc.py" in tokenizer.decode(trace.completion_ids)  # the ls output, masked
