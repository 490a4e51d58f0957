"""`codemill run --train` end to end: the run's tasks, expert trajectories graded by the
real grader, a LoRA SFT checkpoint recorded with lineage, the checkpoint rolled out on the
same tasks next to the run's own (base) rollouts; a rerun trains nothing new."""

import json
import subprocess
import sys

import pytest

from factory.test_pipeline_run import _project, _run

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_run_train_records_a_checkpoint_and_both_rates(tmp_path, tiny_dir):
    from codemill.core.config import Settings
    from codemill.store.reader import LedgerReader

    repo = _project(tmp_path)
    args = (str(repo), "--model", f"transformers:{tiny_dir}", "--tasks", "1",
            "--features", "0", "--group", "2", "--max-turns", "2", "--max-tokens", "8",
            "--train", "--train-steps", "2")
    first = _run(tmp_path, *args)
    training = first["training"]
    n_tasks = training["tasks"]
    assert n_tasks == sum(first["tasks_by_kind"].values()) >= 1
    assert len(training["loss"]) == 2 and not training["cached"]
    assert training["data"]["resolved"] >= 1 and training["data"]["sequences"] >= 1
    # Both rates are over every rollout of the run's tasks (group 2): graded, not masked.
    assert training["base"]["graded"] == first["rollouts"] == 2 * n_tasks
    assert training["trained"]["graded"] == 2 * n_tasks
    ckpt = training["checkpoint_id"]

    with LedgerReader.open(Settings(home=tmp_path / "home")) as reader:
        rows = reader.read("checkpoints").to_pylist()
        policies = {r["policy"] for r in reader.read("rollouts").to_pylist()}
    assert [r["checkpoint_id"] for r in rows] == [ckpt]
    row = rows[0]
    assert row["kind"] == "sft" and row["lora"] is True and row["parent_id"] is None
    assert row["base_model"] == f"transformers:{tiny_dir}"
    assert json.loads(row["env_ids"]) == [first["env_id"]]
    assert len(json.loads(row["rollout_ids"])) == training["data"]["sequences"]
    # the base policy, the expert and the checkpoint each have rollouts of their own
    assert f"transformers:{tiny_dir}" in policies
    assert any(p.startswith(f"ckpt:{ckpt}") for p in policies)

    again = _run(tmp_path, *args)
    assert {s["status"] for s in again["stages"]} == {"cached"}
    assert again["training"]["cached"] and again["training"]["checkpoint_id"] == ckpt
    assert again["training"]["trained"] == training["trained"]

    # `train sft --eval SUITE` evaluates the new checkpoint on the suite, through the
    # contamination guard: this checkpoint trained on the suite's own tasks, so the eval is
    # refused with the overlap named, and training stands.
    suite = _cli(tmp_path, "eval", "suite", "mine", "--max-turns", "2", "--max-tokens", "8",
                 "--json")
    assert len(suite["tasks"]) == n_tasks
    tiny = f"transformers:{tiny_dir}"
    sft = _cli(tmp_path, "train", "sft", "--model", tiny, "--steps", "1", "--batch", "1",
               "--lora", "--threads", "1", "--eval", "mine", "--json")
    assert sft["kind"] == "sft" and len(sft["metrics"]) == 1
    [ev] = sft["evals"]
    assert ev["suite"] == "mine" and "overlap" in ev["not_evaluated"].lower(), ev
    # An unknown suite fails before any training: one line, exit 1, no new checkpoint.
    bad = _cli(tmp_path, "train", "sft", "--model", tiny, "--steps", "2", "--lora",
               "--eval", "nosuch", check=False)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "no suite 'nosuch'" in bad.stderr
    with LedgerReader.open(Settings(home=tmp_path / "home")) as reader:
        assert len(reader.read("checkpoints").to_pylist()) == 2


def _cli(tmp_path, *args, check=True):
    out = subprocess.run([sys.executable, "-m", "codemill.cli.main", *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600,
                         env={"CODEMILL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    if not check:
        return out
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)
