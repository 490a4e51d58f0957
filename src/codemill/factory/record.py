"""Recorded commands: the factory's write path for work that is not a cached asset.

``codemill run``, ``env build`` and ``solve`` materialize assets (``materialize.py``).
Commands that decide or score items one by one on the user's request (``tasks
synth|features|mine|validate|import``, ``grade --record``, ``rollout``, the rollout of
``solve``) record through here instead, so only the factory writes the ledger (through
``materialize`` for assets, through this module for recorded commands), and rows are
tagged with the asset that owns their table (``OWNER``) whichever command made them::

    with recorded_run(settings, "tasks synth", config) as rec:
        rec.add(validation_row)            # -> task_validations, asset "tasks"
        rec.add(task)                      # a record: its table from codemill.store.rows
        rec.flush()                        # commit what was added (e.g. per candidate)
        rec.summary["tasks"] = [...]       # stored with the run's end

The run is a ``runs`` row (``running`` at the start; ``ok``, ``failed`` or
``interrupted`` at the end, with ``summary``). A row whose table is not in ``OWNER`` is a
programming error and raises before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from pydantic import BaseModel

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.core.ids import new_run_id

OWNER: dict[str, str] = {
    "snapshots": "snapshots",
    "environments": "environments",
    "test_results": "environments",
    "tasks": "tasks",
    "task_validations": "tasks",
    "rollouts": "rollouts",
    "steps": "rollouts",
    "trajectories": "rollouts",
    "rewards": "rewards",
}
"""Each table recorded outside ``materialize``, and the asset (of ``pipeline.py``) whose
rows it holds: the name its commits and rows are tagged with."""


class Recording:
    """Writers of one recorded run, opened on first use per table."""

    def __init__(self, ledger: Any, run_id: str, config_hash: str, stack: ExitStack) -> None:
        self.run_id = run_id
        self.summary: dict[str, Any] = {}
        """Stored as the run's summary when it ends."""
        self._ledger = ledger
        self._config_hash = config_hash
        self._stack = stack
        self._writers: dict[str, Any] = {}

    def add(self, item: BaseModel | Mapping[str, Any], table: str | None = None) -> None:
        """Buffer one row: a core record (table from ``codemill.store.rows``) or a dict
        for ``table``."""
        from codemill.store.rows import record_to_row, table_for

        if isinstance(item, BaseModel):
            table, row = table or table_for(item), record_to_row(item)
        elif table is None:
            raise FactoryError("a plain row needs its table")
        else:
            row = dict(item)
        self._writer(table).add(row)

    def add_many(self, rows: list[dict[str, Any]], table: str) -> None:
        for row in rows:
            self.add(row, table)

    def flush(self) -> None:
        """Commit every buffered row now (one commit per table with rows)."""
        for w in self._writers.values():
            w.flush()

    def _writer(self, table: str) -> Any:
        if table not in OWNER:
            raise FactoryError(f"table {table!r} is not recorded by commands "
                               f"(known: {', '.join(sorted(OWNER))})")
        if table not in self._writers:
            self._writers[table] = self._stack.enter_context(self._ledger.writer(
                table, run_id=self.run_id, asset=OWNER[table], config_hash=self._config_hash))
        return self._writers[table]


@contextmanager
def recorded_run(settings: Settings, command: str, config: Mapping[str, Any]
                 ) -> Iterator[Recording]:
    """A ``runs`` row for ``command`` around the rows added to the ``Recording``; rows
    added before an exception are committed (work done), and the run ends ``failed``."""
    from codemill.store.ledger import Ledger

    run_id = new_run_id()
    with Ledger.open(settings) as ledger:
        ledger.start_run(run_id, command, dict(config))
        status = "failed"
        rec: Recording | None = None
        try:
            with ExitStack() as stack:
                rec = Recording(ledger, run_id, settings.config_hash, stack)
                yield rec
            status = "ok"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            ledger.finish_run(run_id, status, rec.summary if rec is not None else {})


def validation_row(v: Any) -> dict[str, Any]:
    """The ``task_validations`` row of a ``TaskValidation`` (nested fields as JSON)."""
    from codemill.store.rows import to_json

    row = v.model_dump()
    row["flaky_tests"] = to_json(v.flaky_tests)
    row["details"] = to_json(v.details)
    return row
