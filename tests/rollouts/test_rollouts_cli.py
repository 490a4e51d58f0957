"""`codemill grade` and `codemill rollout` end to end on the toy task, through the ledger."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from codemill.cli.main import app
from codemill.store.ledger import Ledger
from codemill.store.rows import record_to_row
from rewards.toyproject import GOLD_PATCH

from .test_rollouts_groups import FIX


@pytest.fixture
def cli(toy, monkeypatch):
    monkeypatch.setenv("CODEMILL_HOME", str(toy.home))
    for key, value in toy.settings.sandbox.model_dump().items():
        monkeypatch.setenv(f"CODEMILL_SANDBOX__{key.upper()}", str(value))
    monkeypatch.setenv("CODEMILL_EXECUTOR__WORKERS", "1")
    monkeypatch.chdir(toy.home.parent)
    # The ledger is where commands find environments and tasks (the toy was built
    # without the factory): record both as the factory would have.
    with Ledger.open(toy.settings) as ledger:
        for table, key, record in (("environments", "env_id", toy.env),
                                   ("tasks", "task_id", toy.task)):
            known = set(ledger.read(table, columns=[key]).column(key).to_pylist())
            if getattr(record, key) not in known:
                with ledger.writer(table, run_id="test", asset=table, config_hash="") as w:
                    w.add(record_to_row(record))
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    return run


def test_grade_then_rollouts_recorded_and_resumed(toy, cli, tmp_path):
    patch = tmp_path / "fix.diff"
    patch.write_text(GOLD_PATCH)
    graded = cli("grade", toy.task.task_id[:10], "--patch", str(patch), "--json")
    assert graded["reward"]["value"] == 1.0 and graded["reward"]["flags"] == []
    assert {t["outcome"] for t in graded["tests"]} == {"passed"} and len(graded["tests"]) == 4

    script = tmp_path / "fix.json"
    script.write_text(json.dumps(FIX))
    model = f"scripted:{script}"
    out = cli("rollout", toy.task.task_id[:10], "--model", model, "--group", "2", "--json")
    assert (out["rollouts"], out["resolved_rate"], out["masked"]) == (2, 1.0, 0)
    with Ledger.open(toy.settings) as ledger:
        rollouts = [r for r in ledger.read("rollouts").to_pylist() if r["policy"] == model]
        ids = {r["rollout_id"] for r in rollouts}
        steps = [r for r in ledger.read("steps").to_pylist() if r["rollout_id"] in ids]
        rewards = [r for r in ledger.read("rewards").to_pylist() if r["rollout_id"] in ids]
    assert len(rollouts) == 2 and len(steps) == 6 and len(rewards) == 2
    assert {r["env_id"] for r in rollouts} == {toy.env.env_id}
    assert len({r["group_id"] for r in rollouts}) == 1
    assert all(r["value"] == 1.0 and r["harness_version"] for r in rewards)

    again = cli("rollout", "all", "--model", model, "--group", "2", "--json")
    assert (again["rollouts"], again["skipped"]) == (0, 2)
