"""Many agents against one local model: concurrent rollouts share one batched sampler.

Real agent loops in real sandboxes, run at once from threads through one
``TransformersBackend`` (the tiny model with the real SmolLM2 tokenizer), and concurrent
HTTP requests to the real ``model serve`` server.
"""

import json
import threading
import urllib.request

import pytest

from codemill.agent.config import AgentConfig
from codemill.agent.loop import Agent
from codemill.agent.models.local import TransformersBackend
from codemill.agent.serve import ModelServer
from codemill.core.records import SamplingConfig
from codemill.sandbox.api import SandboxSpec, open_sandbox

pytestmark = pytest.mark.slow
TEST_COMMAND = "python3 -m unittest -q"


def _agent_run(backend, calc_repo, seed):
    layer, home = calc_repo
    cfg = AgentConfig(max_turns=3, test_command=TEST_COMMAND, max_format_errors=3,
                      observation_limit=300,
                      sampling=SamplingConfig(temperature=1.0, max_tokens=10, seed=seed))
    sandbox = open_sandbox(SandboxSpec(layers=[layer]), home, backend="bwrap")
    try:
        return Agent(backend, cfg).run(sandbox, "add() in calc.py subtracts; make it add.",
                                       rollout_id=f"r{seed}", task_id="t")
    finally:
        sandbox.close()


def test_concurrent_rollouts_are_token_exact_and_batched(tiny_dir, calc_repo):
    backend = TransformersBackend(tiny_dir, name="tiny", threads=1)
    try:
        seeds = [1, 2, 3, 4]
        alone = {s: _agent_run(backend, calc_repo, s) for s in seeds}
        steps_alone = backend.engine.steps
        together: dict[int, object] = {}
        threads = [threading.Thread(target=lambda s=s: together.__setitem__(
            s, _agent_run(backend, calc_repo, s))) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in seeds:
            a, b = alone[s].tokens, together[s].tokens
            assert b is not None and a.completion_ids == b.completion_ids
            assert a.prompt_ids == b.prompt_ids and a.loss_mask == b.loss_mask
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-4
        # The four ran in fewer forward passes than alone: their turns shared batches.
        assert backend.engine.steps - steps_alone < steps_alone
    finally:
        backend.close()


def test_model_serve_batches_concurrent_requests(tiny_dir):
    backend = TransformersBackend(tiny_dir, name="tiny", threads=1)
    server = ModelServer(backend, "127.0.0.1", 0)
    server.start()
    try:
        def ask(i, out):
            body = json.dumps({"model": "tiny", "max_tokens": 12, "temperature": 1.0,
                               "seed": i, "messages": [
                                   {"role": "user", "content": f"Say {i} twice."}]}).encode()
            req = urllib.request.Request(f"{server.url}/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                out[i] = json.loads(resp.read())

        answers: dict[int, dict] = {}
        threads = [threading.Thread(target=ask, args=(i, answers)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == list(range(6))
        assert all(a["usage"]["completion_tokens"] >= 1 for a in answers.values())
        engine = backend.engine
        assert engine.batch_rows > engine.steps  # some decode steps carried several requests
    finally:
        server.shutdown()
        server.server_close()
        backend.close()


def test_a_dropped_backend_stops_its_engine_thread(tiny_dir):
    import gc

    from codemill.agent.models.local import TransformersBackend

    backend = TransformersBackend(tiny_dir, name="tiny", threads=1)
    thread = backend.engine._thread
    assert thread.is_alive()
    del backend
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_an_ended_conversation_lets_its_cache_go_and_the_next_one_starts_fresh(tiny_dir):
    import gc
    import weakref

    from codemill.core.records import Message

    backend = TransformersBackend(tiny_dir, name="tiny", threads=1)
    greedy = SamplingConfig(temperature=0.0, max_tokens=6)
    ask = [Message(role="user", content="add() in calc.py subtracts; make it add.")]
    try:
        first = backend.complete(ask, sampling=greedy)
        cache = weakref.ref(backend._local.conv.cache.kv)
        backend.end_conversation()
        gc.collect()
        assert cache() is None  # nothing else kept the turn's keys and values
        again = backend.complete(ask, sampling=greedy)
    finally:
        backend.close()
    assert again.prompt_offset == 0 and again.token_ids == first.token_ids
