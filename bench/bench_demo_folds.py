"""The demo's recipe held out one project at a time: does it learn on every project, or on one?

Runbook::

    .venv/bin/python bench/bench_demo_folds.py              # every example project in turn
    .venv/bin/python bench/bench_demo_folds.py --steps 60   # the same folds, a longer SFT

``make demo`` holds out one project (17 tasks), so its result rests on a handful of tasks.
This benchmark runs ``codemill demo --held-out NAME --json`` once for each project of the
folder (leave one project out): each fold trains the demo's LoRA SFT on the other projects
and evaluates the base and the trained model on every task of the one left out. The folds
share one home, so each project is built and given tasks once and each base eval runs once.

Resumable: a fold's row goes to ``bench/out/demo_folds.jsonl`` as it finishes (keyed by
project, SFT steps and commit), and a rerun skips the folds it has. The pooled figure sums
the folds: their task sets are disjoint, so the exact McNemar test runs on all discordant
pairs at once. Writes ``bench/results/demo-folds.json`` (``demo-folds-<steps>`` for a
non-default ``--steps``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import figure, head_commit, write_result  # noqa: E402
from stages import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DEMO_STEPS = 30
"""``codemill demo``'s default SFT steps (``--steps``)."""


def fold(name: str, folder: Path, steps: int, home: Path) -> dict:
    """One fold through the CLI: ``name`` held out, the others trained on."""
    started = time.monotonic()
    res = cli(["demo", "--projects", str(folder), "--held-out", name, "--steps", str(steps),
               "--json"], home, timeout=3 * 3600)
    return {"held_out": name, "steps": steps, "tasks": res["held_out_tasks"],
            "train_tasks": res["train_tasks"], "base": res["base"]["successes"],
            "trained": res["trained"]["successes"], "graded": res["trained"]["graded"],
            "only_base": res["only_base"], "only_trained": res["only_trained"],
            "mcnemar_p": res["mcnemar_p"], "checkpoint_id": res["checkpoint_id"],
            "sft": res["sft"], "phase_s": res["seconds"],
            "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    from codemill.evals.stats import mcnemar_exact, wilson
    from codemill.factory.demo import project_dirs

    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=Path, default=ROOT / "examples" / "projects")
    ap.add_argument("--steps", type=int, default=DEMO_STEPS, help="LoRA SFT steps a fold.")
    ap.add_argument("--home", type=Path, default=OUT / "demo_folds_home")
    ap.add_argument("--rows", type=Path, default=OUT / "demo_folds.jsonl")
    args = ap.parse_args()
    commit = head_commit()[:10]
    args.rows.parent.mkdir(parents=True, exist_ok=True)
    have = {}
    if args.rows.exists():
        for line in args.rows.read_text().splitlines():
            row = json.loads(line)
            have[(row["held_out"], row["steps"], row["commit"])] = row
    rows = []
    for name in [p.name for p in project_dirs(args.projects)]:
        row = have.get((name, args.steps, commit))
        if row is None:
            print(f"fold {name}: SFT {args.steps} steps on the others", flush=True)
            row = {**fold(name, args.projects, args.steps, args.home), "commit": commit}
            with args.rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        print(f"fold {name}: base {row['base']}/{row['graded']}, "
              f"trained {row['trained']}/{row['graded']} ({row['seconds']:.0f} s)", flush=True)
        rows.append(row)

    n = sum(r["graded"] for r in rows)
    base = wilson(sum(r["base"] for r in rows), n)
    trained = wilson(sum(r["trained"] for r in rows), n)
    b, c = sum(r["only_base"] for r in rows), sum(r["only_trained"] for r in rows)
    figures = [
        figure(f"held out {r['held_out']}: base, trained (pass@1)",
               f"{r['base']} and {r['trained']} of {r['graded']}", only_base=r["only_base"],
               only_trained=r["only_trained"], mcnemar_p=round(r["mcnemar_p"], 4),
               train_tasks=r["train_tasks"], sequences=r["sft"].get("sequences"),
               reversals=r["sft"].get("reversals"), phase_s=r["phase_s"])
        for r in rows]
    figures += [
        figure("all folds: base resolves (pass@1)", f"{base.successes} of {n}",
               rate=round(base.value or 0, 4), wilson95=[round(base.low, 4),
                                                          round(base.high, 4)]),
        figure("all folds: trained resolves (pass@1)", f"{trained.successes} of {n}",
               rate=round(trained.value or 0, 4), wilson95=[round(trained.low, 4),
                                                             round(trained.high, 4)]),
        figure("all folds: trained minus base (paired)", round((c - b) / n, 4) if n else 0,
               "", only_base=b, only_trained=c, mcnemar_p=round(mcnemar_exact(b, c), 4),
               folds=len(rows), steps=args.steps),
    ]
    name = "demo-folds" if args.steps == DEMO_STEPS else f"demo-folds-{args.steps}"
    write_result(name, f"The demo's recipe, each example project held out in turn "
                 f"({args.steps} SFT steps)", figures,
                 measures="`codemill demo --held-out NAME` for every example project: "
                 "LoRA SFT on the other projects' expert answers and mutation reversals, "
                 "the base and the trained SmolLM2-135M on every task of the one held out, "
                 "one greedy attempt each; folds pooled (disjoint tasks) for the paired "
                 "exact McNemar test.")
    print(f"all folds: base {base.successes}/{n}, trained {trained.successes}/{n}, "
          f"McNemar p = {mcnemar_exact(b, c):.3g}")


if __name__ == "__main__":
    main()
