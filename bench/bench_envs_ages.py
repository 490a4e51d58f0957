"""Environment builds on real repositories with full history, at their newest commit and at a
commit at least three years older: status, pass fraction, interpreter, attempts, install
seconds, baseline seconds and one bare run of the suite.

Runbook::

    # the repositories are bare git dirs with full history (the session's `fetch` tool puts
    # github:OWNER/NAME under /work/.mirror/OWNER+NAME/repo; any dir of bare clones will do)
    nice -n 10 .venv/bin/python bench/bench_envs_ages.py --label after \\
        > bench/out/envs_ages_after.log 2>&1 &
    .venv/bin/python bench/bench_envs_ages.py --label after --table    # print what finished
    .venv/bin/python bench/bench_envs_ages.py --compare before after   # baseline cost, both
    # the same on another checkout's code (the "before" cost), without reinstalling:
    PYTHONPATH=/tmp/main-before/src nice -n 10 .venv/bin/python bench/bench_envs_ages.py \\
        --label before

Each build is what a user gets from ``codemill env build /path/to/repo.git@SHA``: the source
is the repository's bare mirror at a commit (``snapshot_source``: mirrored into the codemill
home's cache with its whole history, the commit exported, submodules fetched where they can
be), then ``build_env`` (detect, interpreter, install in the build sandbox, baseline). The old
commit is the newest first-parent commit at least three years (1,096 days) older than the
newest one. No repository gets any configuration of its own.

Measured per build: *install s* = from the start of the build to the start of the baseline
(detect, interpreter, install attempts, lock, publish); *baseline s* = the baseline phase;
*wall s* = the whole ``build_env``; *bare s* = one more run of the whole suite, afterwards, in
a fresh fork of the built environment (what one plain suite run costs there). Goal:
``wall <= install + 1.5 x bare``.

Resumable: one JSON line per (label, repository, age) is appended to
``bench/out/envs_ages.jsonl``; rows already there are skipped unless ``--rebuild``. Every
label gets its own codemill home (``bench/out/envs_ages_<label>/``) that shares one uv cache
(``bench/out/envs_ages_uv``), so the second label's installs find warm wheels: compare
baseline seconds between labels, not install seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
RESULTS = OUT / "envs_ages.jsonl"
MIRRORS = Path("/work/.mirror")
OLD_DAYS = 1096

# Pure-Python projects with pytest suites, across domains: data structures and iterators,
# text and markup, dates, CLIs, templating, crypto-signing, caching, config formats,
# versioning, plugin systems.
REPOS = (
    "python-attrs/attrs",
    "pytoolz/toolz",
    "more-itertools/more-itertools",
    "un33k/python-slugify",
    "pytest-dev/iniconfig",
    "pallets/itsdangerous",
    "tkem/cachetools",
    "python-semver/python-semver",
    "astanin/python-tabulate",
    "dateutil/dateutil",
    "benjaminp/six",
    "Python-Markdown/markdown",
    "pallets/click",
    "pytest-dev/pluggy",
    "pallets/jinja",
    "hukkin/tomli",
)


def git(mirror: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={mirror}", *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def commits(mirror: Path) -> dict[str, tuple[str, str]]:
    """``{"new": (sha, date), "old": (sha, date)}`` for a bare repository."""
    head, head_date = git(mirror, "log", "-1", "--format=%H %cI", "HEAD").split()
    cutoff = datetime.fromisoformat(head_date) - timedelta(days=OLD_DAYS)
    old = git(mirror, "rev-list", "-1", "--first-parent", f"--before={cutoff.isoformat()}",
              "HEAD")
    old_date = git(mirror, "log", "-1", "--format=%cI", old)
    return {"new": (head, head_date), "old": (old, old_date)}


def done_rows(label: str) -> dict[tuple[str, str], dict]:
    rows: dict[tuple[str, str], dict] = {}
    if RESULTS.exists():
        for line in RESULTS.read_text().splitlines():
            row = json.loads(line)
            if row.get("label") == label:
                rows[(row["repo"], row["age"])] = row
    return rows


def bare_run(env: object, home: Path) -> tuple[float, int]:
    """One run of the whole suite in a fresh fork: (seconds, tests with results)."""
    from codemill.envs import installs
    from codemill.envs.builder.verdict import make_runner
    from codemill.sandbox.api import open_sandbox

    spec = installs.sandbox_spec(env, home)  # type: ignore[arg-type]
    runner = make_runner(env.test_command, env.env_vars)  # type: ignore[attr-defined]
    sb = open_sandbox(spec, home)
    try:
        started = time.monotonic()
        report = runner.run(sb, None, timeout_s=1800)
        return round(time.monotonic() - started, 2), len(report.results)
    finally:
        sb.close()


def build_one(label: str, repo: str, age: str, sha: str, date: str, home: Path) -> dict:
    from codemill.core.config import Settings
    from codemill.envs.builder.build import build_env
    from codemill.repos.sources import snapshot_source

    mirror = MIRRORS / repo.replace("/", "+") / "repo"
    marks: dict[str, float] = {}

    def progress(msg: str) -> None:
        if msg.startswith("running the baseline"):
            marks.setdefault("baseline", time.monotonic())

    row: dict = {"label": label, "repo": repo, "age": age, "commit": sha[:12], "date": date}
    snap = snapshot_source(f"{mirror}@{sha}", home)
    started = time.monotonic()
    result = build_env(snap, home, Settings(home=home), progress=progress)
    wall = time.monotonic() - started
    env = result.env
    base_at = marks.get("baseline", started + wall)
    row.update({
        "status": env.status.value, "reason": env.reason[:300], "python": env.python,
        "attempt": result.attempt,
        "attempts": sum(1 for s in result.steps if s.name.startswith("install (")),
        "n_tests": env.n_tests, "n_passing": env.n_passing, "n_flaky": env.n_flaky,
        "pass_fraction": round(env.n_passing / env.n_tests, 3) if env.n_tests else None,
        "wall_s": round(wall, 2), "install_s": round(base_at - started, 2),
        "baseline_s": round(started + wall - base_at, 2),
        "baseline_runs": len(result.reports),
        "repeat_runs": len(getattr(result, "repeats", ())),  # absent before the sampled repeat
        "flakiness": getattr(result, "flakiness", ""),
    })
    if env.venv_path and env.test_command:
        try:
            row["bare_s"], row["bare_tests"] = bare_run(env, home)
        except Exception as exc:  # noqa: BLE001 - a figure is missing, say why and go on
            row["bare_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return row


def print_table(label: str, markdown: bool = False) -> None:
    """One line per build; the goal is judged on usable builds only (a suite that never
    ran says nothing about what a baseline costs)."""
    rows = done_rows(label)
    cols = ("repository", "age", "commit date", "status", "pass", "python", "attempts",
            "install s", "baseline s", "bare s", "wall s", "goal")
    if markdown:
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    else:
        print(f"[{label}]\n{'repository':32} {'age':3} {'date':10} {'status':8} {'pass':>5} "
              f"{'py':7} {'att':>3} {'install':>7} {'baseline':>8} {'bare':>6} {'wall':>6} goal")
    met = usable = 0
    for (repo, age), r in sorted(rows.items(), key=lambda kv: (kv[0][0].lower(), kv[0][1])):
        bare = r.get("bare_s")
        ok = r["status"] == "usable" and bare is not None
        goal = "-" if not ok else "yes" if r["wall_s"] <= r["install_s"] + 1.5 * bare else "no"
        usable += r["status"] == "usable"
        met += goal == "yes"
        frac = "-" if r.get("pass_fraction") is None else f"{r['pass_fraction']:.2f}"
        cells = (repo, age, r["date"][:10], r["status"], frac, r["python"] or "-",
                 str(r["attempts"]), f"{r['install_s']:.1f}", f"{r['baseline_s']:.1f}",
                 "-" if bare is None else f"{bare:.1f}", f"{r['wall_s']:.1f}", goal)
        if markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print(f"{repo:32} {age:3} {cells[2]:10} {cells[3]:8} {frac:>5} {cells[5]:7} "
                  f"{cells[6]:>3} {cells[7]:>7} {cells[8]:>8} {cells[9]:>6} {cells[10]:>6} "
                  f"{goal}")
    good = [r for r in rows.values() if r["status"] == "usable" and r.get("bare_s")]
    base = sum(r["baseline_s"] for r in good)
    bare_sum = sum(r["bare_s"] for r in good)
    checked = sum("ran at least twice" in r.get("flakiness", "") for r in good)
    print(f"\n{len(rows)} builds, {usable} usable, goal met by {met} of {len(good)} usable; "
          f"their baseline {base:.0f}s against {bare_sum:.0f}s of bare suite runs "
          f"({base / bare_sum if bare_sum else 0:.2f}x)"
          + (f"; flakiness looked for in {checked} of {len(good)}" if label != "before" else ""))
    if markdown:
        return
    for (repo, age), r in sorted(rows.items()):
        if r.get("flakiness"):
            print(f"  {repo} {age}: {r['flakiness']}")
    for (repo, age), r in sorted(rows.items()):
        if r["status"] != "usable" or r.get("bare_error"):
            print(f"  {repo} {age}: {r['status']}: {r['reason'] or r.get('bare_error', '')}")


def print_compare(before: str, after: str) -> None:
    """The baseline's cost under two labels, for the builds both finished with a bare run
    (and either made usable)."""
    old, new = done_rows(before), done_rows(after)
    both = sorted(set(old) & set(new))
    print(f"{'repository':32} {'age':3} {'status':8} {'pass':>5} {'bare':>6} "
          f"{before + ' base':>12} {'x bare':>6} {after + ' base':>12} {'x bare':>6}")
    sums = [0.0, 0.0, 0.0, 0.0]
    for key in both:
        o, n = old[key], new[key]
        if not (o.get("bare_s") and n.get("bare_s")) or "usable" not in (o["status"], n["status"]):
            continue  # a suite that never ran tells nothing about what a baseline costs
        frac = "-" if n.get("pass_fraction") is None else f"{n['pass_fraction']:.2f}"
        print(f"{key[0]:32} {key[1]:3} {n['status']:8} {frac:>5} {n['bare_s']:6.1f} "
              f"{o['baseline_s']:12.1f} {o['baseline_s'] / o['bare_s']:6.2f} "
              f"{n['baseline_s']:12.1f} {n['baseline_s'] / n['bare_s']:6.2f}")
        for i, v in enumerate((o["baseline_s"], o["bare_s"], n["baseline_s"], n["bare_s"])):
            sums[i] += v
    if sums[1] and sums[3]:
        print(f"in all: {before} baseline {sums[0]:.0f}s = {sums[0] / sums[1]:.2f}x its bare "
              f"runs; {after} {sums[2]:.0f}s = {sums[2] / sums[3]:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="after", help="names the code being measured")
    ap.add_argument("--only", action="append", default=[], help="OWNER/NAME (repeatable)")
    ap.add_argument("--ages", default="new,old")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--table", action="store_true", help="print what finished and stop")
    ap.add_argument("--markdown", action="store_true", help="with --table: a Markdown table")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"),
                    help="print the baseline cost of two labels side by side and stop")
    args = ap.parse_args()
    if args.compare:
        print_compare(*args.compare)
        return 0
    if args.table:
        print_table(args.label, args.markdown)
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    home = OUT / f"envs_ages_{args.label}"
    uv_cache = OUT / "envs_ages_uv"
    uv_cache.mkdir(parents=True, exist_ok=True)
    link = home / "cache" / "uv"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(uv_cache.resolve())
    done = {} if args.rebuild else done_rows(args.label)
    for repo in args.only or REPOS:
        mirror = MIRRORS / repo.replace("/", "+") / "repo"
        if not mirror.is_dir():
            print(f"{repo}: no mirror at {mirror} (fetch github:{repo} first)", flush=True)
            continue
        picks = commits(mirror)
        for age in args.ages.split(","):
            if (repo, age) in done:
                continue
            sha, date = picks[age]
            print(f"{repo} {age} {sha[:12]} {date[:10]} ...", flush=True)
            try:
                row = build_one(args.label, repo, age, sha, date, home)
            except Exception as exc:  # noqa: BLE001 - the bench goes on to the next build
                row = {"label": args.label, "repo": repo, "age": age, "commit": sha[:12],
                       "date": date, "status": "error", "reason": f"{type(exc).__name__}: "
                       f"{exc}"[:300], "python": "", "attempts": 0, "wall_s": 0.0,
                       "install_s": 0.0, "baseline_s": 0.0}
            print(json.dumps(row), flush=True)
            with RESULTS.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
    print_table(args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
