"""Fleet cost per repository, measured, and the projection to a million repositories.

Runbook:

    .venv/bin/python bench/bench_fleet.py              # the fleet run, result file, docs/scale.md
    .venv/bin/python bench/bench_fleet.py --render     # docs/scale.md again from the result file

1. ``codemill run --sources FILE --json`` over a few real PyPI projects (``SOURCES``; the
   local executor, one process per core, the SQLite catalog) in a fresh home under
   ``bench/out/fleet-home``: environments and tasks, no rollouts.
2. From its per-repository rows and that home: CPU seconds, wall seconds, build seconds,
   environment and snapshot bytes, tasks validated; ledger rows per table, Iceberg commits
   (metadata files) and warehouse bytes, divided by the repositories.
3. ``bench/results/fleet.json`` through ``record.write_result`` (every repository's row in
   its figure's details), then ``docs/scale.md`` rendered from that file alone: the measured
   per-repository costs, and the projection to ``TARGET`` repositories as plain
   multiplication, labelled as such. Nothing on that page is typed by hand.

The catalog commit rate with many concurrent writers comes from
``bench/results/catalog-writers.json`` (``bench/bench_catalog_writers.py``) when that file
exists; the page divides the projected commits by it. The scaling over 1, 2 and 3 Ray worker
nodes comes from ``bench/results/fleet-scale.json`` (``bench/bench_fleet_scale.py``) when
that file exists; until then the page says it has not been run.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS_DIR, ROOT, figure, write_result  # noqa: E402

SOURCES = ("pypi:toolz==0.12.0", "pypi:six==1.16.0", "pypi:iniconfig==1.1.1")
TASKS, FEATURES = 2, 1
TARGET = 1_000_000
HOME = ROOT / "bench" / "out" / "fleet-home"
PAGE = ROOT / "docs" / "scale.md"
NAME = "fleet"
WRITERS = "catalog-writers"
"""The result file of ``bench/bench_catalog_writers.py`` (optional input of the page)."""
SCALING = "fleet-scale"
"""The result file of ``bench/bench_fleet_scale.py`` (optional input of the page)."""


def run_fleet(home: Path) -> dict[str, Any]:
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    listing = home / "sources.txt"
    listing.write_text("".join(f"{s}\n" for s in SOURCES))
    env = {**os.environ, "CODEMILL_HOME": str(home)}
    cmd = [sys.executable, "-m", "codemill.cli.main", "run", "--sources", str(listing),
           "--tasks", str(TASKS), "--features", str(FEATURES), "--json"]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=7200)
    if not proc.stdout.strip():
        raise RuntimeError(f"fleet run printed nothing: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    out["wall_s"] = round(time.monotonic() - started, 1)
    return out


def ledger_footprint(home: Path) -> dict[str, Any]:
    """Rows per table, Iceberg commits (one metadata file each) and bytes of the warehouse."""
    from codemill.core.config import Settings
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(Settings(home=home), create=False) as reader:
        rows = {t: reader.read(t, columns=None).num_rows for t in sorted(reader.table_names())}
        snaps = reader.read("snapshots", columns=["n_bytes"]).column("n_bytes").to_pylist()
    warehouse = home / "warehouse"
    metadata = list(warehouse.rglob("*.metadata.json"))
    meta_bytes = sum(p.stat().st_size for p in warehouse.rglob("metadata/*") if p.is_file())
    data_bytes = sum(p.stat().st_size for p in warehouse.rglob("data/*") if p.is_file())
    return {"rows": {t: n for t, n in rows.items() if n}, "commits": len(metadata),
            "metadata_bytes": meta_bytes, "data_bytes": data_bytes,
            "snapshot_bytes": sum(int(b or 0) for b in snaps)}


def measure() -> Path:
    out = run_fleet(HOME)
    repos = out["repositories"]
    foot = ledger_footprint(HOME)
    n = len(repos)
    ok = [r for r in repos if r["status"] == "ok"]
    figures = []
    for r in repos:
        figures.append(figure(f"{r['source']}: CPU seconds", r["cpu_seconds"], "s",
                              status=r["status"], wall_s=r["wall_seconds"],
                              build_s=round(r["build_seconds"], 1), env_bytes=r["env_bytes"],
                              tasks=r["tasks_validated"], failure=r["failure"],
                              stages=r["stages"]))
    cpu = [r["cpu_seconds"] for r in repos]
    figures += [
        figure("repositories ok", f"{len(ok)} of {n}", "",
               failures={r["source"]: r["failure_kind"] for r in repos if r not in ok}),
        figure("CPU seconds per repository, mean", statistics.mean(cpu), "s",
               median=statistics.median(cpu), n=n),
        figure("wall seconds of the fleet run", out["wall_s"], "s",
               executor="local, one process per core"),
        figure("environment bytes per repository, mean",
               statistics.mean(r["env_bytes"] for r in repos), "bytes", n=n),
        figure("snapshot bytes per repository, mean", foot["snapshot_bytes"] / n, "bytes"),
        figure("tasks validated per repository, mean",
               statistics.mean(r["tasks_validated"] for r in repos), "tasks",
               asked=f"{TASKS} synthesized + {FEATURES} feature per repository"),
        figure("ledger rows per repository", sum(foot["rows"].values()) / n, "rows",
               by_table={t: round(v / n, 1) for t, v in foot["rows"].items()}),
        figure("Iceberg commits per repository", foot["commits"] / n, "commits",
               counted="metadata.json files in the warehouse"),
        figure("warehouse metadata bytes per repository", foot["metadata_bytes"] / n,
               "bytes"),
        figure("warehouse data bytes per repository", foot["data_bytes"] / n, "bytes"),
    ]
    return write_result(
        NAME, "Fleet run: cost per repository", figures,
        measures=(f"`codemill run --sources` over {n} PyPI projects ({', '.join(SOURCES)}; "
                  f"{TASKS} synthesized and {FEATURES} feature task asked each, no rollouts) "
                  "on the local executor with the SQLite catalog, in a fresh home: each "
                  "repository's CPU time (its worker, waited-for children and sandboxes' "
                  "cgroups), its environment's build time and bytes, its validated tasks; "
                  "the ledger's rows, commits and bytes divided by the repositories. Inputs "
                  "of the projection in docs/scale.md."))


def _human(n: float, unit: str) -> str:
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {suffix}{unit}"
    return f"{n:.1f} {unit}".strip()


_CATALOG = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def _where(writers: str) -> str:
    """``64 writers`` -> ``64 writers on one table``; ``... over 8 tables`` unchanged."""
    return writers if " over " in writers else f"{writers} on one table"


def _commit_rates(writers: dict[str, Any]) -> dict[tuple[str, int, int], float]:
    """(catalog, writers, tables) -> commits/s, from the catalog-writers result file."""
    rates: dict[tuple[str, int, int], float] = {}
    for f in writers["figures"]:
        if f["what"].endswith(": commits per second"):
            d = f["detail"]
            tables = 1 if d["tables"] == "one table" else int(d["tables"].split()[0])
            rates[(f["what"].split(",")[0], d["writers"], tables)] = f["value"]
    return rates


def _commit_lines(writers: dict[str, Any] | None, commits: float) -> tuple[str, str]:
    """The page's sentence on the measured commit rate and its caveat line (or, without a
    result file, that it has not been run)."""
    if writers is None:
        return ("the commit rate with 64 concurrent writers has not been measured yet.",
                "- The catalog commit rate with 64 concurrent writers has not been run.")
    rates = _commit_rates(writers)
    many = max(n for _, n, _ in rates)
    one_table = {c: r for (c, n, t), r in rates.items() if n == many and t == 1}
    single = {c: r for (c, n, t), r in rates.items() if n == 1}
    spread = {(c, t): r for (c, n, t), r in rates.items() if n == many and t > 1}
    # The fleet's commits go to about a dozen tables: the best spread rate applies too.
    options = {f"{_CATALOG.get(c, c)}, one table": r for c, r in one_table.items()}
    options.update({f"{_CATALOG.get(c, c)}, {t} tables": r for (c, t), r in spread.items()})
    best_c, best = max(options.items(), key=lambda kv: kv[1])
    gave_up = [(_CATALOG.get(f["what"].split(",")[0], f["what"].split(",")[0]),
                _where(f["what"].split(":")[0].split(", ", 1)[1]), f["detail"]["batches_failed"])
               for f in writers["figures"]
               if f["what"].endswith(": writers failed") and f["detail"]["batches_failed"]]
    measured = "; ".join(
        f"{_CATALOG.get(c, c)}: {r:.2f} commits/s with {many} writers on one table"
        + "".join(f", {spread[(c, t)]:.2f} spread over {t} tables"
                  for (cc, t) in sorted(spread) if cc == c)
        + (f", {single[c]:.2f} with one writer" if c in single else "")
        for c, r in sorted(one_table.items()))
    m = writers["machine"]
    sentence = (
        f"the commit rate with {many} concurrent writer processes was measured "
        "(`bench/bench_catalog_writers.py`, every row checked to land exactly once; figures, "
        f"latencies and retries in [benchmarks](benchmarks.md)): {measured}."
        + ("".join(f" On {c} with {w}, {b} batch{'es' if b > 1 else ''} gave up after the "
                   "writer's retries (`CommitError`: the rows handed back to the caller, none "
                   "lost or doubled)." for c, w, b in gave_up))
        + (f" {many} writers commit fewer per second than one: on one catalog every commit "
           "waits for the others (SQLite's lock) or conflicts and redoes its work "
           "(PostgreSQL)." if single and max(options.values()) < min(single.values())
           else "")
        + f" At the best of those, {best:.2f} commits/s ({best_c}), the fleet's "
        f"{_human(commits * TARGET, '')} commits would take "
        f"{commits * TARGET / best / 3600:,.0f} hours of commits alone: one commit per "
        "stage and batch cannot scale to a million repositories, so the committer that "
        "gathers many workers' files into one commit is required, not optional.")
    caveat = (
        f"- The {many}-writer commit rate was measured with the writers and the catalog "
        f"(SQLite file or local PostgreSQL server) sharing one {m['cores']}-core machine "
        f"(load {m['load_start'][0]} at the start): the writers compete for CPU as much "
        "as for the catalog, so it is a floor for a server catalog on its own machine, "
        "not its ceiling.")
    return sentence, caveat


def _first(scaling: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The scaling result's first figure whose title starts with ``prefix``."""
    return next(f for f in scaling["figures"] if f["what"].startswith(prefix))


def _cpu_rows(scaling: dict[str, Any] | None) -> list[str]:
    """The CPU projection again from the 50-project run's mean, where it has been run (a
    larger and more varied sample than the few projects above)."""
    if scaling is None:
        return []
    f = _first(scaling, "per repository CPU")
    mean = f["detail"]["mean"]
    n = _first(scaling, "fleet of ")
    return [f"| CPU, from the {n['detail']['repositories']}-project run | "
            f"{mean * TARGET / 3600:,.0f} CPU-hours | {mean:.1f} CPU s per repository (mean; "
            f"median {f['value']:.1f}, p90 {f['detail']['p90']}) |"]


def _scaling_lines(scaling: dict[str, Any] | None) -> list[str]:
    """The page's section on the measured scaling over worker nodes
    (``bench/bench_fleet_scale.py``), or the line saying it has not been run."""
    if scaling is None:
        return ["## Not measured yet", "",
                "- The 50-project benchmark on 1, 2 and 3 Ray workers (scaling efficiency per "
                "worker and the per-repository cost distribution) has **not** been run."]
    runs = [f for f in scaling["figures"] if f["what"].startswith("fleet of ")]
    dist = [f for f in scaling["figures"] if f["what"].startswith("per repository ")]
    failed = _first(scaling, "repositories that")
    m = scaling["machine"]
    lines = ["## Measured: scaling over Ray worker nodes", "",
             f"`{scaling['command']}` (commit `{scaling['commit'][:12]}`, {scaling['date']}): "
             "the same fleet from nothing on a Ray cluster of "
             + " / ".join(str(f["detail"]["workers"]) for f in runs)
             + " worker node(s) of one CPU each (each count is a run of its own), with a "
             f"PostgreSQL catalog, on one {m['cores']}-core machine.", "",
             "| worker nodes | wall s | speedup | efficiency | repositories ok | tasks |",
             "|---:|---:|---:|---:|---:|---:|"]
    for f in runs:
        d = f["detail"]
        lines.append(f"| {d['workers']} | {f['value']:,.0f} | {d.get('speedup', '-')} | "
                     f"{d.get('efficiency', '-')} | {d['ok']} of {d['repositories']} | "
                     f"{d['tasks']} |")

    carried = [f for f in runs if f["detail"].get("recorded")]
    if carried:
        lines += ["", "Carried over from an earlier result file (a run is not repeated when "
                  "its record exists): " + "; ".join(
                      f"{f['detail']['workers']} worker node(s), measured at "
                      f"{f['detail']['recorded']}" for f in carried) + "."]

    def shown(f: dict[str, Any], value: float) -> str:
        return _human(value, "") if f["unit"] == "bytes" else f"{value:g}"

    lines += ["", "Per repository: " + "; ".join(
        f"{f['what'].removeprefix('per repository ').split(', median')[0]} median "
        f"{shown(f, f['detail']['median'])}, p90 {shown(f, f['detail']['p90'])}, "
        f"max {shown(f, f['detail']['max'])}" for f in dist)
        + f". Failed: {failed['value']} ({failed['detail']['by_reason']}). "
        "Every repository's row is in [benchmarks](benchmarks.md).", "",
        f"With {m['cores']} cores, a third worker node shares them with the other two: the "
        "efficiency at 3 workers measures contention on one machine, not a third machine; "
        "on a real cluster each node brings its own cores."]
    return lines


def _tail_line(scaling: dict[str, Any] | None) -> list[str]:
    """The long tail of the per-repository cost in the scaling run: what its slowest
    repository costs against the median, and the worker count past which it alone sets
    the wall time (the fleet cannot end before its slowest repository does)."""
    if scaling is None:
        return []
    rows = [f for f in scaling["figures"] if f["unit"] == "CPU s"]
    if not rows:
        return []
    worst = max(rows, key=lambda f: f["value"])
    median = _first(scaling, "per repository CPU")["value"]
    total = sum(f["value"] for f in rows)
    source = worst["what"].split(" (", 1)[0]
    crashed = _first(scaling, "repositories that")["detail"]["by_reason"].get(
        "tasks: TaskError", 0)
    return [
        f"- **The long tail.** In the {len(rows)}-project run, `{source}` took "
        f"{worst['value']:,.0f} CPU s, {worst['value'] / median:.0f}x the median repository "
        f"and {worst['value'] / total:.0%} of the fleet's CPU, and validated "
        f"{worst['detail']['tasks']} task(s). A fleet ends no sooner than its slowest "
        f"repository, so past {total / worst['value']:.1f} workers this one repository alone "
        "sets the wall time. The design's answers: the work of one repository is bounded "
        "(synthesis screens at most `max_candidates` candidates, each with a timeout derived "
        "from its tests' baseline time), a repository that yields no task is a failed row "
        "with its reason (`tasks: none validated`), and the repository is one item of the "
        "executor's map, so the others go on around it. Its cause here was a yield bug, "
        "since fixed: validation rejected every candidate whose full runs broke a test that "
        "screening had not selected by per-test coverage, and that coverage came from the "
        "harness's coverage.py running under a Python older than it supports (3.10 here). "
        "Validation now labels such tests, and such environments get the last coverage.py "
        "made for Python 3.7, with the C tracer built for theirs."
        + (f" The {crashed} `tasks: TaskError` failures were per-test coverage runs that "
           "could not import that coverage.py at all under their older Python; the same "
           "change fixes them." if crashed else "")]


def render(result: dict[str, Any], writers: dict[str, Any] | None = None,
           scaling: dict[str, Any] | None = None) -> str:
    """docs/scale.md from the fleet result file: measured rows, then the projection;
    ``writers`` (default: ``bench/results/catalog-writers.json`` where it exists) is the
    measured catalog commit rate the commit projection is divided by; ``scaling``
    (default: ``bench/results/fleet-scale.json`` where it exists) the measured scaling
    over Ray worker nodes."""
    if writers is None and (RESULTS_DIR / f"{WRITERS}.json").exists():
        writers = json.loads((RESULTS_DIR / f"{WRITERS}.json").read_text())
    if scaling is None and (RESULTS_DIR / f"{SCALING}.json").exists():
        scaling = json.loads((RESULTS_DIR / f"{SCALING}.json").read_text())
    fig = {f["what"]: f for f in result["figures"]}
    repo_rows = [f for f in result["figures"] if f["what"].endswith(": CPU seconds")]
    cpu = fig["CPU seconds per repository, mean"]["value"]
    env_b = fig["environment bytes per repository, mean"]["value"]
    snap_b = fig["snapshot bytes per repository, mean"]["value"]
    tasks = fig["tasks validated per repository, mean"]["value"]
    asked = fig["tasks validated per repository, mean"]["detail"]["asked"]
    rows = fig["ledger rows per repository"]
    # Every metadata file is a commit, and the ledger creates each of its tables once (one
    # metadata file each) whatever the fleet's size: take those out of the per-repository rate.
    from codemill.store.schemas import TABLES

    commits_all = fig["Iceberg commits per repository"]["value"]
    commits = max(0.0, commits_all - len(TABLES) / len(repo_rows))
    meta_b = fig["warehouse metadata bytes per repository"]["value"]
    data_b = fig["warehouse data bytes per repository"]["value"]
    n = len(repo_rows)
    m = result["machine"]
    commit_sentence, commit_caveat = _commit_lines(writers, commits)
    sources = f"`bench/results/{NAME}.json`" + (
        "" if writers is None else f" and `bench/results/{WRITERS}.json`")
    lines = [
        "# Scale: from a few repositories to a million",
        "",
        f"Generated by `bench/bench_fleet.py --render` from {sources}; do not",
        "edit by hand. **Measured**: the per-repository costs of one fleet run "
        f"(`{result['command']}`, commit `{result['commit'][:12]}`, {result['date']}, "
        f"{m['cores']} cores, load {m['load_start'][0]} at the start). **Projected**: every "
        f"figure for {TARGET:,} repositories below is that measurement multiplied out, "
        "nothing more.",
        "",
        "## Measured, per repository",
        "",
        "| repository | status | CPU s | wall s | build s | environment | tasks | failure |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for f in repo_rows:
        d = f["detail"]
        lines.append(f"| {f['what'].removesuffix(': CPU seconds')} | {d['status']} | "
                     f"{f['value']:.1f} | {d['wall_s']:.1f} | {d['build_s']:.1f} | "
                     f"{_human(d['env_bytes'], 'B')} | {d['tasks']} | {d['failure'] or ''} |")
    lines += [
        "",
        f"Means over the {n} repositories: {cpu:.1f} CPU seconds, "
        f"{_human(env_b, 'B')} of environment and {_human(snap_b, 'B')} of snapshot, "
        f"{tasks:.2f} validated tasks (asked: {asked}), "
        f"{rows['value']:.0f} ledger rows, {commits:.1f} Iceberg commits ({commits_all:.1f} "
        f"metadata files, less the {len(TABLES)} table creations spread over them), "
        f"{_human(meta_b, 'B')} of table metadata and {_human(data_b, 'B')} of Parquet.",
        "",
        "Ledger rows per repository, by table: "
        + ", ".join(f"{t} {v}" for t, v in sorted(rows["detail"]["by_table"].items())) + ".",
        "",
        f"## Projected to {TARGET:,} repositories (multiplication of the means above)",
        "",
        "| what | projection | from |",
        "|---|---:|---|",
        f"| CPU | {cpu * TARGET / 3600:,.0f} CPU-hours | {cpu:.1f} CPU s per repository |",
        *_cpu_rows(scaling),
        f"| wall time on 1,000 cores, if scaling were perfect | "
        f"{cpu * TARGET / 3600 / 1000:,.1f} hours | "
        + ("scaling measured on one machine only: see below |" if scaling
           else "not measured: see below |"),
        f"| environments on disk (no sharing between them) | {_human(env_b * TARGET, 'B')} | "
        f"{_human(env_b, 'B')} per repository |",
        f"| snapshots | {_human(snap_b * TARGET, 'B')} | {_human(snap_b, 'B')} per "
        "repository |",
        f"| validated tasks | {tasks * TARGET:,.0f} | {tasks:.2f} per repository at this "
        "run's task budget |",
        f"| ledger rows | {_human(rows['value'] * TARGET, '')} | {rows['value']:.0f} per "
        "repository |",
        f"| Iceberg commits | {_human(commits * TARGET, '')} | {commits:.1f} per "
        "repository |",
        f"| table metadata (before expiry) | {_human(meta_b * TARGET, 'B')} | "
        f"{_human(meta_b, 'B')} per repository |",
        f"| Parquet data | {_human(data_b * TARGET, 'B')} | {_human(data_b, 'B')} per "
        "repository |",
        "",
        "## What breaks first, and the design's answer",
        "",
        f"- **Catalog commits.** {commits:.1f} commits per repository is "
        f"{_human(commits * TARGET, '')} commits for the fleet: every stage commits its own "
        "batches, and each commit rewrites the table's metadata file. The design answers with "
        "workers that write Parquet and one committer that commits many workers' files at "
        "once, a server catalog (PostgreSQL, tested) instead of SQLite's single writer, and "
        f"snapshot expiry on a schedule; {commit_sentence}",
        "- **Environment storage.** Environments dominate the bytes; the builder shares "
        "layers between environments with the same lock, which these few distinct projects "
        "do not exercise, so the figure above is an upper bound.",
        "- **CPU.** Validation runs each suite several times; the CPU projection is linear in "
        "the per-repository cost and assumes perfect scaling across workers, "
        + ("which has been measured only across the worker nodes of one machine (below)."
           if scaling else "which is exactly what has not been measured."),
        *_tail_line(scaling),
        "",
        *_scaling_lines(scaling),
        "",
        "## Caveats",
        "",
        commit_caveat,
        f"- These means come from {n} small pure-Python projects measured on a {m['cores']}"
        "-core machine shared with other jobs; a million real repositories will have larger "
        "suites, native builds and more failures.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", action="store_true",
                    help="only render docs/scale.md from bench/results/fleet.json")
    args = ap.parse_args()
    if not args.render:
        print(f"wrote {measure()}")
    result = json.loads((RESULTS_DIR / f"{NAME}.json").read_text())
    PAGE.write_text(render(result))
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
