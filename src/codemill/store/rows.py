"""Core records to ledger rows: flat dicts whose keys are the columns of a table.

``record_to_row(record)`` maps one record to one row of the table ``table_for(record)``
names: enums become their string values, tuples and dicts become JSON strings (canonical:
sorted keys), everything else stays a scalar. Two records fan out to several tables and
have their own helpers:

- a ``Trajectory`` is one ``rollouts`` row (``record_to_row``, with step and token
  totals) plus one ``steps`` row per step (``step_rows``) and, when token-exact, one
  ``trajectories`` row of list columns (``trajectory_row``; ``trace_from_row`` reads it);
  ``rollout_rows`` makes all of them (and the reward's) for a finished rollout: what
  every recording path writes;
- a ``TestReport`` is one ``test_results`` row per test case (``test_result_rows``),
  each carrying the report's command, exit code and parser version.

``row_to_record(cls, row)`` is the inverse for flat records (read rows back as records).
The writer fills ``run_id``, ``code_version`` and ``created_at``; rows here leave them out.
This module imports no pyarrow or pyiceberg, so domain code may build rows cheaply.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel

from codemill.core.records import (
    EnvSpec,
    RepoSnapshot,
    Reward,
    Step,
    TaskSpec,
    TestCaseResult,
    TestReport,
    TokenTrace,
    Trajectory,
)

RecordT = TypeVar("RecordT", bound=BaseModel)

TABLE_FOR_RECORD: dict[type[BaseModel], str] = {
    RepoSnapshot: "snapshots",
    EnvSpec: "environments",
    TestCaseResult: "test_results",
    TaskSpec: "tasks",
    Trajectory: "rollouts",
    Step: "steps",
    Reward: "rewards",
}

RENAMED: dict[type[BaseModel], dict[str, str]] = {
    RepoSnapshot: {"created_at": "source_date"},
}
"""Record fields stored under another column name (see ``codemill.store.schemas``)."""


def to_json(value: Any) -> str:
    """Canonical JSON text of a nested value (records, tuples, dicts, enums)."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (dict, list, tuple, BaseModel)):
        return to_json(value)
    return value


def table_for(record: BaseModel) -> str:
    """The ledger table a record's row belongs to."""
    try:
        return TABLE_FOR_RECORD[type(record)]
    except KeyError:
        raise TypeError(f"no ledger table for {type(record).__name__}") from None


def record_to_row(record: BaseModel) -> dict[str, Any]:
    """One row for ``record`` (see the module docstring for the mapping)."""
    if isinstance(record, Trajectory):
        return _rollout_row(record)
    if isinstance(record, Step):
        raise TypeError("a Step needs its rollout id: use step_rows(trajectory)")
    table_for(record)  # rejects records that have no table
    renamed = RENAMED.get(type(record), {})
    return {renamed.get(name, name): _scalar(getattr(record, name))
            for name in type(record).model_fields}


def _rollout_row(traj: Trajectory) -> dict[str, Any]:
    row = {name: _scalar(getattr(traj, name))
           for name in Trajectory.model_fields if name not in ("steps", "tokens")}
    row["n_steps"] = len(traj.steps)
    row["prompt_tokens"] = sum(s.reply.prompt_tokens for s in traj.steps)
    row["completion_tokens"] = sum(s.reply.completion_tokens for s in traj.steps)
    return row


def step_rows(traj: Trajectory) -> list[dict[str, Any]]:
    """One ``steps`` row per step of ``traj``: the reply flattened, observations as JSON."""
    rows = []
    for step in traj.steps:
        reply, msg = step.reply, step.reply.message
        rows.append({
            "rollout_id": traj.rollout_id, "step_index": step.index, "role": msg.role,
            "content": msg.content, "tool_calls": to_json(msg.tool_calls),
            "finish_reason": reply.finish_reason, "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens, "latency_s": reply.latency_s,
            "token_ids": to_json(reply.token_ids), "logprobs": to_json(reply.logprobs),
            "observations": to_json(step.observations), "tool_seconds": step.tool_seconds,
            "harness_seconds": step.harness_seconds,
        })
    return rows


def trajectory_from_rows(rollout: dict[str, Any], steps: list[dict[str, Any]]
                         ) -> Trajectory:
    """The inverse of ``record_to_row(traj)`` + ``step_rows(traj)``: a rollout read back
    from the ledger with its steps (in ``step_index`` order), e.g. to grade it later."""
    from codemill.core.records import Message, ModelReply

    def loads(text: Any, default: Any) -> Any:
        return json.loads(text) if isinstance(text, str) and text else default

    made = []
    for r in sorted(steps, key=lambda r: int(r["step_index"])):
        msg = Message(role=r["role"], content=r.get("content") or "",
                      tool_calls=loads(r.get("tool_calls"), ()))
        reply = ModelReply(message=msg, prompt_tokens=r.get("prompt_tokens") or 0,
                           completion_tokens=r.get("completion_tokens") or 0,
                           finish_reason=r.get("finish_reason") or "",
                           latency_s=r.get("latency_s") or 0.0,
                           token_ids=loads(r.get("token_ids"), ()),
                           logprobs=loads(r.get("logprobs"), ()))
        made.append(Step(index=int(r["step_index"]), reply=reply,
                         observations=loads(r.get("observations"), ()),
                         tool_seconds=r.get("tool_seconds") or 0.0,
                         harness_seconds=r.get("harness_seconds") or 0.0))
    base = row_to_record(Trajectory, {k: v for k, v in rollout.items() if k != "steps"})
    return base.model_copy(update={"steps": tuple(made)})


def trajectory_row(traj: Trajectory, group_id: str = "") -> dict[str, Any] | None:
    """The ``trajectories`` row of a token-exact rollout (None when it has no tokens)."""
    t = traj.tokens
    if t is None:
        return None
    return {
        "rollout_id": traj.rollout_id, "task_id": traj.task_id, "group_id": group_id,
        "policy": traj.policy, "sample_index": traj.sample_index,
        "stop_reason": _scalar(traj.stop_reason), "prompt_ids": list(t.prompt_ids),
        "completion_ids": list(t.completion_ids), "loss_mask": list(t.loss_mask),
        "logprobs": list(t.logprobs), "turn_starts": [a for a, _ in t.turns],
        "turn_ends": [b for _, b in t.turns], "tokenizer_hash": t.tokenizer_hash,
        "temperature": t.temperature, "top_p": t.top_p, "top_k": t.top_k,
    }


def rollout_rows(traj: Trajectory, *, env_id: str, group_id: str,
                 reward: Reward | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every row of one finished rollout, as ``(table, row)`` in write order: its
    ``rollouts`` row (with ``env_id`` and ``group_id``), one ``steps`` row per step, the
    ``trajectories`` row when it is token-exact, and the ``rewards`` row when graded.
    The one place these rows are made, so every path that records a rollout writes the
    same tables with the same columns filled."""
    row = record_to_row(traj)
    row.update(env_id=env_id, group_id=group_id)
    out: list[tuple[str, dict[str, Any]]] = [("rollouts", row)]
    out.extend(("steps", s) for s in step_rows(traj))
    tokens = trajectory_row(traj, group_id)
    if tokens is not None:
        out.append(("trajectories", tokens))
    if reward is not None:
        out.append(("rewards", record_to_row(reward)))
    return out


def trace_from_row(row: dict[str, Any]) -> TokenTrace:
    """The ``TokenTrace`` of a ``trajectories`` row."""
    return TokenTrace(
        prompt_ids=tuple(row["prompt_ids"]), completion_ids=tuple(row["completion_ids"]),
        loss_mask=tuple(row["loss_mask"]), logprobs=tuple(row["logprobs"]),
        turns=tuple(zip(row["turn_starts"], row["turn_ends"], strict=True)),
        tokenizer_hash=row.get("tokenizer_hash") or "",
        temperature=row.get("temperature") or 0.0, top_p=row.get("top_p") or 1.0,
        top_k=row.get("top_k") or 0)


def test_result_rows(
    report: TestReport,
    *,
    env_id: str,
    run_index: int = 0,
    phase: str = "",
    task_id: str | None = None,
    rollout_id: str | None = None,
) -> list[dict[str, Any]]:
    """One ``test_results`` row per test case of ``report``, with the report's fields.

    ``phase`` says why the suite ran (``baseline``, ``validation``, ``grading`` ...);
    ``run_index`` tells repeated runs apart (flakiness checks).
    """
    shared = {
        "env_id": env_id, "task_id": task_id, "rollout_id": rollout_id, "phase": phase,
        "run_index": run_index, "command": to_json(report.command),
        "exit_code": report.exit_code, "report_duration_s": report.duration_s,
        "timed_out": report.timed_out, "parser_version": report.parser_version,
        "report_error": report.error,
    }
    return [{**shared, **record_to_row(case)} for case in report.results]


def reports_from_rows(rows: list[dict[str, Any]]) -> list[TestReport]:
    """The inverse of ``test_result_rows`` for one phase of one environment: a report per
    ``run_index``, in order (e.g. the build's k baseline runs, reused by task validation)."""
    from codemill.core.records import TestCaseResult

    runs: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault(int(row.get("run_index") or 0), []).append(row)
    reports = []
    for _, group in sorted(runs.items()):
        first = group[0]
        cases = tuple(row_to_record(TestCaseResult, r)
                      for r in sorted(group, key=lambda r: r["node_id"]))
        reports.append(TestReport(
            command=tuple(json.loads(first["command"]) if first.get("command") else ()),
            exit_code=first.get("exit_code"), duration_s=first.get("report_duration_s") or 0.0,
            timed_out=bool(first.get("timed_out")), results=cases,
            parser_version=first.get("parser_version") or "", error=first.get("report_error")))
    return reports


test_result_rows.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


_TEXT_TYPES = (str, str | None)


def row_to_record(cls: type[RecordT], row: dict[str, Any]) -> RecordT:
    """The inverse of ``record_to_row`` for flat records: reads ``cls``'s fields from
    ``row`` (renamed columns included), decodes JSON text of nested fields, and drops the
    ledger's own columns (``run_id``, ``created_at`` ...)."""
    renamed = RENAMED.get(cls, {})
    data: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        column = renamed.get(name, name)
        if column not in row:
            continue
        value = row[column]
        if value is None:
            if info.is_required():  # e.g. a masked reward's value: None is the data
                data[name] = None
            continue  # a column added after the row was written: the field's default
        # Nested values were written as JSON arrays/objects; enums and text stay as text.
        if (isinstance(value, str) and info.annotation not in _TEXT_TYPES
                and value[:1] in ("[", "{")):
            value = json.loads(value)
        data[name] = value
    return cls.model_validate(data)
