"""The agent loop on a real sandbox, driven by scripted policies."""

import pytest

from codemill.agent.loop import Agent, AgentConfig
from codemill.agent.models.scripted import ScriptedBackend
from codemill.agent.prompts import FORMAT_REMINDER
from codemill.core.errors import ModelError
from codemill.core.records import StopReason

from .conftest import TEST_COMMAND

FIX_SCRIPT = [
    "Let me read the code.\n```bash\ncat calc.py\n```",
    '<tool name="run_tests"></tool>',
    '<tool name="edit">\n{"path": "calc.py", "old_str": "return a - b", '
    '"new_str": "return a + b"}\n</tool>',
    "Tests again:\n<tool name=\"run_tests\"></tool>",
    'Done.\n<tool name="submit"></tool>',
]


def config(**kw):
    return AgentConfig(test_command=TEST_COMMAND, **kw)


def outputs(traj):
    return [o.content for s in traj.steps for o in s.observations]


def test_scripted_agent_fixes_the_bug(sandbox):
    traj = Agent(ScriptedBackend(FIX_SCRIPT), config()).run(
        sandbox, "add() is broken; fix it.", rollout_id="r1", task_id="t1")
    assert traj.stop_reason == StopReason.SUBMITTED and traj.error is None
    assert len(traj.steps) == 5
    obs = outputs(traj)
    assert "return a - b" in obs[0]
    assert "FAILED (failures=1)" in obs[1] and "[exit code 1]" in obs[1]
    assert obs[2].startswith("edit output:\nedited calc.py:")
    assert "OK" in obs[3] and "[exit code 0]" in obs[3]
    assert "-    return a - b\n+    return a + b" in traj.diff
    assert "test_calc.py" not in traj.diff
    assert traj.policy == "scripted" and traj.task_prompt.startswith("add()")
    assert "<tool name=" in traj.system_prompt  # text format described for a text model
    for step in traj.steps:
        assert step.reply.latency_s > 0 and step.tool_seconds > 0
    assert traj.wall_seconds >= sum(s.tool_seconds + s.reply.latency_s for s in traj.steps)
    # The harness's time is a turn's wall time beyond the model and the commands: the edit turn
    # runs no command, so it is all harness; and it never exceeds what the model left over.
    harness = [s.harness_seconds for s in traj.steps]
    assert harness[2] >= traj.steps[2].tool_seconds > 0
    assert sum(harness) + sum(s.reply.latency_s for s in traj.steps) <= traj.wall_seconds


def test_max_turns_stops(sandbox):
    traj = Agent(ScriptedBackend(lambda m, t: "```bash\necho hi\n```"),
                 config(max_turns=3)).run(sandbox, "loop", rollout_id="r")
    assert traj.stop_reason == StopReason.MAX_TURNS
    assert len(traj.steps) == 3


def test_wall_time_stops(sandbox):
    traj = Agent(ScriptedBackend(lambda m, t: "```bash\nsleep 0.4\n```"),
                 config(wall_time_s=1.0, max_turns=50)).run(sandbox, "slow", rollout_id="r")
    assert traj.stop_reason == StopReason.WALL_TIME
    assert 2 <= len(traj.steps) < 50
    assert traj.wall_seconds >= 1.0


def test_token_budget_stops_and_caps_sampling(sandbox):
    seen = []

    class Recording(ScriptedBackend):
        def complete(self, messages, *, tools=None, sampling=None):
            seen.append(sampling.max_tokens)
            return super().complete(messages, tools=tools, sampling=sampling)

    prose = "word " * 40 + "\n```bash\ntrue\n```"
    traj = Agent(Recording(lambda m, t: prose), config(max_tokens=100)).run(
        sandbox, "talk", rollout_id="r")
    assert traj.stop_reason == StopReason.MAX_TOKENS
    assert sum(s.reply.completion_tokens for s in traj.steps) >= 100
    assert seen[0] == 100 and seen[1] < seen[0]


def test_model_exception_is_a_recorded_stop(sandbox):
    def policy(messages, tools):
        if len(messages) > 2:
            raise ConnectionError("provider went away")
        return '<tool name="edit">{"path": "new.txt", "file_text": "x\\n"}</tool>'

    traj = Agent(ScriptedBackend(policy), config()).run(sandbox, "t", rollout_id="r")
    assert traj.stop_reason == StopReason.MODEL_ERROR
    assert "provider went away" in traj.error
    assert len(traj.steps) == 1 and "+x" in traj.diff


def test_exhausted_script_is_a_model_error(sandbox):
    traj = Agent(ScriptedBackend(["```bash\nls\n```"]), config()).run(
        sandbox, "t", rollout_id="r")
    assert traj.stop_reason == StopReason.MODEL_ERROR and "no reply left" in traj.error
    with pytest.raises(ModelError):  # the backend itself raises; only the loop contains it
        ScriptedBackend([]).complete([])


def test_format_errors_get_reminders_then_stop(sandbox):
    script = ["I am thinking.", "```bash\nls\n```", "Hmm.", "Still thinking.", "No idea."]
    traj = Agent(ScriptedBackend(script), config(max_format_errors=3)).run(
        sandbox, "t", rollout_id="r")
    assert traj.stop_reason == StopReason.FORMAT_ERROR
    assert len(traj.steps) == 5  # the good action in turn 2 reset the count
    assert traj.steps[0].observations[-1].content == FORMAT_REMINDER


def test_tool_misuse_is_an_observation(sandbox):
    script = [
        '<tool name="edit">{"path": "calc.py", "old_str": "nope", "new_str": "x"}</tool>',
        '<tool name="edit">{"path": "calc.py", "old_str": "return", "new_str": "x"}</tool>',
        '<tool name="view">{"path": "missing.py"}</tool>',
        '<tool name="view">{"path": "../../etc/passwd"}</tool>',
        '<tool name="frobnicate"></tool>',
        '<tool name="edit">{"path": "calc.py", </tool>',
        '<tool name="submit"/>',
    ]
    traj = Agent(ScriptedBackend(script), config()).run(sandbox, "t", rollout_id="r")
    assert traj.stop_reason == StopReason.SUBMITTED
    obs = outputs(traj)
    assert "does not occur" in obs[0] and "occurs 2 times" in obs[1]
    assert "No such file" in obs[2]
    assert obs[3].startswith("view output:\nerror:") and "root:" not in obs[3]
    assert "unknown tool 'frobnicate'" in obs[4]
    assert "cannot read the arguments" in obs[5]
    assert traj.diff == ""


def test_long_output_is_trimmed_with_a_note(sandbox):
    script = ["```bash\nseq 1 20000\n```", '<tool name="submit"></tool>']
    traj = Agent(ScriptedBackend(script), config(observation_limit=1000)).run(
        sandbox, "t", rollout_id="r")
    obs = outputs(traj)[0]
    assert len(obs) < 1100 and "characters cut ...]" in obs
    assert "\n1\n2\n" in obs and obs.rstrip().endswith("[exit code 0]")


def test_command_timeout_is_an_observation(sandbox):
    script = ["```bash\nsleep 30\n```", '<tool name="submit"></tool>']
    traj = Agent(ScriptedBackend(script), config(command_timeout_s=1)).run(
        sandbox, "t", rollout_id="r")
    assert traj.stop_reason == StopReason.SUBMITTED
    assert "timed out" in outputs(traj)[0]
    assert traj.steps[0].tool_seconds < 10


def test_broken_sandbox_is_a_recorded_stop(sandbox):
    sandbox.close()
    traj = Agent(ScriptedBackend(["```bash\nls\n```"]), config()).run(
        sandbox, "t", rollout_id="r")
    assert traj.stop_reason == StopReason.SANDBOX_ERROR
    assert "closed" in traj.error and len(traj.steps) == 1


def test_process_backend_runs_the_same_fix(process_sandbox):
    traj = Agent(ScriptedBackend(FIX_SCRIPT), config()).run(
        process_sandbox, "fix add", rollout_id="r", sample_index=2)
    assert traj.stop_reason == StopReason.SUBMITTED and traj.sample_index == 2
    assert "+    return a + b" in traj.diff


def test_native_tools_setting_picks_the_protocol():
    tools_model = ScriptedBackend([], supports_tools=True)
    assert Agent(tools_model, config()).native
    off = Agent(tools_model, config(native_tools="off"))
    assert not off.native and '<tool name="submit">' in off.system_prompt
    on = Agent(ScriptedBackend([]), config(native_tools="on"))
    assert on.native and "<tool name=" not in on.system_prompt


def test_seed_varies_with_the_sample_index_and_the_turn(sandbox):
    from codemill.agent.loop import TURN_SEED_STRIDE

    seeds = []

    def policy(messages, tools):  # one format error (no action), then a submit
        done = any("<tool" in (m.content or "") for m in messages if m.role == "user")
        return '<tool name="submit"></tool>' if done else "thinking, no action"

    class Recording(ScriptedBackend):
        def complete(self, messages, *, tools=None, sampling=None):
            seeds.append(sampling.seed)
            return super().complete(messages, tools=tools, sampling=sampling)

    agent = Agent(Recording(policy), config(sampling={"seed": 10, "temperature": 0.7}))
    for i in range(3):
        agent.run(sandbox, "t", rollout_id=f"r{i}", sample_index=i)
    # a retry after a format error samples with another seed than the turn before it
    assert seeds == [s + t * TURN_SEED_STRIDE for s in (10, 11, 12) for t in (0, 1)]
