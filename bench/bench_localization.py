"""How well patch mode's listing localizes the bug: the rank of the fix's function among
the functions the failing tests run (spectrum-based fault localization, Ochiai), on the
held-out tasks of the learning benchmark.

    .venv/bin/python bench/bench_localization.py [--home bench/out/learn_home] [--split held-out]

For each task: one covered run of the broken state (``patch_context.suspects``, sandboxed,
as the prompt's listing is built), then the position of the first ranked function holding
a line the gold fix edits (``evals.locate.edited_lines``; the gold patch is read here, after
the fact, never shown to a model). Prints and records top-1 / top-2 / top-4 hits, how many
fixes lie in no function the failing tests run, and the median size of the top function:
the figures behind choosing a shorter listing for a small model (a listing of the top
function only is short, but wrong whenever the top function is). Then, line by line: how
often a fix line is the top function's most suspicious line, or among its lines at the top
score (and how many lines those are), and how often the lines the prompt marks (those,
when there are at most ``max_marked``) hold a fix line: whether the marks point a small
model at the fix. Writes ``bench/results/localization.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_learn import HELD_OUT, TRAIN  # noqa: E402
from codemill.core.config import Settings  # noqa: E402
from codemill.core.errors import TaskError  # noqa: E402
from codemill.evals.locate import edited_lines  # noqa: E402
from codemill.tasks.patch_context import (  # noqa: E402
    PatchContextConfig,
    broken_state,
    suspects,
)
from codemill.tasks.patches import code_lines  # noqa: E402
from codemill.tasks.testbed import TestBed  # noqa: E402
from record import figure, write_result  # noqa: E402
from stages import split_by_project  # noqa: E402

TOPS = (1, 2, 4)


def fix_rank(home: Path, settings: Settings, task, env) -> dict:
    """Where the ranking puts the gold fix: ``rank`` (1-based rank of the first function
    holding a fix line, or None), ``top_lines`` (size of the top function), ``on_focus``
    (a fix line is the top function's most suspicious line), ``in_hot`` (a fix line is
    among the top function's lines at its top score) and ``hot`` (how many those are), or
    ``error``."""
    bed = TestBed.from_env(env, home, settings.sandbox, backend=settings.sandbox.backend)
    hidden = code_lines(task.test_patch, "+") if task.test_patch else []
    try:
        found = suspects(bed, broken_state(bed, task), task.fail_to_pass,
                         hidden_lines=hidden)
    except TaskError as exc:
        return {"error": str(exc)[:200]}
    fix = edited_lines(task.gold_patch)
    out: dict = {"rank": None, "top_lines": None, "on_focus": False, "in_hot": False,
                 "hot": None, "error": ""}
    if found.ranked:
        top = found.ranked[0]
        out.update(top_lines=top.end - top.start + 1, hot=len(top.hot),
                   on_focus=(top.path, top.focus) in fix,
                   in_hot=any((top.path, n) in fix for n in top.hot))
    for i, fn in enumerate(found.ranked, 1):
        if any(p == fn.path and fn.start <= n <= fn.end for p, n in fix):
            out["rank"] = i
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("bench/out/learn_home"))
    ap.add_argument("--split", choices=("held-out", "train"), default="held-out")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    home = args.home.absolute()
    train, held, envs = split_by_project(home, TRAIN, HELD_OUT)
    tasks = held if args.split == "held-out" else train
    settings = Settings(home=home)
    done = [0]

    def one(task):
        out = fix_rank(home, settings, task, envs[task.env_id])
        done[0] += 1
        print(f"{done[0]}/{len(tasks)} {out}", flush=True)
        return out

    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(one, tasks))
    failed = sum(1 for r in results if r["error"])
    ranked = [r for r in results if not r["error"]]
    n = len(ranked)
    hits = {k: sum(1 for r in ranked if r["rank"] is not None and r["rank"] <= k) for k in TOPS}
    missing = sum(1 for r in ranked if r["rank"] is None)
    tops = [r["top_lines"] for r in ranked if r["top_lines"]]
    hots = [r["hot"] for r in ranked if r["hot"]]
    figs = [figure(f"fix in the top {k} function{'s' if k > 1 else ''}", f"{hits[k]} of {n}",
                   rate=round(hits[k] / n, 4) if n else None) for k in TOPS]
    figs.append(figure("fix in no function the failing tests run", f"{missing} of {n}"))
    figs.append(figure("lines of the top function (median)",
                       statistics.median(tops) if tops else None, "lines"))
    on_focus = sum(1 for r in ranked if r["on_focus"])
    in_hot = sum(1 for r in ranked if r["in_hot"])
    figs.append(figure("fix on the top function's most suspicious line", f"{on_focus} of {n}",
                       rate=round(on_focus / n, 4) if n else None))
    figs.append(figure("fix among the top function's lines at its top score",
                       f"{in_hot} of {n}", rate=round(in_hot / n, 4) if n else None,
                       lines_median=statistics.median(hots) if hots else None,
                       lines_p90=sorted(hots)[int(0.9 * (len(hots) - 1))] if hots else None))
    # the patch-mode prompt marks the hot lines when there are at most max_marked of them
    most = PatchContextConfig().max_marked
    marked = [r for r in ranked if r["hot"] and r["hot"] <= most]
    figs.append(figure(f"prompt marks lines (at most {most}) and one is a fix line",
                       f"{sum(1 for r in marked if r['in_hot'])} of {n}",
                       marked=len(marked)))
    figs.append(figure("tasks whose covered run failed", failed, "tasks"))
    for f in figs:
        print(f"{f['what']}: {f['value']} {f['unit']}".rstrip())
    write_result("localization", "Where the listing puts the bug (Ochiai ranking)", figs,
                 measures=f"{len(tasks)} {args.split} tasks of bench_learn's projects: one "
                 "covered run of each broken state, the rank of the first function holding "
                 "a line the gold fix edits")


if __name__ == "__main__":
    main()
