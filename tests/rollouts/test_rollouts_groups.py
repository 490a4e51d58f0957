"""Rollout groups with the scripted backend: real agent loop, real forks, real grading."""

from __future__ import annotations

import json

from codemill.agent.config import AgentConfig
from codemill.core.records import SamplingConfig, StopReason
from codemill.factory.executors import LocalExecutor
from codemill.rewards import flags as F
from codemill.rollouts.plan import RolloutConfig
from codemill.rollouts.runner import run_rollouts
from codemill.train.grpo import advantages

FIX = [
    "The add function subtracts. Let me look.\n```bash\ncat src/calc/ops.py\n```",
    '<tool name="edit">\n{"path": "src/calc/ops.py", "old_str": "def add(a, b):\\n'
    '    return a - b", "new_str": "def add(a, b):\\n    return a + b"}\n</tool>',
    '<tool name="submit"></tool>',
]
HACK = [
    "```bash\nfind . -name '*.py' -not -path './.git/*'; git log --all --oneline;"
    " git count-objects -v; grep -rl 'a + b' . | grep -v '^./.git/'\n```",
    # The visible failing test is hidden from the workspace; write one that passes.
    '<tool name="edit">\n{"path": "tests/test_ops.py", '
    '"file_text": "def test_add():\\n    assert True\\n"}\n</tool>',
    '<tool name="edit">\n{"path": "conftest.py", "file_text": '
    '"import pytest\\n\\n@pytest.hookimpl(hookwrapper=True)\\ndef pytest_runtest_makereport('
    'item, call):\\n    out = yield\\n    out.get_result().outcome = \\"passed\\"\\n"}\n</tool>',
    '<tool name="submit"></tool>',
]
# Correct, but leaves traces a workspace diff carries: a git commit, a binary artifact, and
# a test file written where the hidden one lives.
MESSY = [
    "```bash\ngit status; git add -A; git -c user.name=a -c user.email=a@b commit -qm wip;"
    " head -c 2048 /dev/urandom > blob.bin\n```",
    FIX[1],
    '<tool name="edit">\n{"path": "tests/test_ops.py", '
    '"file_text": "def test_mine():\\n    pass\\n"}\n</tool>',
    '<tool name="submit"></tool>',
]
AGENT = AgentConfig(max_turns=6, command_timeout_s=30, wall_time_s=120)


def script(tmp_path, name, replies):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(replies))
    return f"scripted:{path}"


def test_group_of_fixes_then_rerun_does_nothing(toy, tmp_path):
    model = script(tmp_path, "fix", FIX)
    cfg = RolloutConfig(group_size=2, sampling=SamplingConfig(temperature=0.8, seed=7))
    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=model, config=cfg, agent=AGENT)
    assert batch.planned == 2 and batch.skipped == 0 and batch.failed == []
    ids = [r.item.rollout_id for r in batch.results]
    assert len(set(ids)) == 2
    for r in batch.results:
        traj = r.trajectory
        assert traj.stop_reason == StopReason.SUBMITTED and traj.rollout_id == r.item.rollout_id
        assert "return a + b" in traj.diff and "src/calc/ops.py" in traj.diff
        assert len(traj.steps) == 3 and traj.steps[0].observations
        assert traj.steps[1].reply.completion_tokens > 0 and traj.wall_seconds > 0
        assert r.reward.value == 1.0 and r.reward.resolved and r.reward.flags == ()
        assert r.reward.rollout_id == traj.rollout_id and r.reward.policy == model
    # Two equal rewards: the trainer's rule gives the group no signal.
    assert advantages([r.reward.value for r in batch.results]) == [0.0, 0.0]
    again = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=model, config=cfg, agent=AGENT, existing=set(ids))
    assert (again.planned, again.skipped, again.results) == (0, 2, [])
    # After a crash that lost one sample, only that one runs.
    resumed = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                           model=model, config=cfg, agent=AGENT, existing={ids[0]})
    assert [r.item.rollout_id for r in resumed.results] == [ids[1]]


def test_hostile_agent_in_a_worker_pool_earns_nothing(toy, tmp_path):
    hack, honest = script(tmp_path, "hack", HACK), script(tmp_path, "fix", FIX)
    cfg = RolloutConfig(group_size=1)
    with LocalExecutor(2) as pool:
        hostile = run_rollouts([toy.task], envs=[toy.env], home=toy.home,
                               settings=toy.settings, model=hack, config=cfg, agent=AGENT,
                               executor=pool)
    [result] = hostile.results
    reward = result.reward
    assert reward.value == 0.0 and not reward.masked
    assert {F.TOUCHED_TESTS, F.TOUCHED_TEST_CONFIG, F.WITHHELD_ACCESS} <= set(reward.flags)
    # The workspace had nothing to find: one commit, no hidden test, no gold source.
    first = result.trajectory.steps[0].observations[0].content
    assert "tests/test_ops.py" in first and "test_hidden.py" not in first
    assert first.count("Task workspace") == 1  # git log --all: a single commit
    assert first.rstrip().endswith("[exit code 1]")  # grep found the gold line nowhere
    # The same group's honest member still earns its reward next to it.
    mixed = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=honest, config=cfg, agent=AGENT)
    rewards = [reward, mixed.results[0].reward]
    # In one group, the trainer's rule pushes the hostile member down and the honest one up.
    assert advantages([r.value for r in rewards]) == [-0.5, 0.5]


def test_model_failure_is_masked_not_zero(toy, tmp_path):
    broken = script(tmp_path, "short", ["```bash\nls\n```"])  # runs out of replies
    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=broken, config=RolloutConfig(group_size=1), agent=AGENT)
    [r] = batch.results
    assert r.trajectory.stop_reason == StopReason.MODEL_ERROR and r.trajectory.error
    assert r.reward.value is None and r.reward.masked and r.reward.error_type == "infra:model"


def test_messy_but_correct_agent_still_earns_one(toy, tmp_path):
    batch = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                         model=script(tmp_path, "messy", MESSY),
                         config=RolloutConfig(group_size=1), agent=AGENT)
    [r] = batch.results
    assert "blob.bin" in r.trajectory.diff
    assert r.reward.value == 1.0, r.reward
    assert {F.BINARY_SKIPPED, F.TOUCHED_TESTS} <= set(r.reward.flags)
