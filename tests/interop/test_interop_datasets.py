"""Tasks as datasets on the toy task: the HF dataset loads back with ``datasets``, the veRL
Parquet has the columns veRL reads, and veRL's reward function grades a right answer 1.0 and a
wrong one 0.0 through the real grader in a sandbox."""

from __future__ import annotations

import math

import datasets
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from codemill.cli.main import app
from codemill.interop.datasets import save_hf, save_verl, task_rows
from codemill.interop.verl_reward import compute_score
from interop.test_interop_serve_cli import record_toy


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


@pytest.fixture(scope="module")
def rows(toy):
    return task_rows([(toy.task, toy.env)], toy.home, toy.settings)


def test_hf_dataset_loads_back_with_both_prompts(rows, toy, tmp_path, hf_offline):
    assert rows.skipped == {} and len(rows.rows) == 1
    out = tmp_path / "hf"
    assert save_hf(rows, out) == 1
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 1 and "_records" not in ds.column_names
    row = ds[0]
    assert row["task_id"] == toy.task.task_id and row["env_id"] == toy.env.env_id
    assert [m["role"] for m in row["agent_prompt"]] == ["system", "user"]
    assert '<tool name="submit">' in row["agent_prompt"][0]["content"]
    assert row["agent_prompt"][1]["content"] == toy.task.problem_statement
    patch = row["patch_prompt"][1]["content"]
    assert toy.task.problem_statement in patch and "return a - b" in patch
    assert row["fail_to_pass"] == list(toy.task.fail_to_pass)
    card = (out / "README.md").read_text()
    assert "## Columns" in card and "load_from_disk" in card and "license" in card


def test_verl_parquet_and_reward_function(rows, toy, tmp_path):
    path = tmp_path / "train.parquet"
    assert save_verl(rows, path, toy.home, toy.settings) == 1
    table = pq.read_table(path)
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(
        table.column_names)
    row = table.to_pylist()[0]
    assert row["data_source"] == "codemill" and row["ability"] == "code"
    assert row["reward_model"] == {"style": "rule", "ground_truth": toy.task.task_id}
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    info = row["extra_info"]
    assert (info["task_id"], info["env_id"]) == (toy.task.task_id, toy.env.env_id)
    assert info["home"] == str(toy.home)

    def score(answer: str) -> float:
        # veRL's call: keyword arguments, extra_info as read from the Parquet.
        return compute_score(data_source=row["data_source"], solution_str=answer,
                             ground_truth=row["reward_model"]["ground_truth"],
                             extra_info=info)

    assert score("2:     return a + b") == 1.0
    wrong = score("2:     return a * b")
    assert wrong == 0.0 and not math.isnan(wrong)
    assert score("I am not sure what to change.") == 0.0
    with pytest.raises(ValueError, match="not a codemill row"):
        compute_score("openai/gsm8k", "42", toy.task.task_id, info)
    with pytest.raises(ValueError, match="does not name the task"):
        compute_score("codemill", "2:     return a + b", "another-task", info)


def test_cli_exports_read_the_ledger(toy, tmp_path, hf_offline):
    env = record_toy(toy)
    hf, verl = tmp_path / "ds", tmp_path / "rl" / "train.parquet"
    runner = CliRunner()
    result = runner.invoke(app, ["tasks", "export-hf", str(hf)], env=env)
    assert result.exit_code == 0, result.output
    assert datasets.load_from_disk(str(hf))[0]["task_id"] == toy.task.task_id
    result = runner.invoke(app, ["tasks", "export-verl", str(verl), "--env",
                                 toy.env.env_id[:8]], env=env)
    assert result.exit_code == 0, result.output
    assert "1 task(s) written" in result.output
    assert pq.read_table(verl).column("reward_model").to_pylist()[0]["ground_truth"] == \
        toy.task.task_id
    result = runner.invoke(app, ["tasks", "export-verl", str(verl), "--answer-format", "x"],
                           env=env)
    assert result.exit_code != 0 and "unknown answer format" in result.output
