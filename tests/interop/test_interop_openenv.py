"""The OpenEnv adapter on the toy task: OpenEnv's own FastAPI server on a loopback port and its
WebSocket client, driven by a scripted policy, earn the grader's reward; driven by the embedded
model, the same verdict as codemill's own agent replaying its replies; a closed connection leaves
no fork behind."""

from __future__ import annotations

import time

import httpx
import pytest

from codemill.agent.models.scripted import ScriptedBackend
from codemill.interop.open_env import TaskAction, TaskClient, task_app
from codemill.rollouts.plan import RolloutConfig
from codemill.rollouts.runner import run_rollouts
from codemill.rollouts.session import SessionConfig
from interop.served import Served, forks
from interop.smol import say, verdict
from rollouts.test_rollouts_groups import AGENT, FIX

CONFIG = SessionConfig(agent=AGENT)


def test_client_loop_over_loopback_earns_the_graders_reward(toy):
    app = task_app(toy.task, toy.env, toy.home, toy.settings, config=CONFIG, max_sessions=2)
    before = forks(toy)
    with Served(app) as served:
        assert httpx.get(f"{served.url}/health").json()["status"] == "healthy"
        with TaskClient(base_url=served.url).sync() as client:
            result = client.reset()
            first = result.observation
            assert not result.done and result.reward is None
            assert [m["role"] for m in first.messages] == ["system", "user"]
            assert first.messages[1]["content"] == toy.task.problem_statement
            assert '<tool name="submit"></tool>' in first.text
            assert len(forks(toy) - before) == 1  # this connection's fork
            rewards = []
            for reply in FIX:
                result = client.step(TaskAction(text=reply))
                rewards.append(result.reward)
            assert result.done and rewards == [0.0, 0.0, 1.0]
            final = result.observation
            assert final.stop_reason == "submitted" and not final.truncated
            assert final.verdict["resolved"] is True and final.verdict["masked"] is False
            state = client.state()
            assert state.done and state.step_count == 3 and state.task_id == toy.task.task_id
            with pytest.raises(RuntimeError, match="episode is over"):
                client.step(TaskAction(text=FIX[2]))
            # a second episode on the same connection: a wrong edit earns 0
            client.reset()
            wrong = FIX[1].replace("a + b", "a * b")
            client.step(TaskAction(text=wrong))
            result = client.step(TaskAction(text=FIX[2]))
            assert result.done and result.reward == 0.0
        deadline = time.monotonic() + 10  # the server closes the session as it disconnects
        while forks(toy) != before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert forks(toy) == before


def test_patch_mode_over_the_client(toy):
    app = task_app(toy.task, toy.env, toy.home, toy.settings, mode="patch")
    with Served(app) as served, TaskClient(base_url=served.url).sync() as client:
        first = client.reset().observation
        assert "1: def add(a, b):" in first.text and first.messages[0]["role"] == "system"
        result = client.step(TaskAction(text="2:     return a + b"))
        assert result.done and result.reward == 1.0
        assert result.observation.stop_reason == "submitted"


def test_client_loop_with_the_embedded_model(toy, smollm2):
    """The client's loop with replies sampled from the embedded SmolLM2 (two turns at most):
    the episode ends within its limit with the verdict codemill's own agent loop reaches
    replaying the same replies (its native rollout and grading)."""
    agent = AGENT.model_copy(update={"max_turns": 2})
    app = task_app(toy.task, toy.env, toy.home, toy.settings,
                   config=SessionConfig(agent=agent), max_sessions=1)
    with Served(app) as served, TaskClient(base_url=served.url).sync() as client:
        result = client.reset()
        chat, replies = list(result.observation.messages), []
        while not result.done:
            replies.append(say(smollm2, chat).message.content)
            result = client.step(TaskAction(text=replies[-1]))
            chat += [{"role": "assistant", "content": replies[-1]},
                     *result.observation.messages]
        state = client.state()
    final = result.observation
    assert 1 <= len(replies) <= 2 and state.done and state.step_count == len(replies)
    assert final.verdict["masked"] is False and result.reward in (0.0, 1.0)
    [native] = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                            model=ScriptedBackend(replies), config=RolloutConfig(group_size=1),
                            agent=agent).results
    assert final.stop_reason == native.trajectory.stop_reason
    assert len(native.trajectory.steps) == len(replies)
    assert result.reward == native.reward.value
    assert {k: v for k, v in final.verdict.items() if k != "policy"} == verdict(native.reward)
