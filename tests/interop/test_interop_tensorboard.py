"""Training metrics as TensorBoard event files: a tiny SFT run through the factory writes
scalars that TensorBoard's own reader reads back equal to the recorded loss."""

from __future__ import annotations

import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from codemill.core.config import CatalogConfig, Settings
from codemill.core.records import TokenTrace
from codemill.train.config import TrainConfig
from codemill.train.tracking import logdir, tensorboard_scalars
from tiny_models import word_level_llama


def scalars(path):
    acc = EventAccumulator(str(path))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"]}


def test_a_tiny_sft_run_writes_its_loss(tmp_path):
    """``train_sft`` through the factory (its checkpoint row recorded) on two exported
    token traces for the word-level tiny Llama."""
    from codemill.factory.training import SftJob, train_sft
    from codemill.train.export import ExportRow, export_parquet

    traces = [TokenTrace(prompt_ids=(5, 6, 7), completion_ids=(3, 4, 8, 2),
                         loss_mask=(1, 1, 1, 1), logprobs=(0.0,) * 4),
              TokenTrace(prompt_ids=(9, 5), completion_ids=(6, 7, 3, 2),
                         loss_mask=(1, 0, 1, 1), logprobs=(0.0,) * 4)]
    data = tmp_path / "data.parquet"
    export_parquet([ExportRow(f"r{i}", "t", "g", "expert", 1.0, "submitted", t)
                    for i, t in enumerate(traces)], data)
    settings = Settings(home=tmp_path / "home")
    tiny = word_level_llama(tmp_path / "tiny")
    seen = []
    sft = train_sft(settings, SftJob(
        model=f"transformers:{tiny}", data="parquet", data_path=str(data),
        train=TrainConfig(steps=3, batch_size=1, lr=1e-2, threads=1, device="cpu")),
        on_step=seen.append)
    assert [m["step"] for m in seen] == [1, 2, 3]  # the caller's callback still runs
    where = logdir(settings.home, sft.checkpoint_id)
    assert where == settings.home / "tb" / sft.checkpoint_id[:16]
    read = scalars(where)
    assert [s for s, _ in read["sft/loss"]] == [1, 2, 3]
    for (_, logged), m in zip(read["sft/loss"], sft.metrics, strict=True):
        assert logged == pytest.approx(m["loss"], rel=1e-6)  # float32 in the event file
    assert "sft/step" not in read


def test_what_becomes_a_scalar(tmp_path):
    with tensorboard_scalars(tmp_path / "run", "grpo") as log:
        log({"step": 1, "loss": None, "reward_mean": 0.5, "live": True, "policy": "x",
             "timing": {"model_s": 2.0, "nan": math.nan}, "groups": 3})
        log({"step": 2, "reward_mean": 0.75})
    read = scalars(tmp_path / "run")
    assert read == {"grpo/reward_mean": [(1, 0.5), (2, 0.75)],
                    "grpo/timing/model_s": [(1, 2.0)], "grpo/groups": [(1, 3.0)]}
    assert logdir(tmp_path, "ckpt:" + "a" * 64) == tmp_path / "tb" / ("a" * 16)
    assert logdir(tmp_path, "openai:qwen@http://h:8000/v1").parent == tmp_path / "tb"
    assert logdir(tmp_path, "../..").parent == tmp_path / "tb"


def test_an_eval_that_runs_writes_its_rates(toy, tmp_path):
    """The oracle on the toy task through ``eval_api.evaluate``: pass@1 and the masked
    rate at step 0 in the model's directory; the cached repeat writes nothing more."""
    from codemill.evals.suites import SuiteRunConfig, SuiteSelection
    from codemill.factory import eval_api
    from evals.conftest import seed
    from rewards.toyproject import _snapshot_record

    catalog = CatalogConfig(uri=f"sqlite:///{tmp_path / 'catalog.db'}",
                            warehouse=(tmp_path / "warehouse").as_uri())
    settings = toy.settings.model_copy(update={"catalog": catalog})
    seed(settings, {"snapshots": [_snapshot_record(toy.home)], "environments": [toy.env],
                    "tasks": [toy.task]})
    eval_api.define_suite(settings, "tb-suite", "1", SuiteSelection(),
                          SuiteRunConfig(k=1, max_turns=3, wall_time_s=120))
    assert eval_api.evaluate(settings, "tb-suite", "oracle").status == "success"
    assert eval_api.evaluate(settings, "tb-suite", "oracle").status == "cached"
    read = scalars(logdir(settings.home, "oracle"))
    assert read["eval/tb-suite/pass@1"] == [(0, 1.0)]
    assert read["eval/tb-suite/masked_rate"] == [(0, 0.0)]
    # a checkpoint's eval lands in its training run's directory, at its last step
    ckpt = "c7" * 32
    seed(settings, {"checkpoints": [{
        "checkpoint_id": ckpt, "kind": "sft", "base_model": "transformers:tiny",
        "parent_id": None, "path": str(word_level_llama(tmp_path / "ckpt")), "lora": False,
        "step": 7, "task_ids": "[]", "snapshot_ids": "[]", "env_ids": "[]",
        "rollout_ids": "[]", "config": "{}", "metrics": "[]"}]})
    assert eval_api.evaluate(settings, "tb-suite", f"ckpt:{ckpt}").status == "success"
    read = scalars(settings.home / "tb" / ckpt[:16])
    assert [s for s, _ in read["eval/tb-suite/masked_rate"]] == [7]
