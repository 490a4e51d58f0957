"""The Gymnasium adapter on the toy task: a real ``gymnasium.make`` loop with a scripted policy
earns the grader's 1, and with the embedded model the grader's verdict of its diff;
Gymnasium's own checker accepts the environment in both modes."""

from __future__ import annotations

import math

import gymnasium
from gymnasium.utils.env_checker import check_env

from codemill.interop.gym import ENV_ID, AnyText, TaskEnv, register
from codemill.rewards.grader import grade
from codemill.rollouts.session import SessionConfig
from interop.smol import say, verdict
from rollouts.test_rollouts_groups import AGENT, FIX

CONFIG = SessionConfig(agent=AGENT)


def play(env, replies):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["mode"] in ("agent", "patch")
    rewards, turns = [], []
    for reply in replies:
        assert env.action_space.contains(reply)
        obs, reward, terminated, truncated, info = env.step(reply)
        assert env.observation_space.contains(obs)
        rewards.append(reward)
        turns.append(obs)
        if terminated or truncated:
            break
    return obs, rewards, terminated, truncated, info, turns


def test_make_and_a_scripted_policy_earn_one(toy):
    env = gymnasium.make(register(), task=toy.task, env=toy.env, home=toy.home,
                         settings=toy.settings, mode="agent", config=CONFIG)
    assert env.spec.id == ENV_ID and isinstance(env.unwrapped, TaskEnv)
    try:
        obs, info = env.reset(seed=0)
        assert toy.task.problem_statement in obs and '<tool name="submit">' in obs
        _, rewards, terminated, truncated, info, turns = play(env, FIX)
    finally:
        env.close()
    assert "return a - b" in turns[0] and "edited src/calc/ops.py" in turns[1]
    assert rewards == [0.0, 0.0, 1.0] and terminated and not truncated
    assert info["stop_reason"] == "submitted" and info["masked"] is False
    assert info["reward"]["resolved"] is True and info["reward"]["flags"] == []
    assert env.unwrapped.session.fork is None  # the fork went with the episode


def test_a_gymnasium_loop_with_the_embedded_model(toy, smollm2):
    """``gymnasium.make``'s loop with replies sampled from the embedded SmolLM2 (two turns
    at most): the episode ends within its limit and its reward is codemill's native
    grading of the episode's diff."""
    config = SessionConfig(agent=AGENT.model_copy(update={"max_turns": 2}))
    env = gymnasium.make(register(), task=toy.task, env=toy.env, home=toy.home,
                         settings=toy.settings, mode="agent", config=config)
    try:
        obs, _ = env.reset(seed=0)
        chat, steps = [{"role": "user", "content": obs}], 0
        while True:
            reply = say(smollm2, chat).message.content
            obs, reward, terminated, truncated, info = env.step(reply)
            steps += 1
            if terminated or truncated:
                break
            chat += [{"role": "assistant", "content": reply}, {"role": "user", "content": obs}]
        traj = env.unwrapped.session.trajectory
    finally:
        env.close()
    assert 1 <= steps <= 2 and len(traj.steps) == steps
    assert [s.reply.message.content for s in traj.steps][-1] == reply
    assert truncated == (info["stop_reason"] == "max_turns") and not info["masked"]
    native = grade(toy.task, traj.diff, env=toy.env, home=toy.home, settings=toy.settings,
                   rollout_id=traj.rollout_id, policy=traj.policy, trajectory=traj)
    assert reward in (0.0, 1.0) and reward == native.value
    assert {k: v for k, v in info["reward"].items() if k != "policy"} == verdict(native)


def test_wrong_answer_earns_zero_and_limits_truncate(toy):
    config = SessionConfig(agent=AGENT.model_copy(update={"max_turns": 1}))
    env = TaskEnv.from_task(toy.task, toy.env, toy.home, toy.settings, config=config)
    try:
        _, rewards, terminated, truncated, info, _ = play(env, ["```bash\nls\n```"])
        assert rewards == [0.0] and truncated and not terminated
        assert info["stop_reason"] == "max_turns" and not math.isnan(rewards[0])
    finally:
        env.close()
    patch = TaskEnv.from_task(toy.task, toy.env, toy.home, toy.settings, mode="patch")
    try:
        _, rewards, terminated, truncated, info, _ = play(patch, ["2:     return a * b"])
        assert rewards == [0.0] and terminated and info["reward"]["resolved"] is False
        _, rewards, terminated, _, _, _ = play(patch, ["2:     return a + b"])
        assert rewards == [1.0] and terminated
    finally:
        patch.close()


def test_gymnasium_checker_accepts_both_modes(toy):
    for mode in ("agent", "patch"):
        env = gymnasium.make(register(), task=toy.task, env=toy.env, home=toy.home,
                             settings=toy.settings, mode=mode, config=CONFIG).unwrapped
        check_env(env)  # its close check makes a second env and closes it twice
        fork = env.session.fork
        env.close()
        assert env.session.fork is None
        assert fork is None if mode == "patch" else not fork.dir.exists()


def test_text_spaces_hold_any_text():
    space = AnyText(10)
    assert space.contains("é\x00\n✓") and not space.contains("x" * 11)
    assert not space.contains(b"bytes") and space.contains("")
    assert all(space.contains(space.sample()) for _ in range(20))
