"""The ledger's tables: one explicit Arrow schema per table, and its Iceberg form.

Columns mirror the records of ``codemill.core.records`` (``codemill.store.rows`` maps a
record to a row). Conventions:

- every table has ``run_id``, ``code_version`` (strings) and ``created_at`` (timestamp,
  UTC, microseconds), filled by the writer when a row leaves them out;
- nested values (tuples of records, dicts, lists) are JSON strings, so every column is a
  flat scalar that DuckDB, Polars and Spark read without a schema of their own;
- every column is nullable: the ledger is append-only and columns added later by schema
  evolution are nullable too, so old rows read back with nulls;
- no partitioning (the tables are small enough; add a spec when one is not).

A record field called ``created_at`` (``RepoSnapshot``'s commit date) is stored as
``source_date`` so it does not collide with the row's own ``created_at``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyiceberg.schema import Schema

STR, INT, FLT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")

COMMON: tuple[tuple[str, pa.DataType], ...] = (
    ("run_id", STR), ("code_version", STR), ("created_at", TS),
)
"""The columns every table ends with."""

_COLUMNS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "runs": (
        ("command", STR), ("status", STR), ("started_at", TS), ("finished_at", TS),
        ("config_json", STR), ("config_hash", STR), ("summary_json", STR),
    ),
    "materializations": (
        ("cache_key", STR), ("asset", STR), ("asset_version", STR), ("upstream_json", STR),
        ("config_hash", STR), ("status", STR), ("rows", INT), ("seconds", FLT), ("error", STR),
    ),
    "snapshots": (
        ("snapshot_id", STR), ("source", STR), ("source_kind", STR), ("commit", STR), ("path", STR),
        ("n_files", INT), ("n_bytes", INT), ("n_skipped", INT), ("name", STR), ("source_date", STR),
    ),
    "environments": (
        ("env_id", STR), ("snapshot_id", STR), ("python", STR), ("python_path", STR),
        ("lock_hash", STR), ("lock", STR), ("builder_version", STR), ("venv_path", STR),
        ("test_command", STR), ("status", STR), ("reason", STR), ("build_seconds", FLT),
        ("n_tests", INT), ("n_passing", INT), ("n_flaky", INT), ("env_vars", STR),
    ),
    "test_results": (
        ("env_id", STR), ("task_id", STR), ("rollout_id", STR), ("phase", STR), ("run_index", INT),
        ("node_id", STR), ("outcome", STR), ("duration_s", FLT), ("message", STR),
        ("command", STR), ("exit_code", INT), ("report_duration_s", FLT), ("timed_out", BOOL),
        ("parser_version", STR), ("report_error", STR),
    ),
    "tasks": (
        ("task_id", STR), ("env_id", STR), ("kind", STR), ("broken_patch", STR),
        ("gold_patch", STR), ("test_patch", STR), ("fail_to_pass", STR), ("pass_to_pass", STR),
        ("problem_statement", STR), ("hidden_paths", STR), ("metadata", STR),
    ),
    "task_validations": (
        ("task_id", STR), ("env_id", STR), ("valid", BOOL), ("reason", STR), ("runs", INT),
        ("fail_to_pass_ok", BOOL), ("pass_to_pass_ok", BOOL), ("flaky_tests", STR),
        ("test_strength", FLT), ("seconds", FLT), ("details", STR),
    ),
    "rollouts": (
        ("rollout_id", STR), ("task_id", STR), ("env_id", STR), ("group_id", STR), ("policy", STR),
        ("sample_index", INT), ("system_prompt", STR), ("task_prompt", STR), ("stop_reason", STR),
        ("diff", STR), ("wall_seconds", FLT), ("error", STR), ("n_steps", INT),
        ("prompt_tokens", INT), ("completion_tokens", INT),
    ),
    "steps": (
        ("rollout_id", STR), ("step_index", INT), ("role", STR), ("content", STR),
        ("tool_calls", STR), ("finish_reason", STR), ("prompt_tokens", INT),
        ("completion_tokens", INT), ("latency_s", FLT), ("token_ids", STR), ("logprobs", STR),
        ("observations", STR), ("tool_seconds", FLT), ("harness_seconds", FLT),
    ),
    # Token-exact trajectories (codemill.core.records.TokenTrace): list columns, the one
    # exception to the JSON-text rule, so trainers read tokens straight from Arrow.
    "trajectories": (
        ("rollout_id", STR), ("task_id", STR), ("group_id", STR), ("policy", STR),
        ("sample_index", INT), ("stop_reason", STR),
        ("prompt_ids", pa.list_(pa.int32())), ("completion_ids", pa.list_(pa.int32())),
        ("loss_mask", pa.list_(pa.int8())), ("logprobs", pa.list_(pa.float32())),
        ("turn_starts", pa.list_(pa.int32())), ("turn_ends", pa.list_(pa.int32())),
        ("tokenizer_hash", STR), ("temperature", FLT), ("top_p", FLT), ("top_k", INT),
    ),
    "rewards": (
        ("reward_id", STR), ("rollout_id", STR), ("task_id", STR), ("env_id", STR), ("policy", STR),
        ("value", FLT), ("resolved", BOOL), ("f2p_passed", INT), ("f2p_total", INT),
        ("p2p_regressions", STR), ("masked", BOOL), ("error_type", STR), ("flags", STR),
        ("test_command", STR), ("parser_version", STR), ("harness_version", STR),
        ("grading_seconds", FLT),
    ),
    # Columns agreed with the training helper (branch ``train``): lineage as JSON lists.
    "checkpoints": (
        ("checkpoint_id", STR), ("parent_id", STR), ("policy", STR), ("algorithm", STR),
        ("step", INT), ("path", STR), ("n_rollouts", INT), ("mean_reward", FLT),
        ("metrics", STR), ("config_json", STR),
        # lineage (codemill.factory.training): kind 'sft' | 'grpo', base_model a model
        # spec, the id lists JSON text, config the resolved TrainConfig as JSON
        ("kind", STR), ("base_model", STR), ("lora", BOOL), ("task_ids", STR),
        ("snapshot_ids", STR), ("env_ids", STR), ("rollout_ids", STR), ("config_hash", STR),
        ("config", STR),
        # what the job read: trajectories, resolved, sequences, left out, masked (JSON)
        ("data", STR),
    ),
    "evals": (
        ("eval_id", STR), ("suite", STR), ("policy", STR), ("checkpoint_id", STR), ("metric", STR),
        ("value", FLT), ("ci_low", FLT), ("ci_high", FLT), ("k", INT), ("n_tasks", INT),
        ("n_samples", INT), ("details", STR),
    ),
    # Evals (codemill.evals, persisted by codemill.factory.evaluation).
    "suites": (
        ("suite_id", STR), ("name", STR), ("version", STR), ("k", INT), ("n_tasks", INT),
        ("selection", STR), ("run_config", STR), ("description", STR),
    ),
    "suite_tasks": (
        ("suite_id", STR), ("task_id", STR), ("env_id", STR), ("project", STR), ("kind", STR),
        ("difficulty", STR), ("strength", STR),
    ),
    "eval_samples": (
        ("eval_id", STR), ("suite_id", STR), ("variant", STR), ("task_id", STR),
        ("sample_index", INT), ("rollout_id", STR), ("resolved", BOOL), ("masked", BOOL),
        ("error_type", STR), ("flags", STR), ("stop_reason", STR), ("tokens", INT),
        ("model_seconds", FLT), ("sandbox_seconds", FLT), ("wall_seconds", FLT),
        ("project", STR), ("kind", STR), ("difficulty", STR), ("contaminated", BOOL),
    ),
    "judgments": (
        ("judgment_id", STR), ("rollout_id", STR), ("task_id", STR), ("variant", STR),
        ("judge", STR), ("rubric_version", STR), ("scores", STR), ("overall", FLT),
        ("verdict", BOOL), ("rationale", STR), ("resolved", BOOL), ("error", STR),
    ),
    "vibe_checks": (
        ("vibe_id", STR), ("request_id", STR), ("kind", STR), ("variant", STR), ("env_id", STR),
        ("request", STR), ("answer", STR), ("diff", STR), ("check", STR), ("check_passed", BOOL),
        ("judge", STR), ("preference", STR), ("details", STR),
    ),
}

TABLES: dict[str, pa.Schema] = {
    name: pa.schema([pa.field(n, t, nullable=True) for n, t in cols + COMMON])
    for name, cols in _COLUMNS.items()
}
"""Every table of the ledger, by name, as an Arrow schema."""

TABLE_PROPERTIES: dict[str, str] = {
    # Fast appends add one manifest per commit; merging keeps the manifest list short so
    # commit cost does not grow with the number of commits.
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "50",
    # Each commit writes a new metadata file; keep only a few (and only a short log of
    # them inside the metadata, which every commit rewrites).
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "10",
    # pyiceberg's own fast retry of a conflicting commit (no data rewrite); the writer
    # retries on top of it with a fresh table (codemill.store.writer).
    "commit.retry.num-retries": "4",
    "commit.retry.min-wait-ms": "20",
    "commit.retry.max-wait-ms": "1000",
}
"""Iceberg table properties set when codemill creates a table."""


def arrow_schema(table: str) -> pa.Schema:
    """The declared Arrow schema of ``table`` (``KeyError`` for an unknown name)."""
    return TABLES[table]


def iceberg_schema(table: str | pa.Schema) -> Schema:
    """The Iceberg schema of a declared table (or of any Arrow schema), with fresh ids."""
    from pyiceberg.catalog import Catalog
    from pyiceberg.schema import assign_fresh_schema_ids

    schema = TABLES[table] if isinstance(table, str) else table
    return assign_fresh_schema_ids(Catalog._convert_schema_if_needed(schema))
