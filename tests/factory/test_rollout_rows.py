"""Every path that records a finished rollout writes the same rows
(``codemill.store.rows.rollout_rows``): an eval attempt and a ``solve`` of a local repository,
both with a token-exact local model, leave a ``rollouts`` row with ``env_id`` and
``group_id``, its ``steps`` and a ``trajectories`` row, in a real ledger, on the toy
project's real environment and sandbox. Training data regrades a stale reward from the
rows ``persist_rollouts`` wrote (``codemill.factory.grading.regrade``)."""

from __future__ import annotations

import pytest

from codemill.core.config import CatalogConfig
from codemill.core.ids import content_id
from codemill.core.records import Message, ModelReply, Reward, Step, StopReason, Trajectory
from codemill.store.ledger import Ledger
from codemill.store.rows import rollout_rows
from tiny_models import word_level_llama

META = ("run_id", "code_version", "created_at", "asset", "config_hash")


def _seed(settings, rows_by_table):
    """Record rows through the factory: one test asset per table."""
    from codemill.factory.graph import Registry
    from codemill.factory.materialize import materialize

    reg = Registry()
    for table, rows in rows_by_table.items():
        reg.asset(table, "test")(lambda ctx, rows=rows: iter(rows))
    config = {table: {"rows": content_id(rows)} for table, rows in rows_by_table.items()}
    materialize(list(rows_by_table), config, settings, registry=reg,
                command="seed").raise_for_status()



def _rows(settings, table):
    with Ledger.open(settings) as ledger:
        return [{k: v for k, v in r.items() if k not in META}
                for r in ledger.read(table).to_pylist()]


def _filled(row):
    return {k for k, v in row.items() if v is not None}


def test_rollout_rows_are_every_table_of_one_rollout():
    msg = Message(role="assistant", content="done")
    reply = ModelReply(message=msg, prompt_tokens=3, completion_tokens=1)
    traj = Trajectory(rollout_id="r1", task_id="t1", policy="p", sample_index=0,
                      system_prompt="", task_prompt="", steps=(Step(index=0, reply=reply),),
                      stop_reason=StopReason.SUBMITTED, diff="")
    reward = Reward(reward_id="w1", rollout_id="r1", task_id="t1", env_id="e1", value=1.0,
                    resolved=True, harness_version="h")
    rows = rollout_rows(traj, env_id="e1", group_id="g1", reward=reward)
    # no token trace: no trajectories row; the rest in write order
    assert [t for t, _ in rows] == ["rollouts", "steps", "rewards"]
    assert rows[0][1]["env_id"] == "e1" and rows[0][1]["group_id"] == "g1"
    assert rows[0][1]["n_steps"] == 1 and rows[1][1]["rollout_id"] == "r1"
    assert rows[2][1]["reward_id"] == "w1"
    assert [t for t, _ in rollout_rows(traj, env_id="e1", group_id="g1")] == ["rollouts",
                                                                              "steps"]


@pytest.fixture
def world(toy, tmp_path):
    from rewards.toyproject import _snapshot_record

    wh = tmp_path / "warehouse"
    wh.mkdir()
    settings = toy.settings.model_copy(update={"catalog": CatalogConfig(
        uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=wh.as_uri())})
    _seed(settings, {"snapshots": [_snapshot_record(toy.home)], "environments": [toy.env],
                     "tasks": [toy.task]})
    return settings


def test_eval_attempts_and_solve_write_the_same_rows(world, toy, tmp_path):
    from codemill.envs.builder.records import BUILDER_VERSION
    from codemill.evals.suites import SuiteRunConfig, SuiteSelection
    from codemill.factory import eval_api
    from codemill.factory.solve import solve
    from codemill.repos.sources import snapshot_source
    from rewards.toyproject import write_snapshot

    settings = world
    model = f"transformers:{word_level_llama(tmp_path / 'tiny')}"
    run = SuiteRunConfig(k=1, max_turns=1, max_tokens=8, wall_time_s=120)
    eval_api.define_suite(settings, "rows", "1", SuiteSelection(), run)
    ev = eval_api.evaluate(settings, "rows", model)
    assert ev.status == "success" and len(ev.samples) == 1
    [eval_id] = [s["rollout_id"] for s in ev.samples]

    # solve on a copy of the toy project whose environment is recorded already (the toy
    # venv, under the copy's snapshot), so nothing is built
    repo = write_snapshot(tmp_path / "repo")
    snap = snapshot_source(str(repo), settings.home)
    env = toy.env.model_copy(update={"env_id": content_id("rows-env", snap.snapshot_id),
                                     "snapshot_id": snap.snapshot_id,
                                     "builder_version": BUILDER_VERSION})
    _seed(settings, {"environments": [env]})
    solved = solve(str(repo), "calc.add is wrong", settings, model=model, max_turns=1)
    solve_id = solved.trajectory.rollout_id

    rollouts = {r["rollout_id"]: r for r in _rows(settings, "rollouts")}
    traces = {r["rollout_id"]: r for r in _rows(settings, "trajectories")}
    steps = _rows(settings, "steps")
    assert set(rollouts) == set(traces) == {eval_id, solve_id}
    assert rollouts[eval_id]["env_id"] == toy.env.env_id
    assert rollouts[solve_id]["env_id"] == env.env_id
    # a solve is a group of one: its own id
    assert rollouts[solve_id]["group_id"] == traces[solve_id]["group_id"] == solve_id
    assert rollouts[eval_id]["group_id"] and \
        traces[eval_id]["group_id"] == rollouts[eval_id]["group_id"]
    for rid in (eval_id, solve_id):
        assert traces[rid]["completion_ids"], "a token-exact reply has its token ids"
        assert sum(s["rollout_id"] == rid for s in steps) == rollouts[rid]["n_steps"] >= 1
    # whichever path wrote them, the same columns are filled
    shape = {k for k in _filled(rollouts[eval_id]) if k != "error"}
    assert shape <= _filled(rollouts[solve_id])
    assert _filled(traces[eval_id]) == _filled(traces[solve_id])


def test_training_data_regrades_a_stale_reward_once(world, toy):
    """A rollout recorded by ``persist_rollouts`` with a reward of older grading rules (a
    stale 0 for the gold fix) is graded again from its rows by ``regrade_stale``, under
    today's rules, and only once."""
    from codemill.core.ids import new_run_id
    from codemill.core.records import SamplingConfig
    from codemill.factory.train_data import persist_rollouts, regrade_stale
    from codemill.rewards.config import HARNESS_VERSION
    from codemill.rollouts.plan import RolloutItem
    from codemill.rollouts.runner import RolloutResult

    settings, task = world, toy.task
    item = RolloutItem("stale-1", task, "expert", 0, SamplingConfig())
    reply = ModelReply(message=Message(role="assistant", content="fixed"))
    traj = Trajectory(rollout_id=item.rollout_id, task_id=task.task_id, policy="expert",
                      sample_index=0, system_prompt="", task_prompt="",
                      steps=(Step(index=0, reply=reply),), stop_reason=StopReason.SUBMITTED,
                      diff=task.gold_patch)
    stale = Reward(reward_id="old", rollout_id=item.rollout_id, task_id=task.task_id,
                   env_id=task.env_id, value=0.0, resolved=False, harness_version="0-old")
    persist_rollouts(settings, new_run_id(), "policy_samples",
                     [RolloutResult(item, traj, stale)])
    [row] = _rows(settings, "rollouts")
    assert (row["env_id"], row["group_id"]) == (task.env_id, item.group_id)

    envs = {toy.env.env_id: toy.env}
    said: list[str] = []
    assert regrade_stale(settings, [item.rollout_id], [task], envs, new_run_id(), "x",
                         said.append) == 1
    assert said == ["regraded 1/1 recorded answers under the current grading rules"]
    assert regrade_stale(settings, [item.rollout_id], [task], envs, new_run_id(), "x") == 0
    by_version = {r["harness_version"]: r for r in _rows(settings, "rewards")}
    assert set(by_version) == {"0-old", HARNESS_VERSION}
    assert by_version[HARNESS_VERSION]["value"] == 1.0
    assert by_version[HARNESS_VERSION]["resolved"] is True
