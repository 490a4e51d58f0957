"""Fleet scaling: 50 real PyPI projects on a Ray cluster of 1, 2 and 3 worker nodes, with a
PostgreSQL catalog.

Runbook::

    .venv/bin/python bench/bench_fleet_scale.py > bench/out/fleet_scale.log 2>&1 &
    .venv/bin/python bench/bench_fleet_scale.py --workers 2 --limit 6   # quick look
    .venv/bin/python bench/bench_fleet_scale.py --report                # result file again

For each worker count, in order (``--workers``, default ``1,2,3``), from nothing: a fresh
home, a fresh PostgreSQL server (``tests/store/pg_server.py``: Debian's ``postgresql``) and
a fresh Ray cluster started with ``ray start`` (``tests/factory/ray_cluster.py``: a head
with no CPUs and N worker nodes of one CPU each, separate processes), then the command a
user types: ``codemill run --sources FILE --tasks 1 --features 0 --json`` with
``CODEMILL_EXECUTOR__KIND=ray`` and the cluster's address. Every configuration builds every
environment and validates every task itself (its own home and uv cache: downloads are paid
by each), so the runs do the same work.

This machine has two cores: a third worker node shares them with the other two, so the
efficiency at 3 workers measures contention, not a third machine. The nodes share one
filesystem (the fleet's assumption for snapshots, environments and the warehouse).

Resumable: each finished configuration is a JSON line in ``bench/out/fleet_scale.jsonl``
and is not run again. A worker count that this machine's ``bench/out`` lacks but the last
result file holds (a session on a fresh machine) is carried over from that file, marked with
the commit and date it was measured at, and not run again either.

Figures (``bench/results/fleet-scale.json``): wall seconds per worker count, speedup and
efficiency (speedup / workers) against one worker, the per-repository cost distribution of
the one-worker run (CPU seconds, build seconds, environment bytes, tasks validated: mean,
median, p90, max), failures by reason, and one row a repository.
The last line: ``efficiency at N workers: X``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))  # the cluster and server helpers the tests use
from factory.ray_cluster import RayCluster  # noqa: E402
from real_projects import PROJECTS  # noqa: E402
from record import figure, write_result  # noqa: E402
from store.pg_server import pg_server  # noqa: E402

OUT = BENCH / "out"
RESULT = BENCH / "results" / "fleet-scale.json"
EXTRA = (
    ("sortedcontainers", "2.4.0"), ("xmltodict", "0.13.0"), ("jmespath", "1.0.1"),
    ("blinker", "1.6.2"), ("python-dotenv", "1.0.0"), ("pathspec", "0.11.1"),
    ("distro", "1.8.0"), ("funcy", "2.0"), ("toml", "0.10.2"), ("docopt", "0.6.2"),
    ("text-unidecode", "1.3"), ("sqlparse", "0.4.4"), ("cssselect", "1.2.0"),
    ("boltons", "23.0.0"),
)
"""Fourteen more pinned releases beside ``real_projects.PROJECTS`` (36), to make 50; none
gets a setting of its own, and what fails is counted with its reason."""
SOURCES = tuple(f"pypi:{name}=={version}" for name, version in PROJECTS + EXTRA)
ARGS = ("--tasks", "1", "--features", "0", "--json")


def recorded_runs(n_sources: int, path: Path = RESULT) -> dict[int, dict[str, Any]]:
    """The runs the last result file holds, for ``n_sources`` sources: wall seconds and the
    summary of each worker count (``repositories`` None: its rows are not kept), and for the
    run the distributions were reported from, those figures as recorded (``figures``). Each
    carries ``recorded``: the commit and date it was measured at."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    recorded = f"{old.get('commit', '')[:10]} {old.get('date', '')}"
    runs: dict[int, dict[str, Any]] = {}
    per_run: dict[str, list[dict[str, Any]]] = {}
    for f in old.get("figures", []):
        detail = f.get("detail") or {}
        if f["what"].endswith("-worker run)"):
            per_run.setdefault(f["what"].rsplit("(the ", 1)[1], []).append(f)
        elif f["what"].startswith("fleet of ") and detail.get("repositories") == n_sources:
            runs[detail["workers"]] = {"workers": detail["workers"], "wall_s": f["value"],
                                       "repositories": None, "summary": detail,
                                       "recorded": detail.get("recorded", recorded)}
    for workers, run in runs.items():
        figures = per_run.get(f"{workers}-worker run)")
        if figures:
            run["figures"] = [{**f, "detail": {**f["detail"], "recorded": run["recorded"]}}
                              for f in figures]
    return runs


def run_config(workers: int, sources: tuple[str, ...]) -> dict[str, Any]:
    """One fleet run from nothing on ``workers`` worker nodes; its JSON and wall seconds."""
    root = OUT / f"fleet-scale-{workers}"
    if root.exists():
        shutil.rmtree(root)
    home = root / "home"
    home.mkdir(parents=True)
    listing = root / "sources.txt"
    listing.write_text("".join(f"{s}\n" for s in sources))
    cluster = RayCluster(workers=workers, cpus_per_worker=1)
    try:
        with pg_server() as uri:
            cluster.start()
            env = {**os.environ, "CODEMILL_HOME": str(home), "CODEMILL_CATALOG__URI": uri,
                   "CODEMILL_CATALOG__WAREHOUSE": (root / "warehouse").resolve().as_uri(),
                   "CODEMILL_EXECUTOR__KIND": "ray",
                   "CODEMILL_EXECUTOR__RAY_ADDRESS": cluster.address, **cluster.client_env()}
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "codemill.cli.main", "run",
                                   "--sources", str(listing), *ARGS], capture_output=True,
                                  text=True, env=env, cwd=BENCH.parent, timeout=4 * 3600)
            wall = time.monotonic() - started
    finally:
        cluster.close()
    if not proc.stdout.strip():
        raise RuntimeError(f"fleet run on {workers} workers printed nothing "
                           f"(exit {proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    return {"workers": workers, "wall_s": round(wall, 1), "exit": proc.returncode,
            "repositories": out["repositories"]}


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"mean": round(statistics.mean(ordered), 1),
            "median": round(statistics.median(ordered), 1), "p90": round(p90, 1),
            "max": round(ordered[-1], 1)}


def _per_repository(repos: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """The cost distributions, failures by reason and one row a repository of one run."""
    figures = []
    for what, key, unit in (("CPU seconds", "cpu_seconds", "s"),
                            ("build seconds", "build_seconds", "s"),
                            ("environment bytes", "env_bytes", "bytes"),
                            ("tasks validated", "tasks_validated", "tasks")):
        values = [float(r[key] or 0) for r in repos]
        figures.append(figure(f"per repository {what}, median ({where})",
                              statistics.median(values), unit, **spread(values)))
    failures = Counter(r["failure_kind"] or "unknown" for r in repos if r["status"] != "ok")
    figures.append(figure(f"repositories that failed ({where})",
                          sum(failures.values()), "of " + str(len(repos)),
                          by_reason=dict(failures.most_common())))
    for r in repos:  # the table: one row a repository
        figures.append(figure(f"{r['source']} ({where})", round(r["cpu_seconds"], 1),
                              "CPU s", status=r["status"], build_s=round(r["build_seconds"], 1),
                              env_bytes=r["env_bytes"], tasks=r["tasks_validated"],
                              failure=r["failure_kind"] or ""))
    return figures


def report(runs: dict[int, dict[str, Any]]) -> None:
    figures = []
    base = runs.get(1)
    efficiency: dict[int, float] = {}
    for workers, run in sorted(runs.items()):
        repos = run["repositories"]
        if repos is None:  # carried over without its rows: its summary as recorded
            detail: dict[str, Any] = {k: run["summary"][k]
                                      for k in ("workers", "repositories", "ok", "tasks")}
        else:
            detail = {"workers": workers, "repositories": len(repos),
                      "ok": sum(1 for r in repos if r["status"] == "ok"),
                      "tasks": sum(r["tasks_validated"] for r in repos)}
        if run.get("recorded"):
            detail["recorded"] = run["recorded"]
        if base:
            speedup = base["wall_s"] / run["wall_s"]
            efficiency[workers] = speedup / workers
            detail.update(speedup=round(speedup, 2), efficiency=round(efficiency[workers], 2))
        figures.append(figure(f"fleet of {detail['repositories']} projects on {workers} "
                              f"worker node{'s' if workers > 1 else ''}", run["wall_s"], "s",
                              **detail))
    # The distributions come from one run: one worker's where it is known, as recorded or
    # from its rows, else the fewest workers'.
    ref = min((r for r in runs.values() if r["repositories"] or r.get("figures")),
              key=lambda r: r["workers"])
    figures += ref.get("figures") or _per_repository(
        ref["repositories"], f"the {ref['workers']}-worker run")
    write_result("fleet-scale", "Fleet scaling on a Ray cluster with a PostgreSQL catalog",
                 figures, measures=(
                     "codemill run --sources over pinned PyPI releases (one synthesized task "
                     "each), from a fresh home, PostgreSQL server and Ray cluster per worker "
                     "count (head without CPUs, worker nodes of one CPU each) on this 2-core "
                     "machine; wall seconds of the command, speedup and efficiency against "
                     "one worker node"))
    for workers, value in efficiency.items():
        if workers > 1:
            print(f"efficiency at {workers} workers: {value:.2f}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--limit", type=int, default=len(SOURCES),
                    help="the first N sources only (a quick look)")
    ap.add_argument("--results", type=Path, default=OUT / "fleet_scale.jsonl")
    ap.add_argument("--report", action="store_true", help="only write the result file")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    sources = SOURCES[:args.limit]
    runs = recorded_runs(len(sources))
    if args.results.exists():
        for line in args.results.read_text().splitlines():
            row = json.loads(line)
            if len(row["repositories"]) == len(sources):
                runs[row["workers"]] = row
    if not args.report:
        for workers in (int(w) for w in args.workers.split(",")):
            if workers in runs:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] fleet of {len(sources)} on {workers} "
                  "worker node(s)", flush=True)
            row = run_config(workers, sources)
            runs[workers] = row
            with args.results.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            ok = sum(1 for r in row["repositories"] if r["status"] == "ok")
            print(f"[{time.strftime('%H:%M:%S')}] {workers} worker(s): {row['wall_s']} s, "
                  f"{ok} of {len(sources)} ok", flush=True)
    if runs:
        report(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
