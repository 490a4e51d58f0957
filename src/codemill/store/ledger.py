"""The ledger: the read side (``codemill.store.reader``) plus writing rows.

    ledger = Ledger.open(settings)            # creates catalog, namespace, tables if missing
    with ledger.writer("tasks", run_id=..., asset="tasks", config_hash=...) as w:
        w.add(row)
    ledger.start_run(run_id, "factory materialize", config)
    ledger.finish_run(run_id, "success", summary)

Only ``codemill.factory`` writes (DESIGN.md rule 1; the ``cli-reads-only`` import-linter
contract keeps the CLI on ``LedgerReader``). ``Ledger.open(settings, create=False)`` is
for read commands: it creates nothing and raises ``CatalogError`` ("no ledger at ...")
where there is none. A commit that fails raises ``CommitError``
(``codemill.store.writer``).
"""

from __future__ import annotations

from typing import Any, Self

from codemill.core.config import Settings
from codemill.core.ids import content_id
from codemill.store.reader import LedgerReader
from codemill.store.rows import to_json
from codemill.store.runs import RUNS, finish_row, start_row
from codemill.store.writer import BatchWriter

__all__ = ["Ledger", "LedgerReader"]


class Ledger(LedgerReader):
    """The ledger, to read and write; see the module docstring."""

    @classmethod
    def open(cls, settings: Settings, create: bool = True) -> Self:
        """Open the ledger of ``settings``; with ``create``, make what is missing."""
        return super().open(settings, create=create)

    # -- writing -----------------------------------------------------------------------

    def writer(self, table: str, run_id: str, asset: str, config_hash: str,
               batch_rows: int | None = None) -> BatchWriter:
        """A batched writer for ``table`` (``codemill.store.writer``); use it in ``with``."""
        self._require(table)
        return BatchWriter(self, table, run_id=run_id, asset=asset, config_hash=config_hash,
                           config=self.settings.writer, batch_rows=batch_rows)

    def start_run(self, run_id: str, command: str, config: dict[str, Any]) -> None:
        """Record a run as ``running`` (one committed row in ``runs``)."""
        row = start_row(run_id, command, to_json(config), content_id(config))
        with self.writer(RUNS, run_id, asset=RUNS, config_hash=row["config_hash"]) as w:
            w.add(row)

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        """Record a run's end (a new row: the table is append-only)."""
        from pyiceberg.expressions import EqualTo

        by_id = EqualTo("run_id", run_id)  # type: ignore[call-arg,arg-type]  # pydantic init
        started = self.read(RUNS, row_filter=by_id).to_pylist()
        row = finish_row(run_id, status, to_json(summary), started)
        with self.writer(RUNS, run_id, asset=RUNS, config_hash=row["config_hash"] or "") as w:
            w.add(row)
