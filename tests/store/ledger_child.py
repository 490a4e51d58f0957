"""A writer process for the ledger reliability tests (a script, not a test module).

    python ledger_child.py HOME TABLE WORKER N_BATCHES BATCH [--resume] [--no-lock]

Writes ``N_BATCHES`` batches of ``BATCH`` rows with unique ids ``WORKER:b:j`` through one
``Ledger.writer`` (one commit per batch) and prints ``committed b`` after each commit.
With ``--resume`` it first reads the ids already in TABLE and writes only the missing
ones, as an asset rerun after a crash does. ``--no-lock`` commits without the SQLite
commit lock, so concurrent writers conflict and must retry.
"""

from __future__ import annotations

import sys
from pathlib import Path

from codemill.core.config import Settings, WriterConfig
from codemill.store.ledger import Ledger


def main(argv: list[str]) -> int:
    home, table, worker = Path(argv[0]), argv[1], argv[2]
    n_batches, batch = int(argv[3]), int(argv[4])
    resume = "--resume" in argv
    writer = WriterConfig(batch_rows=batch, flush_seconds=60,
                          commit_lock="--no-lock" not in argv)
    settings = Settings(home=home, writer=writer)
    with Ledger.open(settings) as ledger:
        done: set[str] = set()
        if resume:
            done = set(ledger.read(table, columns=["item_id"]).column("item_id").to_pylist())
        with ledger.writer(table, run_id=f"child-{worker}", asset="items",
                           config_hash="test") as w:
            for b in range(n_batches):
                before = w.stats.commits
                for j in range(batch):
                    item = f"{worker}:{b}:{j}"
                    if item not in done:
                        w.add({"item_id": item, "n": b})
                if w.stats.commits > before:  # batch b is in the table now
                    print(f"committed {b}", flush=True)
    print(f"done retries={w.stats.retries}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
