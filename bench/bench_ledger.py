"""Ledger write figures: batched append throughput and commit latency over many commits.

Runbook::

    .venv/bin/python bench/bench_ledger.py                      # 1,000,000 rows, 1,000 commits
    .venv/bin/python bench/bench_ledger.py --rows 200000 --commits 300   # quicker
    .venv/bin/python bench/bench_ledger.py --expire-every 100   # try another expiry cadence

It makes a fresh ledger (SQLite catalog, file warehouse) in a temporary directory and:

1. appends ``--rows`` small ``test_results`` rows through ``Ledger.writer`` with the
   configured batch size and reports rows/s (end to end: buffering, coercion, Parquet,
   commits);
2. makes ``--commits`` consecutive batch commits of ``--batch`` rows each (one
   ``flush()`` each, snapshot expiry included when it falls due) and reports p50/p95
   latency, and the latency around the 10th and the last commit as a moving median over
   21 commits (clamped at the ends) so one slow disk write does not decide it; the same
   for process CPU time, which a machine busy with other work disturbs less.

The goal: commit cost stays flat, i.e. last <= 2 x 10th. Every commit rewrites the
table metadata, which lists all live snapshots; expiring old snapshots is what keeps it
bounded. Settings come from the environment (``CODEMILL_WRITER__*``) or the flags. Writes
``bench/results/ledger.json`` (``bench/record.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from codemill.core.config import Settings
from codemill.store.ledger import Ledger
from record import figure, write_result

TABLE = "test_results"


def _row(i: int) -> dict:
    return {"env_id": "env-bench", "phase": "bench", "run_index": 0,
            "node_id": f"tests/test_mod.py::test_{i}", "outcome": "passed",
            "duration_s": 0.001 * (i % 7)}


def _moving_median(values: list[float], center: int, half: int = 10) -> float:
    lo = max(0, center - half)
    hi = min(len(values), center + half + 1)
    return statistics.median(values[lo:hi])


def throughput(ledger: Ledger, n_rows: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    with ledger.writer(TABLE, run_id="bench-throughput", asset="bench",
                       config_hash="bench") as w:
        for i in range(n_rows):
            w.add(_row(i))
    seconds = time.perf_counter() - start
    return seconds, w.stats.commits, w.stats.expirations


def latency(ledger: Ledger, n_commits: int, batch: int
            ) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds of each of ``n_commits`` flushes of ``batch`` rows."""
    times: list[float] = []
    cpu: list[float] = []
    with ledger.writer(TABLE, run_id="bench-latency", asset="bench",
                       config_hash="bench", batch_rows=batch + 1) as w:
        for c in range(n_commits):
            for j in range(batch):
                w.add(_row(c * batch + j))
            start, start_cpu = time.perf_counter(), time.process_time()
            w.flush()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return times, cpu, w.stats.expirations


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--commits", type=int, default=1_000)
    p.add_argument("--batch", type=int, default=100, help="rows per latency commit")
    p.add_argument("--expire-every", type=int, default=None)
    p.add_argument("--keep-snapshots", type=int, default=None)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="codemill-bench-") as tmp:
        base = Settings()
        writer = base.writer.model_copy(update={
            k: v for k, v in (("expire_every", args.expire_every),
                              ("keep_snapshots", args.keep_snapshots)) if v is not None})
        settings = base.model_copy(update={"home": Path(tmp) / "home", "writer": writer})
        cfg = settings.writer
        print(f"writer: batch_rows={cfg.batch_rows} expire_every={cfg.expire_every} "
              f"keep_snapshots={cfg.keep_snapshots}", flush=True)
        with Ledger.open(settings) as ledger:
            secs, commits, _ = throughput(ledger, args.rows)
            print(f"throughput done: {args.rows} rows in {secs:.1f}s", flush=True)
        with Ledger.open(settings) as ledger:
            times, cpu, expirations = latency(ledger, args.commits, args.batch)
            total_rows = ledger.read(TABLE, columns=["node_id"]).num_rows

    ms = [t * 1000 for t in times]
    cpu_ms = [t * 1000 for t in cpu]
    q = statistics.quantiles(ms, n=20)
    tenth = _moving_median(ms, min(9, len(ms) - 1))
    last = _moving_median(ms, len(ms) - 1)
    cpu_tenth = _moving_median(cpu_ms, min(9, len(ms) - 1))
    cpu_last = _moving_median(cpu_ms, len(ms) - 1)
    flat = last <= 2 * tenth
    expected = args.rows + args.commits * args.batch
    figures = [
        ("append throughput", f"{args.rows / secs:,.0f} rows/s",
         f"{args.rows:,} rows, {commits} commits, {secs:.1f}s"),
        ("commit latency p50", f"{statistics.median(ms):.1f} ms",
         f"{len(ms)} commits x {args.batch} rows"),
        ("commit latency p95", f"{q[18]:.1f} ms", f"{expirations} expiries included"),
        ("commit #10 (moving median)", f"{tenth:.1f} ms", ""),
        (f"commit #{len(ms)} (moving median)", f"{last:.1f} ms",
         f"ratio {last / tenth:.2f}"),
        ("flat (last <= 2 x 10th)", "yes" if flat else "NO", ""),
        ("CPU per commit, #10 / last", f"{cpu_tenth:.1f} / {cpu_last:.1f} ms",
         "process CPU time: less sensitive to a busy machine"),
        ("rows read back", f"{total_rows:,}", f"expected {expected:,}"),
    ]
    width = max(len(f[0]) for f in figures)
    print()
    for name, value, note in figures:
        print(f"{name:<{width}}  {value:>18}  {note}")
    write_result("ledger", "Ledger writes", [
        figure("append throughput through the batched writer", args.rows / secs, "rows/s",
               rows=args.rows, commits=commits),
        figure("commit latency p50", statistics.median(ms), "ms", commits=len(ms),
               rows_per_commit=args.batch),
        figure("commit latency p95", q[18], "ms", expiries_included=expirations),
        figure(f"commit #{len(ms)} / commit #10 (moving medians of 21)", last / tenth, "x",
               goal="at most 2 (flat)"),
        figure("rows read back", total_rows, "rows", expected=expected),
    ], measures=(
        "A fresh ledger (SQLite catalog, file warehouse) in a temporary directory: small "
        "`test_results` rows appended through `Ledger.writer` end to end (buffering, "
        "coercion, Parquet, commits), then consecutive batch commits, whose cost must stay "
        "flat as snapshots accumulate (old snapshots are expired on schedule)."))
    ok = flat and total_rows == expected
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
