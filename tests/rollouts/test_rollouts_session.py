"""The environment session API on the toy task: real forks, the agent's own tools and prompt,
the real grader; a session's reward equals codemill's native grading of the same episode."""

from __future__ import annotations

import time

import pytest

from codemill.agent.config import AgentConfig
from codemill.agent.loop import Agent
from codemill.agent.models.scripted import ScriptedBackend
from codemill.agent.prompts import FORMAT_REMINDER
from codemill.core.records import StopReason
from codemill.rewards.grader import grade
from codemill.rollouts.patch_mode import patch_messages
from codemill.rollouts.plan import RolloutConfig
from codemill.rollouts.runner import prepare_patch_contexts, run_rollouts
from codemill.rollouts.session import SessionConfig, SessionError, open_session
from rollouts.test_rollouts_groups import AGENT, FIX

CONFIG = SessionConfig(agent=AGENT)
WRONG = ('<tool name="edit">\n{"path": "src/calc/ops.py", "old_str": "def add(a, b):\\n'
         '    return a - b", "new_str": "def add(a, b):\\n    return a * b"}\n</tool>\n'
         '<tool name="submit"></tool>')
# Fields that name the attempt or time it, not what the grader concluded.
ATTEMPT = {"reward_id", "rollout_id", "policy", "grading_seconds"}


def session(toy, mode="agent", config=CONFIG):
    return open_session(toy.task, toy.env, toy.home, toy.settings, mode, config=config)


def test_scripted_fix_earns_the_native_reward(toy):
    with session(toy) as s:
        first = s.reset()
        system, user = first.messages
        # Exactly what codemill's own agent is shown: its system prompt, then the task.
        assert system.content == Agent(ScriptedBackend([]), AGENT).system_prompt
        assert '<tool name="submit"></tool>' in system.content and "- edit(" in system.content
        assert user.content == toy.task.problem_statement and first.text.endswith(user.content)
        obs, done = s.step(FIX[0])
        assert not done and obs.messages[0].content.startswith("bash output:\n")
        assert "return a - b" in obs.text and obs.text.rstrip().endswith("[exit code 0]")
        obs, done = s.step(FIX[1])
        assert not done and "edited src/calc/ops.py" in obs.text
        with pytest.raises(SessionError, match="not over"):
            s.grade()
        obs, done = s.step(FIX[2])
        assert done and obs.text == "submit output:\nsubmitted"
        assert s.stop_reason == StopReason.SUBMITTED and not s.truncated
        reward = s.grade()
        traj = s.trajectory
        with pytest.raises(SessionError, match="episode is over"):
            s.step(FIX[2])
    assert reward.value == 1.0 and reward.resolved and not reward.masked
    assert reward.rollout_id == traj.rollout_id and len(traj.steps) == 3
    # Native grading of the same diff and actions gives the same Reward, field for field.
    native = grade(toy.task, traj.diff, env=toy.env, home=toy.home, settings=toy.settings,
                   rollout_id=traj.rollout_id, policy=traj.policy, trajectory=traj)
    assert reward.model_dump(exclude={"grading_seconds"}) == \
        native.model_dump(exclude={"grading_seconds"})
    # And a rollout of codemill's own agent replaying the same replies: same diff, same verdict.
    [rollout] = run_rollouts([toy.task], envs=[toy.env], home=toy.home, settings=toy.settings,
                             model=ScriptedBackend(FIX), config=RolloutConfig(group_size=1),
                             agent=AGENT).results
    assert rollout.trajectory.diff == traj.diff
    assert [st.observations for st in rollout.trajectory.steps] == \
        [st.observations for st in traj.steps]
    assert rollout.reward.model_dump(exclude=ATTEMPT) == reward.model_dump(exclude=ATTEMPT)


def test_wrong_fix_earns_zero(toy):
    with session(toy) as s:
        s.reset()
        obs, done = s.step(WRONG)  # an edit then submit in one reply: both run, in order
        assert done and "edited src/calc/ops.py" in obs.messages[0].content
        reward = s.grade()
    assert "return a * b" in s.trajectory.diff
    assert reward.value == 0.0 and not reward.masked and reward.resolved is False


def test_malformed_action_gets_the_format_reminder_until_the_limit(toy):
    config = SessionConfig(agent=AGENT.model_copy(update={"max_format_errors": 2}))
    with session(toy, config=config) as s:
        s.reset()
        obs, done = s.step("I will now look at the code.")
        assert not done and obs.text == FORMAT_REMINDER
        obs, done = s.step('<tool name="edit">{not json at all</tool>')
        assert done and obs.text.startswith("edit output:\nerror: cannot read the arguments")
        assert s.stop_reason == StopReason.FORMAT_ERROR
        reward = s.grade()
    assert reward.value == 0.0 and not reward.masked and s.trajectory.diff == ""


def test_step_and_time_limits_end_the_episode_as_truncated(toy):
    config = SessionConfig(agent=AGENT.model_copy(update={"max_turns": 2}))
    with session(toy, config=config) as s:
        s.reset()
        assert s.step("```bash\nls\n```")[1] is False
        obs, done = s.step("```bash\nls src\n```")
        assert done and "calc" in obs.text and s.stop_reason == StopReason.MAX_TURNS
        assert s.truncated and s.grade().value == 0.0
    quick = SessionConfig(agent=AgentConfig(wall_time_s=0.001))
    with session(toy, config=quick) as s:
        s.reset()
        time.sleep(0.01)  # the policy thinks longer than the episode's time
        obs, done = s.step(FIX[2])
        assert done and obs.text.startswith("time is up") and s.truncated
        assert s.stop_reason == StopReason.WALL_TIME and s.trajectory.steps == ()


def test_out_of_order_calls_raise_and_close_removes_the_fork(toy):
    s = session(toy)
    with pytest.raises(SessionError, match="reset"):
        s.step("```bash\nls\n```")
    s.reset()
    fork = s.fork
    assert fork.dir.is_dir()
    s.step(FIX[1])
    # reset starts over in a fresh fork: the first one is gone, the edit with it
    s.reset()
    assert not fork.dir.exists() and s.fork is not fork and s.fork.dir.is_dir()
    second = s.fork
    s.step('<tool name="submit"></tool>')
    assert s.trajectory.diff == "" and s.fork is None and not second.dir.exists()
    s.reset()
    third = s.fork
    s.close()
    assert not third.dir.exists() and s.fork is None
    with pytest.raises(SessionError, match="closed"):
        s.reset()
    s.close()  # closing twice is harmless


def test_patch_mode_one_step_graded_like_a_patch_rollout(toy):
    context = prepare_patch_contexts([toy.task], {toy.env.env_id: toy.env}, toy.home,
                                     toy.settings)[toy.task.task_id]
    with session(toy, "patch") as s:
        obs = s.reset()
        assert list(obs.messages) == patch_messages(toy.task.problem_statement, context)
        assert s.fork is None
        obs, done = s.step("2:     return a + b")
        assert done and s.stop_reason == StopReason.SUBMITTED
        reward = s.grade()
        traj = s.trajectory
        native = grade(toy.task, traj.diff, env=toy.env, home=toy.home,
                       settings=toy.settings, rollout_id=traj.rollout_id,
                       policy=traj.policy, trajectory=traj)
        assert reward.value == 1.0
        assert reward.model_dump(exclude={"grading_seconds"}) == \
            native.model_dump(exclude={"grading_seconds"})
        s.reset()
        obs, done = s.step("The bug is in add.")
        assert done and s.stop_reason == StopReason.FORMAT_ERROR
        assert "malformed answer" in obs.text and "N: new text" in obs.text
        assert s.grade().value == 0.0
