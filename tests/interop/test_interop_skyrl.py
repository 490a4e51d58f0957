"""The SkyRL-gym adapter on the toy task: SkyRL's own make/init/step/close loop with a scripted
policy earns the grader's 1 for a fix and 0 for a wrong answer, from live records (agent mode)
and from a veRL Parquet row's extras (patch mode); the embedded model's answer earns codemill's
native grading of its diff."""

from __future__ import annotations

import skyrl_gym

from codemill.interop.datasets import task_rows, verl_rows
from codemill.interop.skyrl_env import ENV_ID, CodemillTextEnv, register
from codemill.rewards.grader import grade
from codemill.rollouts.session import SessionConfig
from interop.smol import say, verdict
from rollouts.test_rollouts_groups import AGENT, FIX


def generate(extras, policy):
    """SkyRL's generator loop (``SkyRLGymGenerator.agent_loop``); ``policy`` is the replies
    in order (scripted) or a function of the chat so far (a model)."""
    env = skyrl_gym.make(register(), env_config=None, extras=extras)
    replies = iter(policy) if isinstance(policy, list) else None
    try:
        assert isinstance(env, CodemillTextEnv) and env.spec.id == ENV_ID
        chat, _ = env.init([{"role": "user", "content": "the dataset's prompt"}])
        outs = []
        while True:
            reply = next(replies) if replies is not None else policy(chat)
            out = env.step(reply)
            outs.append(out)
            if out["done"]:
                break
            chat += [{"role": "assistant", "content": reply}, *out["observations"]]
        return chat, outs, env.get_metrics(), env
    finally:
        env.close()


def test_agent_mode_fix_earns_one_and_a_wrong_edit_zero(toy):
    live = {"task": toy.task, "env": toy.env, "home": toy.home, "settings": toy.settings,
            "config": SessionConfig(agent=AGENT)}
    chat, outs, metrics, env = generate(live, FIX)
    assert chat[0]["role"] == "system" and '<tool name="submit">' in chat[0]["content"]
    assert chat[1]["content"] == toy.task.problem_statement
    assert "return a - b" in chat[3]["content"]  # the cat's output came back
    assert [o["reward"] for o in outs] == [0.0, 0.0, 1.0] and outs[-1]["done"]
    assert outs[-1]["observations"] == [] and outs[-1]["metadata"]["masked"] is False
    assert outs[-1]["metadata"]["reward"]["resolved"] is True
    assert metrics == {"steps": 3, "submitted": 1.0} and env.session.fork is None
    wrong = [FIX[1].replace("a + b", "a * b"), FIX[2]]
    _, outs, _, _ = generate(live, wrong)
    assert [o["reward"] for o in outs] == [0.0, 0.0] and outs[-1]["done"]
    assert outs[-1]["metadata"]["stop_reason"] == "submitted"


def test_patch_mode_from_a_verl_row(toy):
    row = verl_rows(task_rows([(toy.task, toy.env)], toy.home, toy.settings), toy.home,
                    toy.settings)[0]
    extras = {"reward_spec": row["reward_model"], "extra_info": row["extra_info"],
              "mode": "patch"}
    chat, outs, _, env = generate(extras, ["2:     return a + b"])
    assert chat == row["prompt"] and env.max_turns == 1
    assert len(outs) == 1 and outs[0]["done"] and outs[0]["reward"] == 1.0
    _, outs, _, _ = generate(extras, ["2:     return a * b"])
    assert outs[0]["done"] and outs[0]["reward"] == 0.0


def test_patch_mode_with_the_embedded_model(toy, smollm2):
    """SkyRL's loop over a veRL row, the answer sampled from the embedded SmolLM2: one step,
    and the reward is codemill's native grading of the answer's diff."""
    row = verl_rows(task_rows([(toy.task, toy.env)], toy.home, toy.settings), toy.home,
                    toy.settings)[0]
    extras = {"reward_spec": row["reward_model"], "extra_info": row["extra_info"],
              "mode": "patch"}
    chat, outs, metrics, env = generate(extras, lambda chat: say(smollm2, chat).message.content)
    traj = env.session.trajectory
    assert chat == row["prompt"] and len(outs) == 1 and outs[0]["done"]
    assert metrics["steps"] == 1 and len(traj.steps) == 1 and env.session.fork is None
    out = outs[0]
    assert out["metadata"]["masked"] is False and out["reward"] in (0.0, 1.0)
    native = grade(toy.task, traj.diff, env=toy.env, home=toy.home, settings=toy.settings,
                   rollout_id=traj.rollout_id, policy=traj.policy, trajectory=traj)
    assert out["reward"] == native.value
    assert {k: v for k, v in out["metadata"]["reward"].items() if k != "policy"} == \
        verdict(native)
