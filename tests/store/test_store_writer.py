"""The batched writer: one commit per batch, snapshot properties, coercion, schema
evolution, expiry, and rows handed back (never dropped) when a batch cannot commit."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pytest

from codemill.core.config import WriterConfig
from codemill.core.errors import CommitError, UnknownTableError
from codemill.core.version import code_version
from codemill.store.writer import BatchWriter


class Color(StrEnum):
    RED = "red"


def _writer(ledger, table, **cfg) -> BatchWriter:
    return BatchWriter(ledger, table, run_id="run-w", asset="items", config_hash="cfg-1",
                       config=WriterConfig(**cfg))


def test_rows_are_committed_per_batch_not_per_row(shared_ledger, fresh_table):
    table = fresh_table()
    with shared_ledger.writer(table, run_id="run-b", asset="items", config_hash="h",
                              batch_rows=40) as w:
        w.add_many({"item_id": str(i), "n": i} for i in range(100))
        assert w.stats.commits == 2  # 40 + 40 flushed while adding; 20 wait for close
    assert w.stats.commits == 3 and w.stats.rows == 100
    tbl = shared_ledger.load_table(table)
    assert len(tbl.metadata.snapshots) == 3
    assert sorted(shared_ledger.read(table).column("n").to_pylist()) == list(range(100))


def test_snapshot_summary_carries_lineage(shared_ledger, fresh_table):
    table = fresh_table()
    with _writer(shared_ledger, table) as w:
        w.add({"item_id": "a"})
    summary = shared_ledger.load_table(table).current_snapshot().summary
    assert summary["run_id"] == "run-w"
    assert summary["asset"] == "items"
    assert summary["config_hash"] == "cfg-1"
    assert summary["code_version"] == code_version()
    row = shared_ledger.read(table).to_pylist()[0]
    assert row["run_id"] == "run-w" and row["code_version"] == code_version()
    assert datetime.now(UTC) - row["created_at"] < timedelta(minutes=5)


def test_time_bound_flushes_on_add(shared_ledger, fresh_table):
    table = fresh_table()
    w = _writer(shared_ledger, table, batch_rows=1000, flush_seconds=0.3)
    w.add({"item_id": "first"})
    assert w.stats.commits == 0
    time.sleep(0.35)
    w.add({"item_id": "late"})  # the buffer's oldest row is past the bound
    assert w.stats.commits == 1
    assert shared_ledger.read(table).num_rows == 2
    w.close()
    assert w.stats.commits == 1  # nothing left to flush


def test_leaving_with_on_an_exception_still_commits_added_rows(shared_ledger, fresh_table):
    table = fresh_table()
    with pytest.raises(RuntimeError), _writer(shared_ledger, table) as w:
        w.add({"item_id": "kept"})
        raise RuntimeError("asset failed half way")
    assert shared_ledger.read(table).column("item_id").to_pylist() == ["kept"]


def test_values_are_coerced_losslessly(shared_ledger, fresh_table):
    table = fresh_table(pa.schema([
        ("item_id", pa.string()), ("n", pa.int64()), ("x", pa.float64()), ("ok", pa.bool_()),
        ("at", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
        ("code_version", pa.string()), ("created_at", pa.timestamp("us", tz="UTC")),
    ]))
    plus2 = timezone(timedelta(hours=2))
    with _writer(shared_ledger, table) as w:
        w.add({"item_id": Color.RED, "n": 2.0, "x": 1, "ok": True,
               "at": datetime(2024, 1, 1, 12, tzinfo=plus2)})
        w.add({"item_id": {"b": 1, "a": [1, 2]}, "n": "7", "at": "2024-01-01T10:00:00Z"})
        w.add({"item_id": 5, "at": datetime(2024, 1, 1, 10)})  # naive means UTC
    rows = sorted(shared_ledger.read(table).to_pylist(), key=lambda r: r["item_id"])
    assert [r["item_id"] for r in rows] == ["5", "red", '{"a":[1,2],"b":1}']
    assert [r["n"] for r in rows] == [None, 2, 7]
    assert {r["at"] for r in rows} == {datetime(2024, 1, 1, 10, tzinfo=UTC)}


@pytest.mark.parametrize("bad", [{"n": 1.5}, {"n": "many"}, {"n": True}, {"n": object()}])
def test_a_row_that_cannot_be_coerced_hands_every_row_back(shared_ledger, fresh_table, bad):
    table = fresh_table()
    rows = [{"item_id": "a", "n": 1}, {"item_id": "b", **bad}, {"item_id": "c"}]
    w = _writer(shared_ledger, table)
    w.add_many(rows)
    with pytest.raises(CommitError) as info:
        w.close()
    assert "row 1" in str(info.value) and "'n'" in str(info.value)
    assert info.value.table == table
    assert [r["item_id"] for r in info.value.rows] == ["a", "b", "c"]
    assert shared_ledger.read(table).num_rows == 0  # the batch is all or nothing


def test_new_column_evolves_schema_and_old_rows_read_null(shared_ledger, fresh_table):
    table = fresh_table()
    with _writer(shared_ledger, table) as w:
        w.add({"item_id": "old", "n": 1})
    with _writer(shared_ledger, table) as w:
        w.add({"item_id": "new", "n": 2, "score": 0.5, "tags": ["x", "y"], "note": None})
    assert w.stats.schema_changes == 1
    data = {r["item_id"]: r for r in shared_ledger.read(table).to_pylist()}
    assert data["old"]["score"] is None and data["old"]["tags"] is None
    assert data["new"]["score"] == 0.5 and data["new"]["tags"] == '["x","y"]'
    assert "note" not in data["new"]  # only-null keys add no column
    schema = shared_ledger.load_table(table).schema()
    assert str(schema.find_field("score").field_type) == "double"
    assert not schema.find_field("score").required


def test_old_snapshots_are_expired_on_schedule(shared_ledger, fresh_table):
    table = fresh_table()
    with _writer(shared_ledger, table, batch_rows=1, expire_every=5, keep_snapshots=3) as w:
        w.add_many({"item_id": str(i)} for i in range(23))
    tbl = shared_ledger.load_table(table)
    assert w.stats.expirations == 4  # after commits 5, 10, 15, 20
    assert len(tbl.metadata.snapshots) == 3 + 3  # kept 3 at commit 20, then 21..23
    assert shared_ledger.read(table).num_rows == 23  # expiry removes history, not rows


def test_a_broken_table_fails_the_batch_and_hands_rows_back(tmp_path):
    from codemill.store.ledger import Ledger

    from .conftest import make_settings

    with Ledger.open(make_settings(tmp_path / "h")) as ledger:
        w = ledger.writer("runs", run_id="r", asset="runs", config_hash="h", batch_rows=2)
        w.add_many([{"command": "a"}, {"command": "b"}])
        meta = Path(ledger.load_table("runs").metadata_location.removeprefix("file://"))
        meta.write_text(meta.read_text()[:50])  # the catalog now points at a torn file
        w.add({"command": "c"})
        with pytest.raises(CommitError) as info:
            w.add({"command": "d"})
        assert "runs" in str(info.value) and "\n" not in str(info.value)
        assert [r["command"] for r in info.value.rows] == ["c", "d"]
        w.close()  # the failed rows were handed over; nothing is left to flush


def test_unknown_table_is_refused_before_any_row(shared_ledger):
    with pytest.raises(UnknownTableError, match="no_such_table"):
        shared_ledger.writer("no_such_table", run_id="r", asset="a", config_hash="h")
