"""``--mode patch`` through the CLI: ``codemill rollout`` and ``codemill eval`` on the toy
task (one-turn rollouts recorded in the same tables, graded by the same grader)."""

from __future__ import annotations

import json

from codemill.store.ledger import Ledger

from .test_rollouts_cli import cli  # noqa: F401 (fixture)
from .test_rollouts_patch_mode import FIX


def test_rollout_and_eval_in_patch_mode(toy, cli, tmp_path):  # noqa: F811
    script = tmp_path / "patch.json"
    script.write_text(json.dumps([f"```\n{FIX}\n```"]))
    model = f"scripted:{script}"
    out = cli("rollout", toy.task.task_id[:10], "--model", model, "--group", "2",
              "--mode", "patch", "--json")
    assert (out["rollouts"], out["resolved_rate"], out["masked"]) == (2, 1.0, 0)
    with Ledger.open(toy.settings) as ledger:
        rollouts = [r for r in ledger.read("rollouts").to_pylist() if r["policy"] == model]
        ids = {r["rollout_id"] for r in rollouts}
        steps = [r for r in ledger.read("steps").to_pylist() if r["rollout_id"] in ids]
        rewards = [r for r in ledger.read("rewards").to_pylist() if r["rollout_id"] in ids]
    assert len(rollouts) == 2 and len(steps) == 2  # one turn each
    assert all(r["stop_reason"] == "submitted" and "+    return a + b" in r["diff"]
               for r in rollouts)
    assert len(rewards) == 2 and all(r["value"] == 1.0 for r in rewards)
    # a rerun finds both samples recorded
    again = cli("rollout", toy.task.task_id[:10], "--model", model, "--group", "2",
                "--mode", "patch", "--json")
    assert (again["rollouts"], again["skipped"]) == (0, 2)

    suite = cli("eval", "suite", "patch-toy", "--env", toy.env.env_id[:12], "--mode", "patch",
                "--json")
    assert json.loads(suite["run_config"])["mode"] == "patch"
    assert [t["task_id"] for t in suite["tasks"]] == [toy.task.task_id]
    agent_suite = cli("eval", "suite", "agent-toy", "--env", toy.env.env_id[:12], "--json")
    assert json.loads(agent_suite["run_config"])["mode"] == "agent"
    res = cli("eval", "run", "patch-toy", "--model", model, "--json")
    assert res["score"]["pass1"]["value"] == 1.0, res
    with Ledger.open(toy.settings) as ledger:
        samples = [r for r in ledger.read("eval_samples").to_pylist()
                   if r["eval_id"] == res["eval_id"]]
    assert [s["stop_reason"] for s in samples] == ["submitted"] and samples[0]["resolved"]
    # the prompt's version is part of a patch suite's eval id: a new prompt is a new eval
    from codemill.core.ids import content_id
    from codemill.rollouts.plan import prompt_version

    assert res["eval_id"] == content_id("eval", suite["suite_id"], model, False,
                                        prompt_version("patch"))
