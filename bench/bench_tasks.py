"""Task synthesis on a real project: throughput, selection savings, the funnel.

Runbook::

    .venv/bin/python bench/bench_tasks.py                          # toolz 0.12.0
    .venv/bin/python bench/bench_tasks.py --source pypi:six==1.16.0 --max 10
    .venv/bin/python bench/bench_tasks.py --env 2ec69803be25       # an env already built

Builds (or reuses, with ``--home``'s uv cache and env records) the environment of
``--source`` exactly as ``codemill env build`` does, then synthesizes up to ``--max`` tasks
(k=``--runs``, ``--mutants`` strength mutants each) and prints:

- validated tasks per CPU-minute (busy CPU of the whole machine, so a lower bound when
  anything else runs) and per wall-minute;
- test-seconds of screening with coverage-based selection vs the full suite per candidate
  (sum of per-test durations; the goal is >= 5x fewer), and wall seconds of the same;
- the selection check: selective vs full-suite verdicts on ``--check`` sampled candidates;
- the acceptance funnel and rejections by reason.

Nothing is written to the ledger; the coverage map and baseline are cached under the home.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

from codemill.core.config import Settings
from codemill.tasks.records import FunnelCounter
from codemill.tasks.selection import check_selection
from codemill.tasks.synth import SynthConfig, order_candidates, synthesize
from codemill.tasks.testbed import TestBed
from codemill.tasks.validate import ValidationConfig

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (``/proc/stat``): sandboxed runs live in
    their own pid namespaces and cgroups, so this process's rusage misses them. Includes
    any other load on the machine, so tasks per CPU-minute is a lower bound."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def env_for(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    if args.env:
        from codemill.factory.lookup import find_env
        from codemill.store.reader import LedgerReader

        with LedgerReader.open(settings) as reader:
            return find_env(reader, args.env)
    from codemill.envs.builder.build import build_env
    from codemill.repos.sources import snapshot_source

    snap = snapshot_source(args.source, settings.home)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return build_env(snap, settings.home, settings).env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="pypi:toolz==0.12.0")
    ap.add_argument("--env", default=None, help="Use this built environment instead.")
    ap.add_argument("--home", type=Path, default=ROOT / "bench" / "out" / "real_home")
    ap.add_argument("--max", type=int, default=8, help="Validated tasks to make.")
    ap.add_argument("--candidates", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mutants", type=int, default=4)
    ap.add_argument("--check", type=int, default=5, help="Candidates for the selection check.")
    args = ap.parse_args()
    settings = Settings(home=args.home)
    t0 = time.monotonic()
    env = env_for(args, settings)
    print(f"env {env.env_id[:12]} {env.status.value} python {env.python} "
          f"tests {env.n_tests} passing {env.n_passing}  "
          f"(ready in {time.monotonic() - t0:.0f}s)", flush=True)
    bed = TestBed.from_env(env, settings.home, settings.sandbox)
    t1, c1 = time.monotonic(), cpu_seconds()
    base = bed.baseline(args.runs)
    cmap = bed.coverage_map()
    print(f"baseline: {len(base.passing)} passing, {len(base.flaky)} flaky, full suite "
          f"{base.cost(None):.2f} test-s / {base.seconds:.2f} wall-s per run; coverage map "
          f"{cmap.seconds:.1f}s over {len(cmap.lines)} files", flush=True)
    cfg = SynthConfig(max_tasks=args.max, max_candidates=args.candidates, compose=1,
                      validation=ValidationConfig(runs=args.runs, max_mutants=args.mutants))
    funnel = FunnelCounter(env.env_id, "synth")
    made = weak = 0
    for task, row in synthesize(bed, cfg, funnel=funnel):
        if task is not None:
            made += 1
            weak += bool(task.metadata.get("weak"))
            print(f"  task {task.task_id[:12]} {task.metadata['operator']:<18} "
                  f"F2P {len(task.fail_to_pass):>3} kill {task.metadata['kill_rate']}",
                  flush=True)
        else:
            print(f"  rejected: {row.reason}", flush=True)
    wall, cpu = time.monotonic() - t1, cpu_seconds() - c1
    f = funnel.freeze()
    print(f"\nvalidated tasks: {made} ({weak} flagged weak) in {wall:.0f}s wall, "
          f"{cpu:.0f}s machine CPU -> {made / max(cpu / 60, 1e-9):.2f} tasks per CPU-minute, "
          f"{made / max(wall / 60, 1e-9):.2f} per wall-minute")
    ratio = f.test_seconds_full / f.test_seconds if f.test_seconds else float("inf")
    print(f"screening test-seconds: selected {f.test_seconds:.2f} vs full suite "
          f"{f.test_seconds_full:.2f} -> {ratio:.1f}x fewer ({f.compiled} screened)")
    pool = [x for x in order_candidates(bed.source_files(), cmap, None, seed=7)]
    check = check_selection(bed, cmap, pool, sample=args.check, seed=7)
    print(f"selection check: {check.agree}/{check.sampled} selective verdicts equal the "
          f"full suite's; wall {check.seconds_selected:.1f}s selected vs "
          f"{check.seconds_full:.1f}s full")
    for d in check.disagreements:
        print(f"  disagreement: {d}")
    stages = " -> ".join(f"{s} {getattr(f, s)}" for s in
                         ("candidates", "compiled", "broke_a_test", "passed_validation",
                          "not_flaky", "strong"))
    print(f"funnel: {stages}")
    for reason, n in sorted(f.rejected.items(), key=lambda kv: -kv[1]):
        print(f"  rejected {n:4d}  {reason}")
    print(f"CPUs: {os.cpu_count()}; total {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
