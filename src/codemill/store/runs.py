"""Rows of the append-only ``runs`` table and the query that lists runs.

A run is written twice: a ``running`` row when it starts and a final row when it ends
(``success``, ``failed``, ``interrupted`` ...). The final row repeats the start row's
command, start time and config, so the latest row of a run is the whole story and a
listing reads one row per run. A run whose process died keeps its ``running`` row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

RUNS = "runs"


def start_row(run_id: str, command: str, config_json: str, config_hash: str) -> dict[str, Any]:
    """The ``running`` row written by ``Ledger.start_run``."""
    return {"run_id": run_id, "command": command, "status": "running",
            "started_at": datetime.now(UTC), "finished_at": None,
            "config_json": config_json, "config_hash": config_hash, "summary_json": None}


def finish_row(run_id: str, status: str, summary_json: str,
               earlier: list[dict[str, Any]]) -> dict[str, Any]:
    """The final row of a run, carrying over what ``earlier`` rows of it recorded."""
    first = min(earlier, key=lambda r: r.get("created_at") or datetime.max.replace(tzinfo=UTC),
                default={})
    return {"run_id": run_id, "command": first.get("command"), "status": status,
            "started_at": first.get("started_at"), "finished_at": datetime.now(UTC),
            "config_json": first.get("config_json"), "config_hash": first.get("config_hash"),
            "summary_json": summary_json}


def latest_runs_sql(limit: int) -> str:
    """DuckDB SQL: the latest row per run, newest run first, with its duration."""
    return f"""
        SELECT run_id, status, command, started_at, finished_at,
               epoch(finished_at) - epoch(started_at) AS duration_s,
               code_version, config_hash, summary_json
        FROM (SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY created_at DESC)
                        AS latest
              FROM {RUNS})
        WHERE latest = 1
        ORDER BY started_at DESC NULLS LAST, run_id DESC
        LIMIT {max(0, int(limit))}
    """
