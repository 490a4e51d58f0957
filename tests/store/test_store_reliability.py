"""Real processes against a real catalog: a writer killed mid-flush, and four writers
appending to one table at once. Rows are ids ``worker:batch:j``; one commit per batch."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from codemill.store.ledger import Ledger
from codemill.store.schemas import TABLES

from .conftest import make_settings, wait_for_writers

CHILD = Path(__file__).with_name("ledger_child.py")
ITEMS = pa.schema([("item_id", pa.string()), ("n", pa.int64()), ("run_id", pa.string()),
                   ("code_version", pa.string()),
                   ("created_at", pa.timestamp("us", tz="UTC"))])


def _ledger(home: Path) -> Ledger:
    ledger = Ledger.open(make_settings(home))
    ledger.create_table("items", ITEMS)
    return ledger


def _child(home: Path, worker: str, n_batches: int, batch: int, *extra: str,
           ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(home), "items", worker, str(n_batches), str(batch),
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home.parent)


def _ids(home: Path) -> list[str]:
    with Ledger.open(make_settings(home), create=False) as ledger:
        for name in ledger.table_names():  # every table stays readable
            ledger.read(name)
        return ledger.read("items", columns=["item_id"]).column("item_id").to_pylist()


def _kill_after_commits(proc: subprocess.Popen[str], commits: int, rng: random.Random
                        ) -> set[int]:
    """SIGKILL ``proc`` at a random moment after it reported ``commits`` commits;
    return the batches it reported committed."""
    done: set[int] = set()
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("committed"):
            done.add(int(line.split()[1]))
            if len(done) >= commits:
                break
    time.sleep(rng.uniform(0.0, 0.25))  # most of the child's time is spent in a flush
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    done |= {int(x.split()[1]) for x in out.splitlines() if x.startswith("committed")}
    assert proc.returncode == -signal.SIGKILL, "the child finished before it was killed"
    return done


def test_sigkill_mid_flush_leaves_whole_batches_and_a_rerun_completes(tmp_path):
    home = tmp_path / "home"
    _ledger(home).close()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    n_batches, batch = 40, 20
    expected = {f"w:{b}:{j}" for b in range(n_batches) for j in range(batch)}

    reported = _kill_after_commits(_child(home, "w", n_batches, batch), 5, rng)
    ids = _ids(home)
    assert len(ids) == len(set(ids)), "a row landed twice"
    per_batch = Counter(int(i.split(":")[1]) for i in ids)
    assert set(per_batch.values()) == {batch}, "a batch landed in part"
    assert reported <= set(per_batch), "a reported commit is missing"
    assert len(ids) < len(expected)

    # Kill the rerun too, then let a third run finish: the rest completes, nothing twice.
    _kill_after_commits(_child(home, "w", n_batches, batch, "--resume"), 2, rng)
    rerun = _child(home, "w", n_batches, batch, "--resume")
    out, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err
    final = _ids(home)
    assert len(final) == len(set(final)) and set(final) == expected


@pytest.mark.parametrize("lock", ["lock", "no-lock"])
def test_four_processes_append_concurrently_and_every_row_lands_once(tmp_path, lock):
    """With the commit lock writers queue; without it they conflict and must retry."""
    home = tmp_path / "home"
    ledger = _ledger(home)
    n_workers, n_batches, batch = 4, 50, 10
    extra = () if lock == "lock" else ("--no-lock",)
    procs = [_child(home, f"p{k}", n_batches, batch, *extra) for k in range(n_workers)]
    retries = wait_for_writers(procs, timeout=280)
    print(f"{lock}: writer-level retries {retries}")
    ids = _ids(home)
    assert len(ids) == n_workers * n_batches * batch
    assert set(ids) == {f"p{k}:{b}:{j}" for k in range(n_workers) for b in range(n_batches)
                        for j in range(batch)}
    tbl = ledger.load_table("items")
    writers = {s.summary["run_id"] for s in tbl.metadata.snapshots if s.summary}
    assert writers <= {f"child-p{k}" for k in range(n_workers)}
    cfg = ledger.settings.writer
    # Expiry ran under contention: history stays near keep + every, not 200 snapshots.
    assert len(tbl.metadata.snapshots) <= cfg.keep_snapshots + cfg.expire_every + n_workers
    ledger.close()


@pytest.mark.parametrize("workers", [2])
def test_concurrent_schema_evolution_adds_the_column_once(tmp_path, workers):
    """Two processes add the same new column at once; both batches land."""
    home = tmp_path / "home"
    _ledger(home).close()
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from codemill.core.config import Settings\nfrom codemill.store.ledger import Ledger\n"
        "with Ledger.open(Settings(home=Path(sys.argv[1]))) as l:\n"
        "    with l.writer('items', run_id=sys.argv[2], asset='items', config_hash='h') as w:\n"
        "        w.add_many({'item_id': f'{sys.argv[2]}:{i}', 'extra': i} for i in range(5))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home), f"e{k}"],
                              stderr=subprocess.PIPE, text=True) for k in range(workers)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    with Ledger.open(make_settings(home), create=False) as ledger:
        data = ledger.read("items")
        assert data.column_names.count("extra") == 1
        assert sorted(data.column("extra").to_pylist()) == sorted(list(range(5)) * workers)


def test_processes_opening_a_new_ledger_at_once_all_succeed(tmp_path):
    home = tmp_path / "home"
    code = ("import sys\nfrom pathlib import Path\n"
            "from codemill.core.config import Settings\nfrom codemill.store.ledger import Ledger\n"
            "with Ledger.open(Settings(home=Path(sys.argv[1]))) as l:\n"
            "    print(len(l.table_names()))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    with Ledger.open(make_settings(home), create=False) as ledger:
        assert set(ledger.table_names()) == set(TABLES)
