"""The batched sampler (``codemill.agent.models.engine``) is token-exact.

A small randomly initialised Llama stands in for the real model: the properties checked are
mechanical (what a row sees, what a stash holds, what a swap changes), and they hold for any
causal LM. Sequences run through the real engine thread, submitted from real threads.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from codemill.agent.models.engine import BatchedEngine
from codemill.core.errors import ModelError
from codemill.core.records import SamplingConfig

TOL = 1e-4


def _model(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture
def engine(model):
    eng = BatchedEngine(model)
    yield eng
    eng.close()


def _prompt(n: int, start: int = 5) -> list[int]:
    return [(start + 7 * i) % 290 + 3 for i in range(n)]


def _together(engine, requests):
    """Submit every ``(ids, saved, sampling, stops)`` at once from its own thread."""
    results: list = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def go(i):
        barrier.wait()
        results[i] = engine.generate(*requests[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _close(a, b):
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def test_a_sequence_samples_the_same_alone_or_beside_others_of_other_lengths(engine):
    # 5 x 48 tokens at temperature 1. (The tiny test model does not catch a draw that is
    # sensitive to rounding, such as inverse-CDF over the whole vocabulary: its logits differ
    # too little between batch shapes; bench_sampler's same-tokens check on SmolLM2 does.)
    sampling = SamplingConfig(temperature=1.0, max_tokens=48, seed=3)
    prompts = [_prompt(n, start=n) for n in (4, 37, 90, 11, 60)]
    alone = [engine.generate(p, None, sampling, set()) for p in prompts]
    engine.prefixes.clear()
    together = _together(engine, [(p, None, sampling, set()) for p in prompts])
    for a, b in zip(alone, together, strict=True):
        assert a.ids == b.ids
        assert _close(a.logprobs, b.logprobs) < TOL
    assert engine.batch_rows > engine.steps / 2  # rows really shared decode steps


def test_logprobs_equal_the_trainers_forward_pass(model, engine):
    from codemill.train.data import TrainSeq, collate
    from codemill.train.losses import token_logprobs

    sampling = SamplingConfig(temperature=0.7, max_tokens=16, seed=11)
    prompt = _prompt(40)
    turn = engine.generate(prompt, None, sampling, set())
    ids = tuple(prompt + turn.ids)
    mask = (0,) * len(prompt) + (1,) * len(turn.ids)
    batch = collate([TrainSeq(ids, mask, (0.0,) * len(ids))], pad_id=0, device="cpu")
    with torch.no_grad():
        logp = token_logprobs(model, batch, temperature=0.7)[0]
    trainer = [float(logp[len(prompt) - 1 + i]) for i in range(len(turn.ids))]
    assert _close(trainer, turn.logprobs) < TOL


def test_both_linear_kernels_sample_the_same_tokens_and_log_probs(model, engine):
    # the engine computes a step's linear layers through oneDNN (``onednn``); torch's own
    # kernel must sample the same tokens with the same log-probs up to rounding
    plain = BatchedEngine(model, onednn=False)
    try:
        sampling = SamplingConfig(temperature=1.0, max_tokens=24, seed=5)
        prompts = [_prompt(n, start=n) for n in (6, 41, 23)]
        ours = _together(engine, [(p, None, sampling, set()) for p in prompts])
        torchs = _together(plain, [(p, None, sampling, set()) for p in prompts])
    finally:
        plain.close()
    assert engine.onednn and not plain.onednn
    for a, b in zip(ours, torchs, strict=True):
        assert a.ids == b.ids
        assert _close(a.logprobs, b.logprobs) < TOL


def test_the_thread_count_changes_no_token_and_a_fixed_one_is_kept(model):
    # by default a step runs on the cores other processes leave free (``cores``); the count
    # changes how kernels split their work, never what is sampled
    sampling = SamplingConfig(temperature=1.0, max_tokens=16, seed=9)
    prompts = [_prompt(n, start=n) for n in (9, 30)]
    got = {}
    for n in (1, 2):
        eng = BatchedEngine(model, threads=n)
        try:
            got[n] = _together(eng, [(p, None, sampling, set()) for p in prompts])
        finally:
            eng.close()
        assert set(eng.thread_steps) == {n} and sum(eng.thread_steps.values()) == eng.steps
    for a, b in zip(got[1], got[2], strict=True):
        assert a.ids == b.ids
        assert _close(a.logprobs, b.logprobs) < TOL


def test_a_sequence_that_stops_early_does_not_disturb_the_others(engine):
    greedy = SamplingConfig(temperature=0.0, max_tokens=10)
    prompts = [_prompt(n, start=2 * n) for n in (20, 33, 47)]
    alone = [engine.generate(p, None, greedy, set()) for p in prompts]
    stop = alone[0].ids[2]  # the first sequence will stop at its third token
    together = _together(engine, [(prompts[0], None, greedy, {stop})]
                         + [(p, None, greedy, set()) for p in prompts[1:]])
    assert together[0].stopped and together[0].ids == alone[0].ids[:alone[0].ids.index(stop)
                                                                     + 1]
    for a, b in zip(alone[1:], together[1:], strict=True):
        assert a.ids == b.ids and len(b.ids) == 10 and not b.stopped
        assert _close(a.logprobs, b.logprobs) < TOL


def test_a_conversation_keeps_its_cache_across_turns_and_a_prefix_is_reused(engine):
    sampling = SamplingConfig(temperature=1.0, max_tokens=8, seed=5)
    prompt = _prompt(80)
    first = engine.generate(prompt, None, sampling, set())
    assert first.saved.length == len(prompt) + len(first.ids) - 1
    ids = prompt + first.ids + _prompt(9, start=100)
    kept = engine.generate(ids, first.saved, sampling, set())
    engine.prefixes.clear()
    fresh = engine.generate(ids, None, sampling, set())
    assert kept.ids == fresh.ids and _close(kept.logprobs, fresh.logprobs) < TOL
    # A new conversation with the same first 80 tokens starts from the cached prompt.
    hits = engine.prefixes.hits
    again = engine.generate(prompt + [7, 8, 9], None, sampling, set())
    engine.prefixes.clear()
    cold = engine.generate(prompt + [7, 8, 9], None, sampling, set())
    assert engine.prefixes.hits == hits + 1
    assert again.ids == cold.ids and _close(again.logprobs, cold.logprobs) < TOL


def test_swapped_weights_serve_the_next_turns_and_drop_old_caches(model, engine):
    greedy = SamplingConfig(temperature=0.0, max_tokens=6)
    prompt = _prompt(30)
    before = engine.generate(prompt, None, greedy, set())
    other = _model(seed=1)
    engine.swap(other, "policy-2")
    reference = BatchedEngine(other)
    try:
        ids = prompt + before.ids
        after = engine.generate(ids, before.saved, greedy, set())  # the stale stash
        expected = reference.generate(ids, None, greedy, set())
    finally:
        reference.close()
    assert after.policy == "policy-2" and after.saved.version == engine.version
    assert after.ids == expected.ids and _close(after.logprobs, expected.logprobs) < TOL


def test_a_conversation_past_the_context_is_an_error_not_a_hang(engine):
    with pytest.raises(ModelError, match="context"):
        engine.generate(_prompt(600), None, SamplingConfig(max_tokens=4), set())
    # the engine still serves
    assert len(engine.generate(_prompt(10), None, SamplingConfig(max_tokens=3,
                                                                  temperature=0.0),
                               set()).ids) == 3



def test_a_group_with_one_prompt_prefills_it_once(engine):
    prompt = _prompt(120)
    requests = [(prompt, None, SamplingConfig(temperature=1.0, max_tokens=5, seed=s), set())
                for s in range(8)]
    alone = [engine.generate(*r) for r in requests[:2]]
    engine.prefixes.clear()
    hits, reused = engine.prefixes.hits, engine.prefixes.reused_tokens
    together = _together(engine, requests)
    # One sample prefilled the prompt; the other seven restored all but its last token.
    assert engine.prefixes.hits - hits == 7
    assert engine.prefixes.reused_tokens - reused == 7 * (len(prompt) - 1)
    for a, b in zip(alone, together[:2], strict=True):
        assert a.ids == b.ids and _close(a.logprobs, b.logprobs) < TOL


def test_an_idle_engine_gives_its_storage_back_and_samples_the_same_after(model):
    engine = BatchedEngine(model, release_after_s=0.2)
    try:
        sampling = SamplingConfig(temperature=1.0, max_tokens=8, seed=11)
        prompt = _prompt(70)
        first = engine.generate(prompt, None, sampling, set())
        second = engine.generate(prompt, None, sampling, set())  # from the prefix cache
        deadline = time.monotonic() + 10
        while engine.releases == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.releases == 1 and engine.held_bytes == 0
        # The conversation's next turn restores its own stash into new storage, and a new
        # conversation prefills from nothing: the same tokens as an engine never released.
        ids = prompt + first.ids + _prompt(9, start=100)
        kept = engine.generate(ids, first.saved, sampling, set())
        again = engine.generate(prompt, None, sampling, set())
        assert engine.held_bytes > 0
    finally:
        engine.close()
    reference = BatchedEngine(model, release_after_s=3600)
    try:
        expected = reference.generate(ids, None, sampling, set())
    finally:
        reference.close()
    assert again.ids == second.ids == first.ids
    assert kept.ids == expected.ids and _close(kept.logprobs, expected.logprobs) < TOL


def test_a_closed_engine_holds_no_storage_while_something_still_holds_it(model):
    # An engine kept alive after close (by a reference cycle, or a caller) must not keep
    # gigabytes of keys and values alive with it: GRPO opens one engine a draw.
    engine = BatchedEngine(model, release_after_s=3600)  # never released for idleness
    sampling = SamplingConfig(temperature=1.0, max_tokens=8, seed=3)
    engine.generate(_prompt(70), None, sampling, set())
    assert engine.held_bytes > 0
    engine.close()
    assert not engine._thread.is_alive()
    assert engine.held_bytes == 0 and engine.releases == 1
    with pytest.raises(ModelError):
        engine.generate(_prompt(10), None, sampling, set())
