"""Build environments for real PyPI projects and report how many are usable.

Runbook::

    .venv/bin/python bench/real_projects.py                 # all, one at a time
    .venv/bin/python bench/real_projects.py --only attrs --only six --rebuild
    .venv/bin/python bench/real_projects.py --jobs 2 > bench/out/real.txt 2>&1 &

Each project is built exactly as a user would: ``codemill env build pypi:NAME==VERSION
--json`` in a subprocess (snapshot of the release's sdist, build in the sandbox,
baseline, ledger rows), with ``CODEMILL_HOME`` pointing at ``--home`` (default
``bench/out/real_home``; its uv cache makes reruns faster). The projects are pinned
releases that ship their tests in the sdist (checked: several projects' recent sdists
leave their tests out, so older releases stand in for them), chosen for variety
(parsers, CLIs, dates, data structures, validation, templating) and age (2018 to 2023,
so builds resolve dependencies by era). No project gets any configuration of its own:
what fails here fails for a generic reason, and a fix must be generic.

Resumable: results are appended to ``--results`` (JSON lines, default
``bench/out/real_projects.jsonl``) and projects already there are skipped unless
``--rebuild`` (or the command itself crashed: status ``error``). Prints one line per
project (status, reason, passed/failed/skipped/flaky, build time) and the usable rate
(goal: >= 70%).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

PROJECTS = (
    ("iniconfig", "1.1.1"),
    ("toolz", "0.12.0"),
    ("more-itertools", "10.1.0"),
    ("python-dateutil", "2.8.2"),
    ("humanize", "4.9.0"),
    ("tabulate", "0.9.0"),
    ("click", "8.1.7"),
    ("jinja2", "3.1.2"),
    ("markupsafe", "2.1.3"),
    ("arrow", "1.2.3"),
    ("parse", "1.19.0"),
    ("pyparsing", "3.0.9"),
    ("idna", "3.4"),
    ("packaging", "23.1"),
    ("cachetools", "5.3.1"),
    ("natsort", "8.4.0"),
    ("inflection", "0.5.1"),
    ("python-slugify", "5.0.2"),
    ("simplejson", "3.19.1"),
    ("tomlkit", "0.12.1"),
    ("voluptuous", "0.13.1"),
    ("schema", "0.7.5"),
    ("marshmallow", "3.19.0"),
    ("mistune", "2.0.5"),
    ("six", "1.16.0"),
    ("attrs", "23.1.0"),
    ("itsdangerous", "2.1.2"),
    ("semver", "2.13.0"),
    ("pluggy", "1.0.0"),
    # 2018-2019 releases: resolution by era and older interpreters get exercised.
    ("attrs", "19.1.0"),
    ("flask", "1.0.2"),
    ("werkzeug", "0.15.4"),
    ("jsonschema", "3.0.1"),
    ("requests", "2.21.0"),
    ("click", "7.0"),
    ("pyyaml", "5.1"),
)

_print_lock = threading.Lock()


def build_one(name: str, version: str, home: Path, timeout: float) -> dict[str, object]:
    """``codemill env build pypi:NAME==VERSION --json`` in a subprocess; its summary."""
    env = {**os.environ, "CODEMILL_HOME": str(home)}
    cmd = [sys.executable, "-c", "from codemill.cli.main import main; main()", "env", "build",
           f"pypi:{name}=={version}", "--json"]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "version": version, "status": "failed",
                "reason": f"bench timeout after {timeout:.0f}s", "seconds": timeout}
    seconds = round(time.monotonic() - started, 1)
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"name": name, "version": version, "status": "error", "reason": tail,
                "seconds": seconds, "exit_code": proc.returncode}
    return {"name": name, "version": version, "seconds": seconds, **summary}


def line(r: dict[str, object]) -> str:
    counts = r.get("counts") or {}
    assert isinstance(counts, dict)
    tests = (f"passed {counts.get('passed', 0):>4} failed {counts.get('failed', 0):>3} "
             f"error {counts.get('error', 0):>3} skipped {counts.get('skipped', 0):>3} "
             f"flaky {r.get('n_flaky', 0):>2}")
    reason = str(r.get("reason") or "")
    return (f"{r['name']:<18} {r['version']:<8} {r['status']:<9} py{r.get('python', '-'):<8} "
            f"{tests}  {r['seconds']:>6}s  {r.get('attempt', '')}"
            + (f"\n    reason: {reason[:300]}" if reason else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[],
                    help="Build only NAME or NAME==VERSION (repeat).")
    ap.add_argument("--jobs", type=int, choices=(1, 2), default=1)
    ap.add_argument("--home", type=Path, default=OUT / "real_home")
    ap.add_argument("--results", type=Path, default=OUT / "real_projects.jsonl")
    ap.add_argument("--rebuild", action="store_true", help="Build even if already recorded.")
    ap.add_argument("--timeout", type=float, default=3600.0, help="Per project, seconds.")
    args = ap.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, object]] = {}
    if args.results.exists():
        for raw in args.results.read_text().splitlines():
            if raw.strip():
                rec = json.loads(raw)
                if rec.get("status") != "error":  # a crash of the command is retried
                    done[f"{rec['name']}=={rec['version']}"] = rec
    def wanted(n: str, v: str) -> bool:
        return not args.only or n in args.only or f"{n}=={v}" in args.only

    todo = [(n, v) for n, v in PROJECTS if wanted(n, v)
            and (args.rebuild or f"{n}=={v}" not in done)]
    unknown = set(args.only) - {n for n, _ in PROJECTS} - {f"{n}=={v}" for n, v in PROJECTS}
    if unknown:
        print(f"unknown project(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1

    def work(item: tuple[str, str]) -> None:
        rec = build_one(*item, args.home, args.timeout)
        with _print_lock:
            done[f"{rec['name']}=={rec['version']}"] = rec
            with args.results.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(line(rec), flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(work, todo))
    chosen = [done[f"{n}=={v}"] for n, v in PROJECTS if f"{n}=={v}" in done and wanted(n, v)]
    usable = [r for r in chosen if r["status"] == "usable"]
    print(f"\nusable {len(usable)}/{len(chosen)} = {len(usable) / max(1, len(chosen)):.0%} "
          f"(goal >= 70%); total build time {sum(float(r['seconds']) for r in chosen):.0f}s")
    by_status: dict[str, int] = {}
    for r in chosen:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
    print("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
