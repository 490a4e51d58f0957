"""Expert trajectories: the gold patch acted out through the real agent loop, sandbox and
grader, recorded token-exactly; varied exploration; reward 1."""

import random

import pytest

from codemill.agent.config import AgentConfig
from codemill.agent.models.scripted import ScriptedBackend
from codemill.agent.models.teacher import TeacherBackend
from codemill.core.records import SamplingConfig, StopReason
from codemill.rollouts.plan import RolloutItem
from codemill.rollouts.runner import RolloutContext, prepare_workspaces, run_one
from codemill.train.expert import expert_script

pytestmark = pytest.mark.slow


def test_expert_scripts_vary_and_each_earns_reward_one(toy, tokenizer):
    envs = {toy.env.env_id: toy.env}
    layers = prepare_workspaces([toy.task], envs, toy.home, toy.settings)
    agent = AgentConfig(max_turns=10, command_timeout_s=60, observation_limit=1500)
    scripts = []
    for seed in range(3):
        script = expert_script(toy.task, random.Random(seed))
        scripts.append(tuple(script))
        ctx = RolloutContext(home=toy.home, settings=toy.settings, envs=envs, layers=layers,
                             model=TeacherBackend(ScriptedBackend(script), tokenizer,
                                                  name="expert"), agent=agent)
        result = run_one(ctx, RolloutItem(f"expert-{seed}", toy.task, "expert", seed,
                                          SamplingConfig()))
        traj = result.trajectory
        assert traj.stop_reason == StopReason.SUBMITTED, traj.error
        assert result.reward.value == 1.0 and result.reward.resolved, result.reward
        assert traj.tokens is not None and len(traj.tokens.turns) == len(script)
        assert "return a + b" in traj.diff
    assert len(set(scripts)) == 3  # exploration and wording differ between runs
