"""Catalog commit rate with many concurrent writer processes, on SQLite and on PostgreSQL.

Runbook::

    .venv/bin/python bench/bench_catalog_writers.py           # 64 writers and 1, both catalogs
    .venv/bin/python bench/bench_catalog_writers.py --writers 4 --batches 2 --ref-batches 3 \\
        --no-record                                           # a quick smoke run
    .venv/bin/python bench/bench_catalog_writers.py --tables 1,8   # also spread over 8 tables
    .venv/bin/python bench/bench_catalog_writers.py --catalogs sqlite

For each catalog (a SQLite file in a fresh home, the default; and a throwaway PostgreSQL
server started the way the tests start one, ``tests/store/pg_server.py``, one fresh database
per configuration) and each writer count (``--writers`` and 1, the reference):

1. one process makes the ledger (``Ledger.open``), then ``N`` writer processes (the
   ``forkserver`` context, codemill and pyiceberg preloaded) open it, report ready and wait
   for one start signal, so imports and opening are not timed;
2. each writer commits ``--batches`` batches of ``--batch`` small ``test_results`` rows
   through the real ``Ledger.writer`` (one ``flush()`` = one commit, retries, the SQLite
   commit lock and snapshot expiry included, all at their configured defaults); with
   ``--tables 1`` (the default and the worst case) every writer appends to the same table,
   so every commit races every other; ``--tables 1,8`` adds a run that spreads writer ``k``
   over table ``k mod 8`` (copies of ``test_results``' schema; the single writer always
   has one table);
3. reported: commits per second (committed batches / wall seconds from the start signal to
   the last writer's end), p50/p95 of the commit latency a writer sees (its ``flush()``,
   retries and lock waits included), the writer-level retries (``WriterStats.retries``:
   attempts that failed on a conflict or a locked SQLite file after pyiceberg's own quick
   retries), the conflicts pyiceberg retried inside ``append`` (counted from its log
   lines), writers that failed and batches that raised ``CommitError``;
4. the exactly-once check: the table(s) are read back; every row carries its writer, batch
   and row number, so the check is: rows read = rows of committed batches, no row twice,
   every committed batch present with all its rows, no batch that raised present.

Writes ``bench/results/catalog-writers.json`` (``bench/record.py``) unless ``--no-record``;
exits 1 when a writer failed, a batch gave up (``CommitError`` after ``max_retries``) or
the exactly-once check did not hold. The machine's load
average at the start and end is in the result file: on a shared 2-core machine, 64
processes contend for the CPU as much as for the catalog.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import queue
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "store"))  # pg_server: the tests' throwaway server

from record import figure, write_result  # noqa: E402

TABLE = "test_results"
READY_TIMEOUT_S = 600.0
PRELOAD = ["codemill.store.ledger", "pyiceberg.table", "pyiceberg.catalog.sql", "pyarrow",
           "sqlalchemy"]


def _settings(home: str, uri: str | None) -> Any:
    from codemill.core.config import CatalogConfig, Settings

    if uri is None:
        return Settings(home=Path(home))
    return Settings(home=Path(home), catalog=CatalogConfig(
        uri=uri, warehouse=(Path(home) / "wh").resolve().as_uri()))


def _table_for(k: int, tables: int) -> str:
    return TABLE if tables == 1 else f"{TABLE}_w{k % tables}"


def _row(k: int, b: int, j: int) -> dict[str, Any]:
    return {"env_id": "env-bench", "phase": "bench", "run_index": b,
            "node_id": f"w{k}:{b}:{j}", "outcome": "passed", "duration_s": 0.001 * j}


class _PyicebergLog(logging.Handler):
    """Counts what pyiceberg logs about races: one line per conflict it retries inside
    ``append`` (the writer's ``stats.retries`` only sees the ones that outlast those), and
    one per old metadata file another writer had already deleted. Anything else it logs
    is kept (the first few lines) for the report."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.conflicts = 0
        self.delete_races = 0
        self.other: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = str(record.msg)
        if msg.startswith("Commit failed due to a concurrent update"):
            self.conflicts += 1
        elif msg.startswith("Failed to delete metadata file"):
            self.delete_races += 1
        elif len(self.other) < 3:
            self.other.append(record.getMessage()[:300])


def writer_main(k: int, home: str, uri: str | None, tables: int, batches: int, batch: int,
                ready: Any, start: Any, results: Any) -> None:
    """One writer process: open the ledger, wait for the start, commit, report a dict."""
    out: dict[str, Any] = {"k": k, "latencies": [], "committed": [], "failed": [],
                           "retries": 0, "quick_retries": 0, "expiry_failures": 0,
                           "error": None}
    log = _PyicebergLog()
    logging.getLogger("pyiceberg").addHandler(log)
    said_ready = False
    try:
        from codemill.core.errors import CommitError
        from codemill.store.ledger import Ledger

        with Ledger.open(_settings(home, uri), create=False) as ledger:
            ready.put(k)
            said_ready = True
            if not start.wait(READY_TIMEOUT_S):
                raise TimeoutError("no start signal")
            out["t0"] = time.monotonic()
            with ledger.writer(_table_for(k, tables), run_id=f"bench-w{k}", asset="bench",
                               config_hash="bench", batch_rows=batch + 1) as w:
                for b in range(batches):
                    w.add_many(_row(k, b, j) for j in range(batch))
                    t = time.monotonic()
                    try:
                        w.flush()
                        out["committed"].append(b)
                    except CommitError as exc:  # counted and reported, never dropped
                        out["failed"].append([b, str(exc).splitlines()[0][:300]])
                    out["latencies"].append(time.monotonic() - t)
            out["t1"] = time.monotonic()
            out["retries"] = w.stats.retries
            out["expiry_failures"] = w.stats.expiry_failures
            out["quick_retries"] = log.conflicts
            out["delete_races"] = log.delete_races
            out["log"] = log.other
    except BaseException as exc:  # the writer failed: say how, the parent counts it
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]
        out["trace"] = traceback.format_exc()[-2000:]
        if not said_ready:
            ready.put(k)  # do not keep the others waiting for a writer that is gone
    results.put(out)


def run_config(catalog: str, uri: str | None, workdir: Path, n: int, batches: int,
               batch: int, tables: int) -> dict[str, Any]:
    """One configuration: fresh ledger, ``n`` writers, then the read-back check."""
    from codemill.store.ledger import Ledger
    from codemill.store.schemas import TABLES

    home = str(workdir / f"{catalog}-{n}-{tables}")
    with Ledger.open(_settings(home, uri)) as ledger:
        names = sorted({_table_for(k, tables) for k in range(n)})
        for name in names:
            if name != TABLE:
                ledger.create_table(name, TABLES[TABLE])

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=writer_main, args=(k, home, uri, tables, batches, batch,
                                                   ready, start, results))
             for k in range(n)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    for _ in range(n):
        ready.get(timeout=max(1.0, deadline - time.monotonic()))
    t0 = time.monotonic()
    start.set()
    outs: dict[int, dict[str, Any]] = {}
    while len(outs) < n:
        try:
            o = results.get(timeout=5)
            outs[o["k"]] = o
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and results.empty():
                break  # a writer died without a word (killed): counted below
    for p in procs:
        p.join(timeout=60)
    t_end = max((o.get("t1", 0.0) for o in outs.values()), default=time.monotonic())
    wall = max(1e-9, t_end - t0)
    for k, p in enumerate(procs):
        if k not in outs:
            outs[k] = {"k": k, "latencies": [], "committed": [], "failed": [], "retries": 0,
                       "quick_retries": 0, "expiry_failures": 0,
                       "error": f"process exited {p.exitcode} without a result"}

    committed = {(o["k"], b) for o in outs.values() for b in o["committed"]}
    failed_batches = {(o["k"], b) for o in outs.values() for b, _ in o["failed"]}
    with Ledger.open(_settings(home, uri), create=False) as ledger:
        ids: list[str] = []
        for name in names:
            ids += ledger.read(name, columns=["node_id"]).column("node_id").to_pylist()
    counts = Counter(ids)
    per_batch = Counter(i.rsplit(":", 1)[0] for i in ids)
    landed = {(int(w[1:]), int(b)) for w, b in (key.split(":") for key in per_batch)}
    check = {
        "rows_read": len(ids),
        "rows_expected": len(committed) * batch,
        "rows_twice": sum(1 for c in counts.values() if c > 1),
        "batches_landed": len(landed),
        "batches_committed": len(committed),
        "batches_incomplete": sum(1 for c in per_batch.values() if c != batch),
        "committed_missing": len(committed - landed),
        "failed_but_landed": len(failed_batches & landed),
    }
    check["exactly_once"] = (check["rows_read"] == check["rows_expected"]
                             and check["rows_twice"] == 0 and check["batches_incomplete"] == 0
                             and check["committed_missing"] == 0 and landed <= committed)
    lat_ms = sorted(1000 * t for o in outs.values() for t in o["latencies"])
    errors = [f"w{o['k']}: {o['error']}" for o in outs.values() if o["error"]]
    return {
        "catalog": catalog, "writers": n, "batches": batches, "batch": batch, "tables": tables,
        "wall_s": wall, "commits": len(committed), "commits_per_s": len(committed) / wall,
        "p50_ms": statistics.median(lat_ms) if lat_ms else float("nan"),
        "p95_ms": (statistics.quantiles(lat_ms, n=20, method="inclusive")[18] if len(lat_ms) >= 2
                   else (lat_ms[0] if lat_ms else float("nan"))),
        "max_ms": lat_ms[-1] if lat_ms else float("nan"),
        "retries": sum(o["retries"] for o in outs.values()),
        "quick_retries": sum(o["quick_retries"] for o in outs.values()),
        "expiry_failures": sum(o["expiry_failures"] for o in outs.values()),
        "delete_races": sum(o.get("delete_races", 0) for o in outs.values()),
        "log": [line for o in outs.values() for line in o.get("log", [])][:3],
        "writers_failed": len(errors), "errors": errors[:5],
        "traces": [o["trace"] for o in outs.values() if o.get("trace")][:2],
        "batches_failed": len(failed_batches),
        "failures": [f"w{o['k']} b{b}: {m}" for o in outs.values() for b, m in o["failed"]][:5],
        "check": check,
    }


def _print(r: dict[str, Any]) -> None:
    c = r["check"]
    print(f"{r['catalog']:>8} {r['writers']:>3} writers x {r['batches']} batches "
          f"({r['tables']} table(s)): {r['commits']} commits in {r['wall_s']:.1f}s = "
          f"{r['commits_per_s']:.2f}/s, p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
          f"max {r['max_ms']:.0f} ms, retries {r['quick_retries']} quick + {r['retries']} "
          f"writer-level, writers failed "
          f"{r['writers_failed']}, batches failed {r['batches_failed']}, rows "
          f"{c['rows_read']}/{c['rows_expected']}, exactly once: {c['exactly_once']}",
          flush=True)
    for line in r["errors"] + r["failures"] + r["log"]:
        print(f"         {line}", flush=True)
    for trace in r["traces"]:
        print(trace, flush=True)


def _figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    c = r["check"]
    spread = "one table" if r["tables"] == 1 else f"{r['tables']} tables"
    who = (f"{r['catalog']}, {r['writers']} writer{'s' if r['writers'] > 1 else ''}"
           + ("" if r["tables"] == 1 else f" over {r['tables']} tables"))
    return [
        figure(f"{who}: commits per second", r["commits_per_s"], "commits/s",
               commits=r["commits"], wall_s=round(r["wall_s"], 1), writers=r["writers"],
               batches_each=r["batches"], rows_per_batch=r["batch"], tables=spread),
        figure(f"{who}: commit latency p50", r["p50_ms"], "ms", note="one flush() as the "
               "writer sees it: lock wait and retries included"),
        figure(f"{who}: commit latency p95", r["p95_ms"], "ms", max_ms=round(r["max_ms"], 1)),
        figure(f"{who}: conflicts retried inside pyiceberg's append", r["quick_retries"],
               "retries", per_commit=round(r["quick_retries"] / max(1, r["commits"]), 2),
               old_metadata_deletes_lost_to_another_writer=r["delete_races"]),
        figure(f"{who}: writer-level retries", r["retries"], "retries",
               per_commit=round(r["retries"] / max(1, r["commits"]), 2),
               expiry_races_lost=r["expiry_failures"],
               note="attempts that still failed (conflict or locked SQLite) after "
                    "pyiceberg's quick retries; retried on a reloaded table with backoff"),
        figure(f"{who}: writers failed", f"{r['writers_failed']} of {r['writers']}", "",
               batches_failed=r["batches_failed"], first_errors=r["errors"] + r["failures"]),
        figure(f"{who}: every row exactly once", "yes" if c["exactly_once"] else "NO", "",
               **{k: v for k, v in c.items() if k != "exactly_once"}),
    ]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writers", type=int, default=64)
    p.add_argument("--batches", type=int, default=3, help="batches (commits) per writer")
    p.add_argument("--batch", type=int, default=10, help="rows per batch")
    p.add_argument("--ref-batches", type=int, default=40,
                   help="batches of the single-writer reference")
    p.add_argument("--tables", default="1",
                   help="comma-separated: for each T, a many-writer run with writer k on "
                        "table k mod T (1: all on one table, the worst case)")
    p.add_argument("--catalogs", default="sqlite,postgres")
    p.add_argument("--no-record", action="store_true", help="print only, write no result")
    args = p.parse_args(argv)
    catalogs = [c.strip() for c in args.catalogs.split(",") if c.strip()]
    spreads = [int(t) for t in args.tables.split(",") if t.strip()]

    runs: list[dict[str, Any]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="codemill-cw-")))
        for catalog in catalogs:
            server: str | None = None
            if catalog == "postgres":
                from pg_server import create_database, pg_server

                server = stack.enter_context(pg_server())
            elif catalog != "sqlite":
                p.error(f"unknown catalog {catalog!r} (sqlite, postgres)")
            configs = [(1, args.ref_batches, 1)] + [(args.writers, args.batches, t)
                                                    for t in spreads]
            for n, batches, tables in configs:
                uri = None if server is None else create_database(server, f"cw{len(runs)}")
                runs.append(run_config(catalog, uri, tmp, n, batches, args.batch, tables))
                _print(runs[-1])

    ok = all(r["writers_failed"] == 0 and r["batches_failed"] == 0
             and r["check"]["exactly_once"] for r in runs)
    if not args.no_record:
        where = " and then ".join(
            "every writer on one table (each commit races all the others)" if t == 1
            else f"writer k on table k mod {t}" for t in spreads)
        path = write_result("catalog-writers", "Catalog commit rate, concurrent writers",
                            [f for r in runs for f in _figures(r)], measures=(
            f"{args.writers} writer processes (and 1, the reference) each commit small "
            f"batches of {args.batch} `test_results` rows through the real `Ledger.writer` "
            f"into one shared catalog and file warehouse, {where}, on a SQLite catalog "
            "(writers queue on its commit lock) and on a throwaway local PostgreSQL server "
            "(optimistic commits: conflicts retried). Commits/s is committed batches over "
            "the wall time from one start signal to the last writer's end; latency is one "
            "`flush()` as a writer sees it, lock waits and retries included; the table is "
            "read back to check every row landed exactly once."))
        print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
