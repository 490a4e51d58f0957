"""Evals on real projects: three or more variants on a held-out suite, compared paired.

Runbook::

    # tasks first (real PyPI projects, as bench_tasks_real.py does):
    .venv/bin/python bench/bench_tasks_real.py --home bench/out/evals_home \\
        --results bench/out/evals_tasks.jsonl --synth 7 --features 2
    # then (niced, in the background: SmolLM2 takes about a minute an attempt on 2 cores)
    nice -n 10 .venv/bin/python bench/bench_evals.py > bench/out/evals_bench.log 2>&1 &

1. defines suite ``held-out@1`` from the tasks recorded in ``--home`` (``--limit`` tasks,
   sampled by project; it needs >= 3 projects), k attempts each, budgets sized for SmolLM2
   on 2 shared cores (3 turns of at most 96 tokens); when the home holds fewer tasks it
   first runs ``bench_tasks_real.py`` into it;
2. evaluates each ``--variant`` through the factory (default: ``scripted:look-then-submit``,
   the ``oracle`` ceiling, ``smollm2``; add ``ckpt:ID`` for a checkpoint). Each eval is a
   cached asset, so a rerun after a crash resumes (recorded attempts are reused);
3. measures eval throughput (attempts per minute, from the recorded materialization
   seconds) next to a bare run of the same tests (each task's FAIL_TO_PASS + PASS_TO_PASS
   selection once over its gold state in a fresh sandbox);
   Slow variants (``--chunked``, default SmolLM2) run slice by slice first so partial
   results are committed as they come;
4. compares every variant with the first, paired (McNemar, bootstrap interval, flips);
5. judges every variant's attempts with ``--judge`` and prints agreement with execution;
6. writes the HTML report (``--report``) and, with ``--screenshot``, a PNG of it.
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


def bare_seconds(settings, suite) -> list[float]:  # type: ignore[no-untyped-def]
    """Each task's selection run once over its gold state in a fresh sandbox."""
    from codemill.envs.builder.verdict import make_runner
    from codemill.envs.installs import sandbox_spec
    from codemill.factory.eval_inputs import ledger_reader, suite_tasks, task_envs
    from codemill.sandbox.api import open_sandbox
    from codemill.store.ledger import Ledger

    with Ledger.open(settings) as ledger:
        read = ledger_reader(ledger)
        tasks = suite_tasks(read, suite)
        envs = task_envs(read, {t.env_id for t in tasks})
    out = []
    for task in tasks:
        env = envs[task.env_id]
        runner = make_runner(env.test_command, env.env_vars)
        with open_sandbox(sandbox_spec(env, settings.home, settings.sandbox),
                          settings.home) as sb:
            start = time.perf_counter()
            runner.run(sb, list(task.fail_to_pass) + list(task.pass_to_pass), timeout_s=300)
            out.append(time.perf_counter() - start)
    return out


def eval_seconds(settings, eval_cfg) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds the eval's successful materialization took (recorded by the factory)."""
    import codemill.factory.evaluation  # noqa: F401  (registers the evals asset)
    from codemill.factory.cache import cache_key
    from codemill.factory.graph import REGISTRY
    from codemill.store.ledger import Ledger

    key = cache_key(REGISTRY.get("evals"), {}, eval_cfg)
    with Ledger.open(settings) as ledger:
        rows = [r for r in ledger.read("materializations").to_pylist()
                if r["cache_key"] == key and r["status"] == "success"]
    return rows[-1]["seconds"] if rows else None


def _chunks(eval_api, settings, suite, run, variant: str, size: int,  # type: ignore[no-untyped-def]
            max_slices: int | None) -> tuple[list[str], float]:
    """Evaluate a slow variant slice by slice (suites ``NAME-part-i``, same run config, so
    the same rollout ids): each slice commits its attempts, a crash loses one slice at most,
    and the full suite's eval then reuses every recorded attempt."""
    from codemill.evals.suites import SuiteSelection
    from codemill.factory import evaluation

    ids = [t.task_id for t in suite.tasks]
    done: list[str] = []
    seconds = 0.0
    for n, i in enumerate(range(0, len(ids), size)):
        if max_slices is not None and n >= max_slices:
            break
        # slices of the default size keep their first names (their recorded seconds are
        # the variant's throughput); other sizes get their own
        name = f"{suite.name}-part-{n}" if size == 5 else f"{suite.name}-part{size}-{n}"
        part = eval_api.define_suite(settings, name, suite.version,
                                     SuiteSelection(task_ids=tuple(ids[i:i + size])), run)
        t0 = time.monotonic()
        res = eval_api.evaluate(settings, part.suite_id, variant)
        secs = eval_seconds(settings, evaluation.eval_config(settings, part.suite_id, variant))
        seconds += secs or (time.monotonic() - t0)
        done += ids[i:i + size]
        print(f"  {variant} slice {n}: {len(res.samples)} attempts, pass@1 "
              f"{res.score.pass1} ({secs or 0:.0f} s, {res.status})", flush=True)
    return done, seconds


def _vibes(eval_api, settings, suite, variants, args) -> list[dict]:  # type: ignore[no-untyped-def]
    """Vibe checks (one function, four requests) on one project's environment, every
    variant but the oracle (which only knows task patches)."""
    env = next(t.env_id for t in suite.tasks if t.project == args.vibes)
    models = [v for v in variants if v != "oracle"]
    rows = eval_api.vibe_check(settings, env[:16], models, judge=args.judge, n_functions=1,
                               max_turns=args.max_turns, max_tokens=args.max_tokens)
    print(f"\nvibe checks on {args.vibes} ({env[:12]}):")
    for r in sorted(rows, key=lambda r: (r["kind"], r["variant"])):
        print(f"  {r['kind']:9} {r['variant'][:28]:28} check: {r['check']} "
              f"({r['check_passed']}); judge prefers: {r['preference'] or '-'}", flush=True)
    return [{k: r[k] for k in ("kind", "variant", "check", "check_passed", "preference")}
            for r in rows]


def _table(eval_api, evaluation, settings, suite, variants, covered,  # type: ignore[no-untyped-def]
           measured):
    """Evaluate ``variants`` on ``suite`` (reusing recorded attempts) and print a row each;
    throughput from the recorded seconds (slices' seconds for sliced variants)."""
    results, figures = [], {}
    for v in variants:
        started = time.monotonic()
        res = eval_api.evaluate(settings, suite.suite_id, v)
        if v in covered:  # a sliced variant: the seconds its slices took
            secs, attempts = covered[v][1], len(covered[v][0]) * suite.run.k
        elif v in measured:  # measured on the full suite (here its attempts were reused)
            secs, attempts = measured[v]
        else:
            cfg = evaluation.eval_config(settings, suite.suite_id, v)
            secs = eval_seconds(settings, cfg) or (time.monotonic() - started)
            attempts = len(res.samples)
        rate = attempts / (secs / 60) if secs else 0.0
        # The attempts' own recorded seconds (agent loop, tools, model): unlike the eval's
        # seconds, not shortened when the eval reused attempts recorded by another run.
        own = sum(s.get("wall_seconds") or 0.0 for s in res.samples)
        own_rate = len(res.samples) / (own / 60) if own else 0.0
        sc = res.score
        print(f"  {v:28} pass@1 {sc.pass1}  masked {sc.masked}/{sc.attempts}  "
              f"{rate:.1f} attempts/min ({secs:.0f} s for {attempts}; by the attempts' own "
              f"seconds {own_rate:.1f}/min)  stops {sc.stop_reasons}", flush=True)
        figures[v] = {"score": sc.to_json(), "eval_seconds": secs, "attempts_per_min": rate,
                      "attempt_seconds": own, "attempts_per_min_own": own_rate}
        measured.setdefault(v, (secs, attempts))
        results.append(res)
    return results, figures


def _compare_all(results) -> list[dict]:  # type: ignore[no-untyped-def]
    from codemill.evals.compare import compare

    out = []
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            c = compare(a.variant, a.samples, b.variant, b.samples)
            out.append(c.to_json())
            diff = "n/a" if c.diff is None else (
                f"{c.diff:+.1%} [{c.diff_low:+.1%}, {c.diff_high:+.1%}]")
            print(f"    {c.a} -> {c.b}: B - A {diff}; A only {c.only_a}, B only "
                  f"{c.only_b}, McNemar p={c.p_value:.3g}, {len(c.flips)} flipped; "
                  f"{c.verdict}", flush=True)
    return out


def _recorded_tasks(settings) -> int:  # type: ignore[no-untyped-def]
    from codemill.store.ledger import Ledger

    with Ledger.open(settings) as ledger:
        return len(set(ledger.read("tasks", columns=["task_id"]).column("task_id")
                       .to_pylist()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=OUT / "evals_home")
    ap.add_argument("--suite", default="held-out")
    ap.add_argument("--version", default="1")
    ap.add_argument("--limit", type=int, default=45, help="Tasks sampled by project (0: all).")
    ap.add_argument("--project", action="append", default=[],
                    help="Only tasks of this project (repeatable; e.g. bench_train's held-out "
                    "projects, so a checkpoint trained on the others is not contaminated).")
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--wall-time", type=float, default=600, help="Seconds per attempt.")
    ap.add_argument("--variant", action="append", help="Model spec (repeatable).")
    ap.add_argument("--judge", default="heuristic")
    ap.add_argument("--chunked", action="append", default=["smollm2"],
                    help="Variants evaluated slice by slice first (slow ones).")
    ap.add_argument("--chunk", type=int, default=5, help="Tasks per slice.")
    ap.add_argument("--max-slices", type=int, help="Stop sliced variants after this many "
                    "slices (then every variant is also compared on the finished subset).")
    ap.add_argument("--report", type=Path, default=OUT / "evals_report.html")
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--results", type=Path, default=OUT / "evals_bench.json")
    ap.add_argument("--vibes", metavar="PROJECT",
                    help="Also run the vibe checks on this project's environment.")
    args = ap.parse_args()
    os.environ["CODEMILL_HOME"] = str(args.home)
    from codemill.core.config import load_settings
    from codemill.evals.suites import SuiteRunConfig, SuiteSelection
    from codemill.factory import eval_api, evaluation

    settings = load_settings()
    if _recorded_tasks(settings) < args.limit and not args.project:
        print(f"fewer than {args.limit} tasks in {args.home}: making them with "
              "bench_tasks_real.py first", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "bench_tasks_real.py"),
                        "--home", str(args.home), "--results",
                        str(OUT / "evals_tasks.jsonl"), "--synth", "7", "--features", "2"],
                       check=False)
    variants = args.variant or ["scripted:look-then-submit", "oracle", "smollm2"]
    run = SuiteRunConfig(k=args.k, max_turns=args.max_turns, max_tokens=args.max_tokens,
                         temperature=0.0 if args.k == 1 else 0.7, seed=0,
                         wall_time_s=args.wall_time)
    suite = eval_api.define_suite(settings, args.suite, args.version,
                                  SuiteSelection(projects=tuple(args.project),
                                                 limit=args.limit or None), run)
    projects: dict[str, int] = {}
    for t in suite.tasks:
        projects[t.project] = projects.get(t.project, 0) + 1
    print(f"suite {suite.name}@{suite.version}: {len(suite.tasks)} tasks from "
          f"{len(projects)} projects {projects}; k={run.k}, max_turns={run.max_turns}, "
          f"max_tokens/call={run.max_tokens}", flush=True)
    cache = OUT / f"evals_bare_{suite.suite_id[:12]}.json"
    if cache.exists():  # measured before for this very suite
        bare = json.loads(cache.read_text())
    else:
        bare = bare_seconds(settings, suite)
        cache.write_text(json.dumps(bare))
    bare_rate = 60 / statistics.mean(bare)
    print(f"bare test runs: {statistics.mean(bare):.2f} s mean per task -> "
          f"{bare_rate:.1f} tasks/min", flush=True)
    covered: dict[str, tuple[list[str], float]] = {}
    for v in variants:
        if v in args.chunked:
            covered[v] = _chunks(eval_api, settings, suite, run, v, args.chunk,
                                 args.max_slices)
    all_ids = {t.task_id for t in suite.tasks}
    partial = {v: ids for v, (ids, _) in covered.items() if set(ids) != all_ids}
    full = [v for v in variants if v not in partial]
    print(f"\nsuite {suite.name}@{suite.version} ({len(suite.tasks)} tasks):")
    measured: dict[str, tuple[float, int]] = {}
    results, figures = _table(eval_api, evaluation, settings, suite, full, covered, measured)
    comparisons = _compare_all(results)
    suites = [f"{suite.name}@{suite.version}"]
    if partial:
        ids = sorted(set.intersection(*(set(i) for i in partial.values())))
        sub = eval_api.define_suite(settings, f"{suite.name}-sub-{len(ids)}", suite.version,
                                    SuiteSelection(task_ids=tuple(ids)), run)
        print(f"\n{', '.join(partial)} finished {len(ids)} of {len(suite.tasks)} tasks: every "
              f"variant on that subset, suite {sub.name}@{sub.version}:")
        sub_results, sub_figures = _table(eval_api, evaluation, settings, sub, variants,
                                          covered, measured)
        comparisons += _compare_all(sub_results)
        figures = {"full": figures, "subset": sub_figures}
        results += [r for r in sub_results if r.variant in partial]
        suites.append(f"{sub.name}@{sub.version}")
    print(f"\njudge {args.judge} vs execution:")
    agreements = {}
    for res in results:
        _, agree = eval_api.judge_eval(settings, res.eval_id, args.judge)
        agreements[res.variant] = agree.to_json()
        kappa = "n/a" if agree.kappa is None else f"{agree.kappa:.2f}"
        print(f"  {res.variant:28} agreement {agree.agree} kappa {kappa} {agree.confusion}",
              flush=True)
    vibe_rows = _vibes(eval_api, settings, suite, variants, args) if args.vibes else []
    from codemill.report.data import collect
    from codemill.report.html import write_report

    path = write_report(collect(settings, suites), args.report)
    print(f"\nreport: {path}")
    if args.screenshot:
        from codemill.report.browser import inspect

        seen = inspect(path, screenshot=args.screenshot, height=2000)
        print(f"screenshot: {args.screenshot} ({len(seen.plots)} plots)")
    args.results.write_text(json.dumps({
        "suite": suite.row(), "projects": projects, "bare_seconds": bare,
        "bare_tasks_per_min": bare_rate, "variants": figures, "comparisons": comparisons,
        "judge": agreements, "vibes": vibe_rows, "report": str(path)}, indent=2,
        default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
