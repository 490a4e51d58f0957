"""mini-swe-agent (the PyPI package) on the toy task: its ``DefaultAgent`` runs with its own
``DeterministicModel`` (scripted) and with its litellm model talking to codemill's model
server; every command runs in the task's sandbox fork, the fork's diff is graded by
codemill's grader, and the episode is recorded through the factory like any rollout."""

from __future__ import annotations

import json

from minisweagent.models.test_models import DeterministicModel, make_output

from codemill.core.config import CatalogConfig
from codemill.core.records import StopReason
from codemill.factory.mini_swe_agent import run_mini_swe_agent
from codemill.interop.mini_swe_agent import (
    SUBMIT_SENTINEL,
    MiniConfig,
    model_from_spec,
    run_episode,
)
from codemill.store.reader import LedgerReader
from interop.served import forks
from tiny_models import word_level_llama

CONFIG = MiniConfig(step_limit=8, wall_time_s=240, command_timeout_s=30)
TRICKY = "printf '%s\\n' '</tool>' '```bash' 'x'"


def deterministic(*commands):
    return DeterministicModel(outputs=[make_output(f"THOUGHT: step {i}", [{"command": c}])
                                       for i, c in enumerate(commands)])


def ledger_settings(toy, tmp_path):
    """The toy's home (its sandboxes) with a ledger of this test's own."""
    catalog = CatalogConfig(uri=f"sqlite:///{tmp_path / 'catalog.db'}",
                            warehouse=(tmp_path / "warehouse").as_uri())
    return toy.settings.model_copy(update={"catalog": catalog})


def test_a_fix_earns_one_and_is_recorded(toy, tmp_path):
    escape = tmp_path / "escaped"
    model = deterministic(
        "cat src/calc/ops.py", TRICKY,
        f"echo out > {escape}; touch /tmp/mini-marker; ls /tmp/mini-marker",
        "sed -i '2s/a - b/a + b/' src/calc/ops.py", f"echo {SUBMIT_SENTINEL}")
    before = forks(toy)
    settings = ledger_settings(toy, tmp_path)
    recorded = run_mini_swe_agent(toy.task, toy.env, settings, model, config=CONFIG)
    ep = recorded.episode
    assert ep.exit_status == "Submitted" and ep.reward.value == 1.0 and ep.reward.resolved
    traj = ep.trajectory
    assert traj.stop_reason == StopReason.SUBMITTED and traj.policy.startswith("mini-swe-agent/")
    assert "+    return a + b" in traj.diff and "mini-marker" not in traj.diff
    assert len(traj.steps) == 5 and toy.task.problem_statement in traj.task_prompt
    obs = [s.observations[0].content for s in traj.steps[:4]]
    assert traj.steps[4].observations == ()  # the submit ends the run unanswered
    assert "return a - b" in obs[0] and "<returncode>0</returncode>" in obs[0]
    assert "</tool>\n```bash\nx\n" in obs[1]  # the command reached bash verbatim
    assert "<returncode>0</returncode>" in obs[2]  # the sandbox's /tmp took the write...
    assert not escape.exists()  # ...and the host saw none of it
    messages = ep.record["messages"]
    assert messages[-1]["role"] == "exit" and ep.record["info"]["exit_status"] == "Submitted"
    assert forks(toy) == before  # the fork went with the episode
    with LedgerReader.open(settings) as reader:
        rollouts = reader.read("rollouts").to_pylist()
        rewards = reader.read("rewards").to_pylist()
        steps = reader.read("steps").to_pylist()
    assert [r["rollout_id"] for r in rollouts] == [traj.rollout_id]
    assert rollouts[0]["run_id"] == recorded.run_id and rollouts[0]["env_id"] == toy.env.env_id
    assert rollouts[0]["group_id"] == traj.rollout_id
    assert [(r["rollout_id"], r["value"]) for r in rewards] == [(traj.rollout_id, 1.0)]
    assert len(steps) == 5


def test_a_wrong_edit_earns_zero(toy):
    model = deterministic("sed -i '2s/a - b/a * b/' src/calc/ops.py",
                          f"echo {SUBMIT_SENTINEL}")
    ep = run_episode(toy.task, toy.env, toy.home, toy.settings, model, config=CONFIG)
    assert ep.exit_status == "Submitted" and "+    return a * b" in ep.trajectory.diff
    assert ep.reward.value == 0.0 and ep.reward.resolved is False and not ep.reward.masked


def test_a_failing_model_is_a_masked_reward_and_limits_stop(toy):
    # The model has one reply; its second call fails inside mini-swe-agent: data, not a crash.
    ep = run_episode(toy.task, toy.env, toy.home, toy.settings,
                     deterministic("sed -i '2s/a - b/a + b/' src/calc/ops.py"), config=CONFIG)
    assert ep.trajectory.stop_reason == StopReason.MODEL_ERROR and ep.exit_status == "IndexError"
    assert ep.reward.masked and ep.reward.value is None and ep.reward.error_type == "infra:model"
    limited = MiniConfig(step_limit=1, wall_time_s=240, command_timeout_s=30)
    ep = run_episode(toy.task, toy.env, toy.home, toy.settings,
                     deterministic("sed -i '2s/a - b/a + b/' src/calc/ops.py", "ls"),
                     config=limited)
    # mini-swe-agent's step limit ends the run; the fork's diff is still graded
    assert ep.exit_status == "LimitsExceeded" and ep.trajectory.stop_reason == StopReason.MAX_TURNS
    assert ep.reward.value == 1.0 and len(ep.trajectory.steps) == 1


def test_litellm_through_codemill_model_serve(toy, tmp_path):
    """mini-swe-agent's own litellm model calls codemill's OpenAI-compatible model server:
    a scripted policy fixes the bug; a tiny local transformers model runs a real episode
    (its words are no action, so mini-swe-agent stops it for format errors: graded 0)."""
    fence = "```mswea_bash_command\n{}\n```"
    replies = ["THOUGHT: look.\n" + fence.format("cat src/calc/ops.py"),
               "THOUGHT: fix.\n" + fence.format("sed -i '2s/a - b/a + b/' src/calc/ops.py"),
               "THOUGHT: done.\n" + fence.format(f"echo {SUBMIT_SENTINEL}")]
    script = tmp_path / "fix.json"
    script.write_text(json.dumps(replies))
    with model_from_spec(f"scripted:{script}") as model:
        ep = run_episode(toy.task, toy.env, toy.home, toy.settings, model, config=CONFIG)
    assert ep.exit_status == "Submitted" and ep.reward.value == 1.0
    assert ep.trajectory.steps[1].reply.message.content == replies[1]
    tiny = word_level_llama(tmp_path / "tiny")
    with model_from_spec(f"transformers:{tiny}", max_tokens=48) as model:
        ep = run_episode(toy.task, toy.env, toy.home, toy.settings, model, config=CONFIG)
    assert ep.exit_status == "RepeatedFormatError"
    assert ep.trajectory.stop_reason == StopReason.FORMAT_ERROR and len(ep.trajectory.steps) == 3
    assert ep.reward.value == 0.0 and not ep.reward.masked and ep.trajectory.diff == ""


def test_rollout_with_agent_mini_swe_agent(toy, tmp_path, monkeypatch):
    """``codemill rollout TASK --agent mini-swe-agent --model scripted:FILE``: the
    scripted model served on loopback, the episode graded and recorded in the ledger."""
    from typer.testing import CliRunner

    from codemill.cli.main import app
    from codemill.store.ledger import Ledger
    from codemill.store.rows import record_to_row
    from interop.test_interop_serve_cli import record_toy

    for key, value in record_toy(toy).items():
        monkeypatch.setenv(key, value)
    settings = ledger_settings(toy, tmp_path)
    monkeypatch.setenv("CODEMILL_CATALOG__URI", settings.catalog.uri)
    monkeypatch.setenv("CODEMILL_CATALOG__WAREHOUSE", settings.catalog.warehouse)
    with Ledger.open(settings) as ledger:
        for table, record in (("environments", toy.env), ("tasks", toy.task)):
            with ledger.writer(table, run_id="test", asset=table, config_hash="") as w:
                w.add(record_to_row(record))
    fence = "```mswea_bash_command\n{}\n```"
    script = tmp_path / "fix.json"
    script.write_text(json.dumps([
        fence.format("sed -i '2s/a - b/a + b/' src/calc/ops.py"),
        fence.format(f"echo {SUBMIT_SENTINEL}")]))
    res = CliRunner().invoke(app, ["rollout", toy.task.task_id[:10], "--agent", "mini-swe-agent",
                                   "--model", f"scripted:{script}", "--group", "1", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["rollouts"] == 1 and summary["resolved"] == 1
    with Ledger.open(settings) as ledger:
        [rollout] = ledger.read("rollouts").to_pylist()
        [reward] = ledger.read("rewards").to_pylist()
    assert rollout["policy"] == f"mini-swe-agent/scripted:{script}"
    assert reward["rollout_id"] == rollout["rollout_id"] and reward["value"] == 1.0
    res = CliRunner().invoke(app, ["rollout", toy.task.task_id[:10], "--agent", "mini-swe-agent",
                                   "--model", f"scripted:{script}", "--mode", "patch"])
    assert res.exit_code == 1 and "agent mode only" in res.output
