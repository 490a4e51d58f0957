"""History mining on real repositories: ``codemill tasks mine`` over their own commits.

Runbook (the clones are not part of the repository; CI never needs them)::

    # 1. full-history clones under bench/out/mine_history/repos/ (any way you like; e.g.
    #    git clone https://github.com/pytoolz/toolz bench/out/mine_history/repos/toolz)
    for r in pytoolz/toolz tkem/cachetools more-itertools/more-itertools \\
             python-semver/python-semver un33k/python-slugify astanin/python-tabulate \\
             pytest-dev/iniconfig; do
        git clone -q https://github.com/$r bench/out/mine_history/repos/${r#*/}; done
    # 2. measure (resumable: a repository with a result line for the same head and
    #    settings is not measured again; --force re-measures)
    nice -n 15 .venv/bin/python bench/bench_mine_history.py \\
        > bench/out/mine_history/run.log 2>&1 &
    .venv/bin/python bench/bench_mine_history.py --table     # the table of what is done
    .venv/bin/python bench/bench_mine_history.py --static    # static checks only, seconds
    .venv/bin/python bench/bench_mine_history.py PATH...     # other clones

With no clone present it prints one line saying so and exits 0 (``make bench``).

For each clone, exactly as a user would, with ``CODEMILL_HOME=bench/out/mine_history/home``:
``codemill env build CLONE --json`` (the environment of the newest commit), then
``codemill tasks mine ENV --repo CLONE --max-commits N --max M --runs K --mutants X
--json`` and ``codemill tasks ls --env ENV --json``. Mining walks the first-parent history
newest first and stops after N commits or M validated tasks, whichever comes first;
"scanned" is how many commits it looked at. A row per repository: commits scanned, those
changing both code and tests, candidates that passed the static checks (``compiled``),
those whose new tests flip in a sandbox (``broke_a_test``), validated tasks, strong ones,
the rejection reasons with counts, and wall times. Results append to
``bench/out/mine_history/results.jsonl``. Mining runs with ``--retry-rejected``, so
rejections are decided afresh each time; tasks accepted by an earlier run are skipped
(``skipped_known``) and still counted as validated (their strength and F2P are then
left out of the row). Delete the home to measure from scratch.
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
OUT = ROOT / "bench" / "out" / "mine_history"
REPOS = OUT / "repos"
HOME = OUT / "home"
RESULTS = OUT / "results.jsonl"


def codemill(*args: str, timeout: float = 3600) -> dict | list:
    """Run the CLI entry point in a subprocess; its parsed ``--json`` output."""
    cmd = [sys.executable, "-c", "from codemill.cli.main import main; main()", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CODEMILL_HOME": str(HOME)})
    if proc.returncode != 0:
        raise RuntimeError(f"codemill {' '.join(args[:2])}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def measure(repo: Path, settings: dict) -> dict:
    """One repository's row (see module doc)."""
    head = _git(repo, "rev-parse", "HEAD")
    t0 = time.monotonic()
    env = codemill("env", "build", str(repo), "--json")
    t1 = time.monotonic()
    if env["status"] != "usable":
        return {"repo": repo.name, "head": head, "settings": settings,
                "error": f"environment {env['status']}: {env['reason']}"}
    mined = codemill("tasks", "mine", env["env_id"], "--repo", str(repo),
                     "--max-commits", str(settings["max_commits"]),
                     "--max", str(settings["max_tasks"]), "--runs", str(settings["runs"]),
                     "--mutants", str(settings["mutants"]), "--retry-rejected", "--json")
    t2 = time.monotonic()
    made = set(mined["tasks"])
    tasks = [t for t in codemill("tasks", "ls", "--env", env["env_id"], "--json")
             if t["task_id"] in made]
    f = mined["funnel"]
    scanned = f["candidates"] + f["skipped_known"]
    rejected = f["rejected"]
    static = ("no test change", "no code change", "no code and test change", "root commit")
    return {
        "repo": repo.name, "head": head, "settings": settings,
        "first_parent_commits": int(_git(repo, "rev-list", "--count", "--first-parent",
                                          "HEAD")),
        "n_tests": env["n_tests"], "scanned": scanned, "skipped_known": f["skipped_known"],
        "code_and_tests": scanned - sum(rejected.get(r, 0) for r in static),
        "compiled": f["compiled"], "broke_a_test": f["broke_a_test"],
        "validated": len(tasks) + f["skipped_known"],
        "strong": sum(not t["weak"] for t in tasks),
        "f2p": [t["f2p"] for t in tasks], "rejected": rejected,
        "build_s": round(t1 - t0, 1), "mine_s": round(t2 - t1, 1),
        "test_s": f["test_seconds"],
    }


def static_rows(repos: list[Path], max_commits: int) -> None:
    """The static checks alone (no sandbox, nothing recorded) over the newest commits of
    each clone, twice: dependencies held to the environment's lock and Python (what
    ``tasks mine`` does), and compared with the snapshot's manifests (the rule before)."""
    os.environ["CODEMILL_HOME"] = str(HOME)
    from codemill.cli.env_cmd import resolve_env
    from codemill.core.config import Settings
    from codemill.tasks.deps import Installed
    from codemill.tasks.mine import MineConfig, prescreen
    from codemill.tasks.testbed import TestBed

    cfg = MineConfig(max_commits=max_commits)
    print("| repository | commits | passing, lock rule | passing, snapshot rule | "
          "lock rule: rejected by reason |")
    print("|---|---|---|---|---|")
    for repo in repos:
        env = resolve_env(codemill("env", "build", str(repo.resolve()), "--json")["env_id"])
        bed = TestBed.from_env(env, Settings(home=HOME).home)
        now = prescreen(bed, repo / ".git", "HEAD", cfg, installed=Installed.of(env))
        before = prescreen(bed, repo / ".git", "HEAD", cfg)
        why = ", ".join(f"{k}: {v}" for k, v in now.most_common() if k != "candidate")
        print(f"| {repo.name} | {sum(now.values())} | {now['candidate']} "
              f"| {before['candidate']} | {why} |", flush=True)


def load() -> list[dict]:
    if not RESULTS.exists():
        return []
    return [json.loads(x) for x in RESULTS.read_text().splitlines() if x.strip()]


def print_table(rows: list[dict]) -> None:
    print("| repository | stop at | scanned | code+tests | candidates | tests flip | validated "
          "| strong | keep % | mine s | rejected by reason |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['repo']} | ERROR: {r['error'][:200]} |")
            continue
        why = ", ".join(f"{k}: {v}" for k, v in sorted(r["rejected"].items(),
                                                       key=lambda kv: -kv[1]))
        keep = 100 * r["validated"] / max(r["scanned"], 1)
        print(f"| {r['repo']} | {r['settings']['max_tasks']} tasks | {r['scanned']} "
              f"| {r['code_and_tests']} | {r['compiled']} "
              f"| {r['broke_a_test']} | {r['validated']} | {r['strong']} | {keep:.1f} "
              f"| {r['mine_s']:.0f} | {why or '-'} |")
    ok = [r for r in rows if "error" not in r]
    if ok:
        sc, va = sum(r["scanned"] for r in ok), sum(r["validated"] for r in ok)
        ct = sum(r["code_and_tests"] for r in ok)
        print(f"| **total** ({len(ok)}) | | {sc} | {ct} | {sum(r['compiled'] for r in ok)} "
              f"| {sum(r['broke_a_test'] for r in ok)} | {va} "
              f"| {sum(r['strong'] for r in ok)} | {100 * va / max(sc, 1):.1f} "
              f"| {sum(r['mine_s'] for r in ok):.0f} | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repos", nargs="*", type=Path,
                    help="Local clones (default: every directory under bench/out/"
                         "mine_history/repos).")
    ap.add_argument("--max-commits", type=int, default=300)
    ap.add_argument("--max-tasks", type=int, default=10)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--mutants", type=int, default=4)
    ap.add_argument("--force", action="store_true", help="Measure again what is done.")
    ap.add_argument("--table", action="store_true",
                    help="Only print the table: the latest row of each repository, whatever "
                         "its settings.")
    ap.add_argument("--static", action="store_true",
                    help="Only the static checks (no sandbox), lock rule vs snapshot rule.")
    args = ap.parse_args()
    repos = args.repos or (sorted(p for p in REPOS.iterdir() if (p / ".git").exists())
                           if REPOS.is_dir() else [])
    if not repos:
        print(f"bench_mine_history: no clones under {REPOS} and none "
              "given; see this script's docstring for the runbook. Nothing measured.")
        return
    if args.static:
        static_rows(repos, args.max_commits)
        return
    settings = {"max_commits": args.max_commits, "max_tasks": args.max_tasks,
                "runs": args.runs, "mutants": args.mutants}
    done = {(r["repo"], r["head"], json.dumps(r["settings"], sort_keys=True)): r
            for r in load()}
    if args.table:
        latest = {r["repo"]: r for r in load()}
        print_table([latest[p.resolve().name] for p in repos if p.resolve().name in latest])
        return
    rows = []
    for repo in repos:
        repo = repo.resolve()
        key = (repo.name, _git(repo, "rev-parse", "HEAD"), json.dumps(settings, sort_keys=True))
        if key in done and not args.force:
            rows.append(done[key])
            continue
        try:
            row = measure(repo, settings)
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            row = {"repo": repo.name, "head": key[1], "settings": settings,
                   "error": str(exc)[-500:]}
        print(json.dumps(row), flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)
    print()
    print(f"settings: {settings}")
    print_table(rows)


if __name__ == "__main__":
    main()
