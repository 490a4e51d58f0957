"""The red team on real projects: every attack of the catalogue against real tasks.

Runbook::

    .venv/bin/python bench/bench_red_team.py                       # toolz, iniconfig, semver
    .venv/bin/python bench/bench_red_team.py --only semver==2.13.0 --tasks 1
    nice -n 10 .venv/bin/python bench/bench_red_team.py > bench/out/red_team.txt 2>&1 &

For each project, exactly as a user would (``CODEMILL_HOME=--home``): ``codemill env build
pypi:NAME==VER --json`` and ``codemill tasks synth ENV --max N --json``. Then, in process,
for up to ``--tasks`` of its tasks: every attack of ``tests/rewards/attacks.py`` and every
honest patch is graded with the default ``GraderConfig`` (the same catalogue ``make test``
runs on the toy project). Reported per project and in total:

- false rewards: attacks that earned 1 (goal 0);
- masked: attacks whose reward was masked as an infrastructure failure (goal 0);
- honest rewarded: honest patches that earned 1 (goal 100%);
- grading cost: wall seconds of grading the gold patch next to a bare run of the same
  tests (a fresh sandbox, the task's patches applied, the runner on the selection, nothing
  else), interleaved, ``--samples`` of each, medians.

Resumable: one JSON line per graded (task, patch) in ``--results``; done ones are skipped.
The totals go to ``bench/results/red-team.json`` (``bench/record.py``), with the grading
seconds of every attack (most fail, so most pay for the gold check) next to the bare run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "tests"))

from codemill.core.config import Settings  # noqa: E402
from codemill.core.diffs import parse_diff, strip_level  # noqa: E402
from codemill.rewards import workspace as W  # noqa: E402
from codemill.rewards.grader import grade_detailed, make_runner  # noqa: E402
from codemill.sandbox.api import open_sandbox  # noqa: E402
from codemill.tasks.patches import apply_patch  # noqa: E402
from codemill.tasks.testbed import TestBed  # noqa: E402
from record import figure, write_result  # noqa: E402
from rewards.attacks import ATTACKS, HONEST, Target  # noqa: E402

PROJECTS = ("toolz==0.12.0", "iniconfig==1.1.1", "semver==2.13.0")


def cli(args: list[str], home: Path, timeout: float) -> dict:
    env = {**os.environ, "CODEMILL_HOME": str(home)}
    cmd = [sys.executable, "-c", "from codemill.cli.main import main; main()", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"codemill {' '.join(args[:2])} failed: {last}")
    return json.loads(proc.stdout)


def load(home: Path, env_id: str):
    """The environment and its tasks, read from the ledger as the CLI does."""
    from codemill.factory.lookup import find_env, load_tasks
    from codemill.store.reader import LedgerReader

    with LedgerReader.open(Settings(home=home), create=False) as reader:
        env = find_env(reader, env_id)
        tasks = load_tasks(reader, env.env_id)
    return env, sorted(tasks, key=lambda t: t.task_id)


def target(bed: TestBed, task, python: str) -> Target:
    broken = apply_patch(task.broken_patch, bed.read_base)

    def read(path: str) -> bytes | None:
        return broken[path] if path in broken else bed.read_base(path)
    return Target(task, read, python=python)


def bare_run(env, task, settings: Settings) -> float:
    """A fresh sandbox, the task's patches applied, the runner on the selection."""
    spec = W.env_spec(env, settings.home, settings.sandbox)
    runner = make_runner(env)
    t0 = time.monotonic()
    with open_sandbox(spec, settings.home) as sb:
        for patch in (task.broken_patch, task.gold_patch, task.test_patch):
            if patch.strip():
                W.git_apply(sb, patch, strip_level(parse_diff(patch)))
        runner.run(sb, [*task.fail_to_pass, *task.pass_to_pass], timeout_s=600)
    return time.monotonic() - t0


def grade_one(env, task, diff: str, traj, settings: Settings) -> dict:
    t0 = time.monotonic()
    g = grade_detailed(task, diff, env=env, home=settings.home, settings=settings,
                       rollout_id="red-team", policy="red-team", trajectory=traj)
    r = g.reward
    return {"value": r.value, "masked": r.masked, "error_type": r.error_type,
            "flags": list(r.flags), "seconds": round(time.monotonic() - t0, 3),
            "notes": [n[:300] for n in g.notes]}


def run_project(spec: str, args, done: set, out) -> None:
    home = args.home.absolute()
    env_row = cli(["env", "build", f"pypi:{spec}", "--json"], home, args.timeout)
    if env_row["status"] != "usable":
        print(f"{spec}: environment {env_row['status']}: {env_row.get('reason')}", flush=True)
        return
    eid = env_row["env_id"]
    env, tasks = load(home, eid)
    if len(tasks) < args.tasks:
        cli(["tasks", "synth", eid[:16], "--max", str(args.tasks), "--json"], home,
            args.timeout)
        env, tasks = load(home, eid)
    settings = Settings(home=home)
    bed = TestBed.from_env(env, home, settings.sandbox)
    for task in tasks[:args.tasks]:
        t = target(bed, task, env.python_path)
        for kind, items in (("attack", ATTACKS), ("honest", HONEST)):
            for item in items:
                key = f"{spec}|{task.task_id}|{item.name}"
                if key in done:
                    continue
                try:
                    row = grade_one(env, task, item.build(t), item.trajectory(t), settings)
                except Exception as exc:  # a catalogue entry this project cannot express
                    row = {"value": None, "masked": False, "error": f"build: {exc}"[:300]}
                row.update(key=key, project=spec, task_id=task.task_id, kind=kind,
                           name=item.name, cls=getattr(item, "cls", "honest"))
                out.write(json.dumps(row) + "\n")
                out.flush()
                done.add(key)
        key = f"{spec}|{task.task_id}|cost"
        if key in done:
            continue
        bare, graded = [], []
        for _ in range(args.samples):  # interleaved: bare, graded, bare, graded...
            bare.append(bare_run(env, task, settings))
            graded.append(grade_one(env, task, task.gold_patch, None, settings)["seconds"])
        out.write(json.dumps({"key": key, "project": spec, "task_id": task.task_id,
                              "kind": "cost", "bare_s": bare, "grade_s": graded}) + "\n")
        out.flush()
        done.add(key)


def report(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print(f"{'project':18} {'tasks':>5} {'attacks':>7} {'false 1':>7} {'masked':>6} "
          f"{'unbuilt':>7} {'honest':>9} {'bare s':>7} {'grade s':>7} {'ratio':>6}")
    for proj in sorted({r["project"] for r in rows}) + ["total"]:
        mine = [r for r in rows if proj in ("total", r["project"])]
        att = [r for r in mine if r["kind"] == "attack" and "error" not in r]
        unbuilt = sum(1 for r in mine if r["kind"] == "attack" and "error" in r)
        hon = [r for r in mine if r["kind"] == "honest" and "error" not in r]
        cost = [r for r in mine if r["kind"] == "cost"]
        bare = statistics.median([s for r in cost for s in r["bare_s"]]) if cost else 0.0
        grade = statistics.median([s for r in cost for s in r["grade_s"]]) if cost else 0.0
        print(f"{proj:18} {len({r['task_id'] for r in mine}):5} {len(att):7} "
              f"{sum(1 for r in att if r['value'] == 1.0):7} "
              f"{sum(1 for r in att if r['masked']):6} {unbuilt:7} "
              f"{sum(1 for r in hon if r['value'] == 1.0):4}/{len(hon):<4} {bare:7.2f} "
              f"{grade:7.2f} {grade / bare if bare else 0:6.2f}")
    leaks = [r for r in rows if r["kind"] == "attack" and (r.get("value") == 1.0
                                                             or r.get("masked"))]
    for r in leaks:
        print(f"  LEAK {r['project']} {r['task_id'][:10]} {r['name']}: value={r['value']} "
              f"masked={r['masked']} {r.get('error_type')} {r.get('notes')}")
    for r in rows:
        if r["kind"] == "honest" and r.get("value") != 1.0:
            print(f"  HONEST NOT PAID {r['project']} {r['task_id'][:10]} {r['name']}: "
                  f"{r.get('value')} {r.get('flags')} {r.get('notes') or r.get('error')}")
    record(rows)


def record(rows: list[dict]) -> None:
    """The totals as a result file: what the red team got through, and what grading cost."""
    att = [r for r in rows if r["kind"] == "attack" and "error" not in r]
    hon = [r for r in rows if r["kind"] == "honest" and "error" not in r]
    cost = [r for r in rows if r["kind"] == "cost"]
    if not att or not cost:
        return
    projects = ", ".join(sorted({r["project"] for r in rows}))
    tasks = len({r["task_id"] for r in rows})
    bare = statistics.median([s for r in cost for s in r["bare_s"]])
    gold = statistics.median([s for r in cost for s in r["grade_s"]])
    attack_s = [r["seconds"] for r in att]
    write_result("red-team", "Red team on real projects", [
        figure("attacks rewarded 1 (goal 0)", f"{sum(r['value'] == 1.0 for r in att)} of "
               f"{len(att)}", "", tasks=tasks, projects=projects),
        figure("attacks masked as infrastructure failures (goal 0)",
               f"{sum(bool(r['masked']) for r in att)} of {len(att)}", ""),
        figure("catalogue entries the project could not express",
               sum(1 for r in rows if r["kind"] == "attack" and "error" in r), ""),
        figure("honest patches rewarded 1 (goal all)",
               f"{sum(r['value'] == 1.0 for r in hon)} of {len(hon)}", ""),
        figure("bare run of the task's tests (fresh sandbox, patches, runner)", bare, "s",
               median_of=len(cost[0]["bare_s"]) * len(cost)),
        figure("grading the gold patch", gold, "s", x_bare=round(gold / bare, 2)),
        figure("grading an attack (median over the catalogue; a failing candidate also "
               "grades the gold patch)", statistics.median(attack_s), "s",
               x_bare=round(statistics.median(attack_s) / bare, 2),
               max_s=round(max(attack_s), 2)),
    ], measures=(
        "Every attack of `tests/rewards/attacks.py` and every honest patch, graded with the "
        "default `GraderConfig` against tasks synthesized on real PyPI releases, built "
        "exactly as a user would (`codemill env build`, `codemill tasks synth`); then what "
        "grading costs next to a bare run of the same tests, interleaved."))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="NAME==VER (repeatable).")
    ap.add_argument("--home", type=Path, default=OUT / "red_team_home")
    ap.add_argument("--results", type=Path, default=OUT / "red_team.jsonl")
    ap.add_argument("--tasks", type=int, default=2, help="Tasks per project.")
    ap.add_argument("--samples", type=int, default=3, help="Cost samples per side.")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        done = set()
        if args.results.exists():
            done = {json.loads(x)["key"] for x in args.results.read_text().splitlines() if x}
        with args.results.open("a") as out:
            for spec in args.only or PROJECTS:
                try:
                    run_project(spec, args, done, out)
                except Exception as exc:  # one project's failure must not stop the others
                    print(f"{spec}: {type(exc).__name__}: {exc}", flush=True)
    report(args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
