"""A Parquet export of token traces feeds TRL's GRPOTrainer (``rollout_func``) for a step."""

import pytest
from tests.train.traces import chat_trace

from codemill.train.export import ExportRow, export_parquet, read_export, trl_rollout_batch

pytestmark = pytest.mark.slow


# TRL and transformers warn about their own deprecations inside GRPOConfig/GRPOTrainer.
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_export_feeds_trl_grpo_trainer_for_one_step(tiny_dir, tokenizer, tmp_path,
                                                    monkeypatch):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    rows = []
    for g, task in enumerate(("t0", "t1")):
        for i, (reply, reward) in enumerate((("Let me look.\n```bash\nls\n```", 0.0),
                                             ('<tool name="submit"></tool>', 1.0))):
            trace = chat_trace(tokenizer, f"task {task}", [reply, "Done."], ["calc.py"])
            rows.append(ExportRow(f"{task}-{i}", task, f"g{g}", "p", reward, "submitted",
                                  trace))
    path = tmp_path / "rollouts.parquet"
    export_parquet(rows, path)
    exported = read_export(path)
    assert [r["loss_mask"] for r in exported] == [list(r.trace.loss_mask) for r in rows]
    by_task = {}
    for r in exported:
        by_task.setdefault(r["task_id"], []).append(r)

    calls = []

    def rollout_func(prompts, trainer):
        """TRL hands each prompt num_generations times in a row (its RepeatSampler): the
        k-th copy of a task's prompt gets the k-th rollout of that task's group."""
        calls.append(list(prompts))
        seen = {}
        picked = []
        for p in prompts:
            picked.append(by_task[p][seen.get(p, 0)])
            seen[p] = seen.get(p, 0) + 1
        return trl_rollout_batch(picked)

    def reward(completions, codemill_reward, **kwargs):
        return list(codemill_reward)

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4,
                      num_generations=2, max_steps=1, learning_rate=1e-2, report_to="none",
                      use_cpu=True, logging_steps=1, save_strategy="no", beta=0.0,
                      bf16=False, max_completion_length=256)
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args,
                          train_dataset=Dataset.from_dict({"prompt": ["t0", "t1"]}),
                          processing_class=tokenizer, rollout_func=rollout_func)
    trainer.train()
    assert calls and sorted(p for c in calls for p in c) == ["t0", "t0", "t1", "t1"]
    changed = [n for n, p in model.named_parameters()
               if not torch.equal(p.detach(), before[n])]
    assert changed, "one GRPO step on the export changed no weight"
    logged = trainer.state.log_history[0]
    assert logged["reward"] == pytest.approx(0.5)
