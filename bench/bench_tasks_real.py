"""Tasks on real projects through the CLI: funnel, throughput, export that loads.

Runbook::

    .venv/bin/python bench/bench_tasks_real.py                  # the default projects
    .venv/bin/python bench/bench_tasks_real.py --only toolz --redo
    .venv/bin/python bench/bench_tasks_real.py > bench/out/tasks_real.txt 2>&1 &

For each project, exactly as a user would, with ``CODEMILL_HOME=--home``:
``codemill env build pypi:NAME==VER --json``, ``codemill tasks synth ENV --max N --json``
and ``codemill tasks features ENV --max M --json``. Then ``codemill tasks export`` to
JSONL and Parquet, both loaded back with ``datasets.load_dataset``.

CPU is measured per command in a ``cpuacct`` cgroup of its own (sandboxed test runs live
in other pid namespaces, so ``getrusage`` misses them); where no cgroup can be made it
falls back to the machine's busy CPU from ``/proc/stat`` (a lower bound on tasks per
CPU-minute when anything else runs). History mining is not run here: a PyPI sdist has no
history.

Resumable: one JSON line per finished project in ``--results``; projects already there
are skipped unless ``--redo``. The CLI itself skips candidates decided before.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
PROJECTS = ("toolz==0.12.0", "iniconfig==1.1.1", "python-slugify==5.0.2",
            "itsdangerous==2.1.2", "semver==2.13.0", "cachetools==5.3.1")


def _busy_cpu() -> float:
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def codemill(args: list[str], home: Path, timeout: float) -> tuple[dict, float, float, str]:
    """Run one CLI command; (its JSON output, wall seconds, CPU seconds, cpu source)."""
    env = {**os.environ, "CODEMILL_HOME": str(home)}
    cmd = [sys.executable, "-c", "from codemill.cli.main import main; main()", *args]
    group = CPUACCT / f"bench-tasks-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
        source = "cgroup"
    except OSError:
        source = "machine"
    join = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) \
        if source == "cgroup" else None
    cpu0, t0 = _busy_cpu(), time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=join)  # noqa: PLW1509 (single-threaded here)
    finally:
        wall = time.monotonic() - t0
        if source == "cgroup":
            cpu = int((group / "cpuacct.usage").read_text()) / 1e9
            group.rmdir()
        else:
            cpu = _busy_cpu() - cpu0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"codemill {' '.join(args[:2])} failed: {last}")
    return json.loads(proc.stdout), wall, cpu, source


def run_project(spec: str, home: Path, args: argparse.Namespace) -> dict:
    """Build, synthesize and cut features for one project; its figures."""
    env, b_wall, b_cpu, _ = codemill(["env", "build", f"pypi:{spec}", "--json"], home,
                                     args.timeout)
    row: dict = {"project": spec, "env_id": env["env_id"], "status": env["status"],
                 "tests": env["n_tests"], "passing": env["n_passing"],
                 "build_s": round(b_wall, 1), "build_cpu_s": round(b_cpu, 1)}
    if env["status"] != "usable":
        return {**row, "error": env.get("reason", "not usable")}
    eid = env["env_id"][:16]
    for kind, cmd in (("synth", ["tasks", "synth", eid, "--max", str(args.synth)]),
                      ("features", ["tasks", "features", eid, "--max", str(args.features)])):
        out, wall, cpu, source = codemill([*cmd, "--json"], home, args.timeout)
        row[kind] = {**out["funnel"], "new_tasks": len(out["tasks"]), "wall_s": round(wall, 1),
                     "cpu_s": round(cpu, 1), "cpu_source": source}
    return row


def summarize(r: dict) -> dict:
    """Per-project figures across synth and features."""
    parts = [r[k] for k in ("synth", "features") if k in r]
    valid = sum(p["not_flaky"] for p in parts)
    strong = sum(p["strong"] for p in parts)
    rejected: dict[str, int] = {}
    for p in parts:
        for why, n in p["rejected"].items():
            rejected[why] = rejected.get(why, 0) + n
    cpu = sum(p["cpu_s"] for p in parts)
    return {"tests": r.get("tests", 0), "candidates": sum(p["candidates"] for p in parts),
            "broke": sum(p["broke_a_test"] for p in parts), "validated": valid,
            "strong": strong, "weak": valid - strong, "rejected": rejected,
            "seconds": sum(p["wall_s"] for p in parts), "cpu_s": cpu,
            "per_cpu_min": valid / (cpu / 60) if cpu else 0.0}


def print_table(name: str, s: dict) -> None:
    rej = ", ".join(f"{why} {n}" for why, n in sorted(s["rejected"].items())) or "-"
    print(f"{name:24} tests {s['tests']:5}  candidates {s['candidates']:3}  broke "
          f"{s['broke']:3}  validated {s['validated']:3} (strong {s['strong']}, weak "
          f"{s['weak']})  {s['seconds']:6.0f}s  cpu {s['cpu_s']:6.0f}s  "
          f"{s['per_cpu_min']:.2f} tasks/CPU-min\n{'':24} rejected: {rej}", flush=True)


def export_and_load(home: Path, out_dir: Path, timeout: float) -> dict[str, int]:
    """Export every task to JSONL and Parquet through the CLI; rows ``datasets`` loads."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    counts = {}
    for suffix, loader in ((".jsonl", "json"), (".parquet", "parquet")):
        path = out_dir / f"tasks_swebench{suffix}"
        env = {**os.environ, "CODEMILL_HOME": str(home)}
        subprocess.run([sys.executable, "-c", "from codemill.cli.main import main; main()",
                        "tasks", "export", "--format", "swebench", str(path)], env=env,
                       check=True, capture_output=True, timeout=timeout)
        ds = datasets.load_dataset(loader, data_files=str(path), split="train",
                                   cache_dir=str(out_dir / "hf_cache"))
        counts[path.name] = ds.num_rows
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="NAME==VER (repeatable).")
    ap.add_argument("--home", type=Path, default=OUT / "tasks_home")
    ap.add_argument("--results", type=Path, default=OUT / "tasks_real.jsonl")
    ap.add_argument("--synth", type=int, default=5, help="--max for tasks synth.")
    ap.add_argument("--features", type=int, default=2, help="--max for tasks features.")
    ap.add_argument("--timeout", type=float, default=1800.0, help="Per command.")
    ap.add_argument("--redo", action="store_true", help="Rerun projects already recorded.")
    args = ap.parse_args()
    done = {}
    if args.results.exists():
        done = {r["project"]: r for r in map(json.loads, args.results.read_text().splitlines())}
    rows = []
    for spec in args.only or PROJECTS:
        if spec in done and not args.redo and "error" not in done[spec]:
            rows.append(done[spec])
            print_table(spec + " (recorded)", summarize(done[spec]))
            continue
        try:
            row = run_project(spec, args.home, args)
        except (RuntimeError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
            row = {"project": spec, "error": str(exc)}
        with args.results.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)
        if "error" in row:
            print(f"{spec:24} error: {row['error']}", flush=True)
        else:
            print_table(spec, summarize(row))
    sums = [summarize(r) for r in rows if "error" not in r]
    total = {k: sum(s[k] for s in sums) for k in ("tests", "candidates", "broke", "validated",
                                                  "strong", "weak", "seconds", "cpu_s")}
    total["rejected"] = {}
    for s in sums:
        for why, n in s["rejected"].items():
            total["rejected"][why] = total["rejected"].get(why, 0) + n
    total["per_cpu_min"] = total["validated"] / (total["cpu_s"] / 60) if total["cpu_s"] else 0
    print_table(f"TOTAL ({len(sums)} projects)", total)
    print("export rows loaded by datasets:", export_and_load(args.home, OUT, args.timeout))
    return 0 if len(sums) == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
