"""Trajectories to Parquet for other trainers, and back.

One row per rollout; list columns hold the tokens. The column mapping (also in README):

| codemill column   | TRL ``rollout_func`` | veRL ``AgentLoopOutput`` | SkyRL ``GeneratorOutput`` |
|-------------------|----------------------|--------------------------|---------------------------|
| prompt_ids        | prompt_ids           | prompt_ids               | prompt_token_ids          |
| completion_ids    | completion_ids       | response_ids             | response_ids              |
| loss_mask         | env_mask             | response_mask            | loss_masks                |
| logprobs          | logprobs             | response_logprobs        | rollout_logprobs          |
| reward            | (a reward_func kwarg)| reward_score             | rewards                   |
| stop_reason       | -                    | -                        | stop_reasons              |
| rollout_id        | -                    | -                        | trajectory_ids            |
| num_turns         | -                    | num_turns                | -                         |
| group_id, task_id | (rows of one prompt) | uid                      | (grouping)                |

``loss_mask`` is 1 on tokens the model sampled and 0 on tool and template tokens; logprobs
are 0.0 where the mask is 0. ``reward`` is null when the reward was masked (an
infrastructure error): trainers must drop those rows, not read them as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from codemill.core.records import TokenTrace

SCHEMA = pa.schema([
    ("rollout_id", pa.string()), ("task_id", pa.string()), ("group_id", pa.string()),
    ("policy", pa.string()), ("reward", pa.float64()), ("stop_reason", pa.string()),
    ("num_turns", pa.int32()),
    ("prompt_ids", pa.list_(pa.int32())), ("completion_ids", pa.list_(pa.int32())),
    ("loss_mask", pa.list_(pa.int8())), ("logprobs", pa.list_(pa.float32())),
    ("tokenizer_hash", pa.string()), ("temperature", pa.float64()), ("top_p", pa.float64()),
    ("top_k", pa.int32()),
])
"""The export's columns (see the module docstring for their meaning elsewhere)."""


@dataclass(frozen=True)
class ExportRow:
    rollout_id: str
    task_id: str
    group_id: str
    policy: str
    reward: float | None
    stop_reason: str
    trace: TokenTrace


def export_parquet(rows: Iterable[ExportRow], path: Path) -> int:
    """Write ``rows`` to ``path``; returns how many were written."""
    records: list[dict[str, Any]] = []
    for r in rows:
        t = r.trace
        records.append({
            "rollout_id": r.rollout_id, "task_id": r.task_id, "group_id": r.group_id,
            "policy": r.policy, "reward": r.reward, "stop_reason": r.stop_reason,
            "num_turns": len(t.turns), "prompt_ids": list(t.prompt_ids),
            "completion_ids": list(t.completion_ids), "loss_mask": list(t.loss_mask),
            "logprobs": list(t.logprobs), "tokenizer_hash": t.tokenizer_hash,
            "temperature": t.temperature, "top_p": t.top_p, "top_k": t.top_k,
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), path)
    return len(records)


def read_export(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()  # type: ignore[no-any-return]


def trl_rollout_batch(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Exported rows as TRL ``rollout_func``'s return value (``env_mask`` = loss mask;
    extra keys reach the reward functions as keyword arguments)."""
    return {
        "prompt_ids": [list(r["prompt_ids"]) for r in rows],
        "completion_ids": [list(r["completion_ids"]) for r in rows],
        "logprobs": [[float(x) for x in r["logprobs"]] for r in rows],
        "env_mask": [[int(x) for x in r["loss_mask"]] for r in rows],
        "codemill_reward": [r["reward"] for r in rows],
    }
