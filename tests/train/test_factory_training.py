"""Training through the factory on a real toy environment: expert SFT, then GRPO rounds
with the current weights, checkpoints recorded with lineage, reruns cached."""

import json

import pytest

from codemill.train.config import TrainConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ledger_home(tmp_path_factory, bwrap_ready):
    """A fresh home holding the toy environment and its task in the ledger (where the
    factory looks them up)."""
    from codemill.store.ledger import Ledger
    from codemill.store.rows import record_to_row
    from rewards.toyproject import make_toy, toy_settings

    home = tmp_path_factory.mktemp("train-home").absolute()
    settings = toy_settings(home)
    env, task = make_toy(home, settings)
    with Ledger.open(settings) as ledger:
        for table, record in (("environments", env), ("tasks", task)):
            with ledger.writer(table, run_id="setup", asset=table, config_hash="") as w:
                w.add(record_to_row(record))
    return settings, env, task


def test_sft_on_expert_data_then_grpo_rounds(ledger_home, tiny_dir):
    from codemill.factory.training import GrpoJob, SftJob, read_graded, train_grpo, train_sft
    from codemill.store.ledger import Ledger

    settings, env, task = ledger_home
    sft = train_sft(settings, SftJob(
        model=f"transformers:{tiny_dir}", data="expert", per_task=2,
        train=TrainConfig(steps=2, batch_size=2, lr=1e-3, threads=1, device="cpu",
                          lora=True, lora_r=4, lora_layers=1)))
    assert sft.data["resolved"] == 2 and sft.data["sequences"] == 2 and not sft.cached
    assert [m["step"] for m in sft.metrics] == [1, 2]

    steps = []
    job = GrpoJob(model=f"ckpt:{sft.checkpoint_id[:12]}", train=TrainConfig(
        steps=2, batch_size=1, group_size=2, max_new_tokens=6, max_turns=2, threads=1,
        device="cpu", lr=1e-3))
    grpo = train_grpo(settings, job, on_step=steps.append)
    assert [m["step"] for m in steps] == [1, 2] and not grpo.cached
    for m in steps:
        # A random model never fixes the bug: every group is all-zero, so it is dropped,
        # counted, and the round makes no update.
        assert m["rollouts"] == 2 and m["groups"] + m["left_out"].get("truncated", 0) >= 1
        assert m["reward_mean"] == 0.0 and m["loss"] is None
        # The loop's own time and the model's fit inside the rollouts' wall time.
        assert m["model_s"] > 0 and m["harness_s"] + m["model_s"] <= m["rollout_wall_s"]
    again = train_grpo(settings, job)
    assert again.cached and again.checkpoint_id == grpo.checkpoint_id

    with Ledger.open(settings) as ledger:
        rows = {r["kind"]: r for r in ledger.read("checkpoints").to_pylist()}
    assert rows["sft"]["parent_id"] is None and rows["sft"]["lora"] is True
    assert rows["grpo"]["parent_id"] == sft.checkpoint_id
    assert rows["grpo"]["base_model"] == f"transformers:{tiny_dir}"  # the adapter's base
    assert json.loads(rows["grpo"]["task_ids"]) == [task.task_id]
    assert json.loads(rows["grpo"]["env_ids"]) == [env.env_id]
    assert json.loads(rows["grpo"]["snapshot_ids"]) == [env.snapshot_id]
    used = json.loads(rows["grpo"]["rollout_ids"])
    assert len(used) == 4
    graded = {g.rollout_id: g for g in read_graded(settings, used)}
    assert set(graded) == set(used) and all(g.trace is not None for g in graded.values())
    assert len(json.loads(rows["sft"]["rollout_ids"])) == 2
