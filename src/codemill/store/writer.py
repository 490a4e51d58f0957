"""The batched ledger writer: rows in, one Iceberg append per batch, never per row.

Contract:

- ``add(row)`` buffers a copy of the row; the buffer is appended as one commit when it
  holds ``batch_rows`` rows, when its oldest row is older than ``flush_seconds`` (checked
  on ``add``), on ``flush()`` and on ``close()`` / leaving the ``with`` block (also when
  the block raised: rows already added are work done).
- Each commit's snapshot summary carries ``run_id``, ``asset``, ``code_version`` and
  ``config_hash``, plus ``codemill.batch-id``, a fresh id per batch that makes retries
  idempotent: a retry first looks for its batch id among the table's snapshots.
- Rows get ``run_id``, ``code_version`` and ``created_at`` (the flush time, UTC) where they
  leave them out, and are coerced to the table's schema (``codemill.store.coerce``).
- A key the table lacks adds a nullable column (``update_schema().union_by_name``),
  typed from the batch's values; old rows read back with nulls there.
- Writers sharing a SQLite catalog queue on a file lock beside it for each commit, so
  they do not redo work for conflicts among themselves (``catalog.commit_lock``; the
  ``commit_lock`` setting turns it off). A commit
  that still conflicts (another kind of writer, a lock wait that timed out, a REST or
  Postgres catalog) or meets a locked SQLite file is retried on a freshly loaded table
  with jittered exponential backoff, up to ``max_retries`` attempts (each with
  pyiceberg's own quick retries inside).
- A batch that finally cannot be committed (conflicts, a row that cannot be coerced, a
  broken catalog, a full disk) raises ``CommitError`` whose ``rows`` are every row of the
  batch, which was the whole buffer: nothing is dropped silently. The buffer is then
  empty; the caller owns those rows.
- After ``expire_every`` commits of this writer, or whenever the table holds more than
  ``keep_snapshots + expire_every`` snapshots (many short writers), snapshots older than
  the newest ``keep_snapshots`` are expired, which keeps every commit's metadata rewrite
  (and so its cost) bounded. An expiry that loses a race is skipped: the next one will do.

Non-goals: thread safety (use one writer per thread), deduplication (ids dedupe rows at
read time), compaction of small data files.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from codemill.core.config import WriterConfig
from codemill.core.errors import CommitError
from codemill.core.version import code_version
from codemill.store.coerce import RowError, infer_type, new_columns, to_arrow, used_keys

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from codemill.store.reader import LedgerReader

BATCH_ID = "codemill.batch-id"
BACKOFF_BASE_S = 0.02
BACKOFF_CAP_S = 2.0


@dataclass
class WriterStats:
    """What a writer did, for progress lines and benchmarks."""

    rows: int = 0
    commits: int = 0
    retries: int = 0
    schema_changes: int = 0
    expirations: int = 0
    expiry_failures: int = 0
    last_expiry_error: str | None = None


class BatchWriter:
    """Buffer rows for one table and append them in batches; see the module docstring."""

    def __init__(
        self,
        ledger: LedgerReader,
        table: str,
        *,
        run_id: str,
        asset: str,
        config_hash: str,
        config: WriterConfig,
        batch_rows: int | None = None,
    ) -> None:
        self.table = table
        self.stats = WriterStats()
        self._ledger = ledger
        self._config = config
        self._batch_rows = max(1, batch_rows or config.batch_rows)
        self._version = code_version()
        self._props = {"run_id": run_id, "asset": asset, "code_version": self._version,
                       "config_hash": config_hash}
        self._buffer: list[dict[str, Any]] = []
        self._oldest: float | None = None
        self._tbl: Table | None = None
        self._since_expiry = 0
        self._closed = False

    # -- buffering ---------------------------------------------------------------------

    def add(self, row: Mapping[str, Any]) -> None:
        """Buffer one row (copied); may flush. Raises ``CommitError`` if that flush fails."""
        if self._closed:
            raise CommitError(f"writer for {self.table} is closed", self.table, [dict(row)])
        self._buffer.append(dict(row))
        now = time.monotonic()
        if self._oldest is None:
            self._oldest = now
        if (len(self._buffer) >= self._batch_rows
                or now - self._oldest >= self._config.flush_seconds):
            self.flush()

    def add_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """``add`` each row; flushes whenever a batch fills up."""
        for row in rows:
            self.add(row)

    def flush(self) -> None:
        """Append the buffered rows as one commit (nothing happens for an empty buffer)."""
        if not self._buffer:
            return
        rows, self._buffer, self._oldest = self._buffer, [], None
        self._commit(rows)

    def close(self) -> None:
        """Flush what is buffered; the writer accepts no rows afterwards."""
        if self._closed:
            return
        self._closed = True
        self.flush()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- committing --------------------------------------------------------------------

    def _commit(self, rows: list[dict[str, Any]]) -> None:
        props = {**self._props, BATCH_ID: uuid.uuid4().hex}
        defaults = {"run_id": self._props["run_id"], "code_version": self._version,
                    "created_at": datetime.now(UTC)}
        keys = used_keys(rows)
        attempts = max(1, self._config.max_retries)
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                with self._ledger.commit_lock(self._config.commit_lock):
                    if self._attempt(rows, keys, props, defaults, fresh=attempt > 0):
                        break
                continue  # the schema changed under this batch: go again
            except RowError as exc:
                raise CommitError(f"table {self.table}: {exc}", self.table, rows) from exc
            except Exception as exc:  # every failure hands the rows back, never drops them
                if not _retryable(exc):
                    raise CommitError(f"table {self.table}: commit failed: "
                                      f"{type(exc).__name__}: {_line(exc)}",
                                      self.table, rows) from exc
                last = exc
                self._tbl = None
                self.stats.retries += 1
                if attempt + 1 < attempts:
                    cap = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt)
                    time.sleep(random.uniform(cap / 2, cap))
        else:
            raise CommitError(f"table {self.table}: commit failed after {attempts} attempts "
                              f"(concurrent writers?): {_line(last)}", self.table, rows)
        # The rows are in; from here on nothing may look like a failed commit.
        with self._ledger.commit_lock(self._config.commit_lock):
            self._maybe_expire()

    def _attempt(self, rows: list[dict[str, Any]], keys: set[str], props: dict[str, str],
                 defaults: dict[str, Any], fresh: bool) -> bool:
        """One try at committing ``rows``; False when it evolved the schema instead."""
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        tbl = self._table(fresh)
        if fresh and _landed(tbl, props[BATCH_ID]):
            return True  # an earlier attempt did land; committing again would duplicate
        schema = schema_to_pyarrow(tbl.schema(), include_field_ids=False)
        if added := new_columns(rows, schema, keys):
            self._evolve(tbl, rows, added)
            self._tbl = None
            return False
        tbl.append(to_arrow(rows, schema, defaults, keys), snapshot_properties=props)
        self.stats.commits += 1
        self.stats.rows += len(rows)
        self._since_expiry += 1
        return True

    def _table(self, fresh: bool) -> Table:
        """The table to commit to: reloaded when asked or when another writer moved it
        (a cheap catalog lookup), so a commit rarely starts from stale metadata."""
        tbl = self._tbl
        if tbl is None or fresh or (
                self._ledger.current_location(self.table) not in (None, tbl.metadata_location)):
            tbl = self._tbl = self._ledger.load_table(self.table)
        return tbl

    def _evolve(self, tbl: Table, rows: list[dict[str, Any]], added: list[str]) -> None:
        import pyarrow as pa

        fields = [pa.field(name, infer_type([r.get(name) for r in rows]), nullable=True)
                  for name in added]
        with tbl.update_schema() as update:
            update.union_by_name(pa.schema(fields))
        self.stats.schema_changes += 1

    def _maybe_expire(self) -> None:
        tbl = self._tbl
        if tbl is None:
            return
        keep = max(1, self._config.keep_snapshots)
        every = max(1, self._config.expire_every)
        snapshots = tbl.metadata.snapshots
        if self._since_expiry < every and len(snapshots) <= keep + every:
            return
        self._since_expiry = 0
        ordered = sorted(snapshots, key=lambda s: s.timestamp_ms)
        if len(ordered) <= keep:
            return
        # Everything older than the oldest snapshot kept. ``older_than`` skips branch and
        # tag heads and reads the metadata once (``by_ids`` copies it once per id).
        cutoff = datetime.fromtimestamp(ordered[-keep].timestamp_ms / 1000, UTC)
        try:
            tbl.maintenance.expire_snapshots().older_than(cutoff).commit()
            self.stats.expirations += 1
        except Exception as exc:  # maintenance only: a later expiry retries
            # Usually a race lost to another writer's commit; never a reason to fail a
            # commit that already landed. Kept for whoever inspects the writer.
            self.stats.expiry_failures += 1
            self.stats.last_expiry_error = f"{type(exc).__name__}: {_line(exc)}"
            self._tbl = None


def _landed(tbl: Table, batch_id: str) -> bool:
    """Whether a commit of this batch is already in the table (an attempt that did land)."""
    return any(s.summary is not None and s.summary.get(BATCH_ID) == batch_id
               for s in tbl.metadata.snapshots)


def _retryable(exc: BaseException) -> bool:
    from pyiceberg.exceptions import (
        CommitFailedException,
        CommitStateUnknownException,
        ServerError,
        ServiceUnavailableError,
        TooManyRequestsError,
        ValidationException,
        WaitingForLockException,
    )
    from sqlalchemy.exc import OperationalError

    # ValidationException: pyiceberg's own retry found its base snapshot expired by
    # another writer; the append did not land and a fresh attempt will.
    if isinstance(exc, (CommitFailedException, CommitStateUnknownException, ServerError,
                        ServiceUnavailableError, TooManyRequestsError, ValidationException,
                        WaitingForLockException)):
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


def _line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else ""
