"""Grading latency and rollout throughput on the toy project (``tests/rewards/toyproject``).

    .venv/bin/python bench/bench_rewards.py [--n 10] [--rollouts 8] [--workers 1,2]

Builds the toy environment once in a temporary home (``codemill.envs.builder.build``), then:

1. bare test time: the task's selection run by ``PytestRunner`` in a fresh sandbox over the
   gold state, timed from opening the sandbox (as grading is), nothing else (the floor any
   grader pays);
2. grading latency (median and p90 of ``--n``) of a correct fix, of an unfixed diff, and of
   a diff whose code exits at import (no results: includes the gold check), interleaved
   with the bare runs, one at a time;
3. rollouts per minute with the scripted backend (a three-turn fix), graded, for each
   worker count, and the seconds per rollout as a multiple of the bare test time.

Prints one table and writes ``bench/results/rewards.json`` (``bench/record.py``); figures
depend on the machine's load (other work on a 2-core box shows).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from codemill.factory.executors import LocalExecutor  # noqa: E402
from codemill.rewards import workspace as W  # noqa: E402
from codemill.rewards.grader import grade_detailed  # noqa: E402
from codemill.rollouts.plan import RolloutConfig  # noqa: E402
from codemill.rollouts.runner import run_rollouts  # noqa: E402
from codemill.sandbox.api import open_sandbox  # noqa: E402
from codemill.tasks.patches import file_diff  # noqa: E402
from codemill.testing.pytest_runner import PytestRunner  # noqa: E402
from record import figure, write_result  # noqa: E402
from rewards.toyproject import BROKEN_OPS, FILES, GOLD_PATCH, make_toy, toy_settings  # noqa: E402

FIX = [
    "```bash\ncat src/calc/ops.py\n```",
    '<tool name="edit">\n{"path": "src/calc/ops.py", "old_str": "def add(a, b):\\n'
    '    return a - b", "new_str": "def add(a, b):\\n    return a + b"}\n</tool>',
    '<tool name="submit"></tool>',
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bare_test_seconds(toy_env, task, home, settings, n: int) -> list[float]:
    runner = PytestRunner(env=dict(toy_env.env_vars))
    spec = W.env_spec(toy_env, home, settings.sandbox)
    times = []
    for _ in range(n):  # timed from opening the sandbox, as grading is
        start = time.perf_counter()
        with open_sandbox(spec, home) as sb:
            W.prepare(sb, task, task.gold_patch, base_layers=spec.layers)
            report = runner.run(sb, [*task.fail_to_pass, *task.pass_to_pass], timeout_s=120)
        times.append(time.perf_counter() - start)
        assert report.ran, report.error
    return times


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="codemill-bench-rewards-") as tmp:
        home = Path(tmp) / "home"
        settings = toy_settings(home)
        start = time.perf_counter()
        env, task = make_toy(home, settings)
        print(f"toy environment built in {time.perf_counter() - start:.1f}s "
              f"(builder {env.builder_version})")
        unfixed = file_diff("src/calc/ops.py", BROKEN_OPS.encode(),
                            (BROKEN_OPS + "\n# no fix\n").encode())
        exits = file_diff("src/calc/__init__.py", FILES["src/calc/__init__.py"].encode(),
                          ("import os\nos._exit(0)\n" + FILES["src/calc/__init__.py"]).encode())
        kinds = (("grade: correct fix", GOLD_PATCH, 1.0), ("grade: unfixed", unfixed, 0.0),
                 ("grade: exits at import", exits, 0.0))
        bare_times: list[float] = []
        graded: dict[str, list[float]] = {name: [] for name, _, _ in kinds}
        for i in range(args.n):  # interleaved: a bare run, then one grading of each kind
            bare_times += bare_test_seconds(env, task, home, settings, 1)
            for name, diff, want in kinds:
                t0 = time.perf_counter()
                g = grade_detailed(task, diff, env=env, home=home, settings=settings,
                                   rollout_id=f"bench-{i}")
                graded[name].append(time.perf_counter() - t0)
                assert g.reward.value == want, (name, g.reward, g.notes)
        bare = statistics.median(bare_times)
        rows = [("bare test run (selection, sandbox)", bare, pct(bare_times, 0.9), "")]
        for name, times in graded.items():
            med = statistics.median(times)
            rows.append((name, med, pct(times, 0.9), f"{med / bare:.1f}x bare"))
        figures = [figure("bare test run of the task's selection (sandbox opened, patches "
                          "applied, runner)", bare, "s", median_of=args.n,
                          p90_s=pct(bare_times, 0.9))]
        figures += [figure(name, statistics.median(times), "s", median_of=args.n,
                           x_bare=round(statistics.median(times) / bare, 2))
                    for name, times in graded.items()]
        print(f"\n{'measure':40} {'median s':>9} {'p90 s':>8}  note")
        for name, med, p90, note in rows:
            print(f"{name:40} {med:9.3f} {p90:8.3f}  {note}")

        script = Path(tmp) / "fix.json"
        script.write_text(json.dumps(FIX))
        print(f"\n{'rollouts (scripted fix, graded)':40} {'n':>4} {'wall s':>8} "
              f"{'per min':>8} {'s/rollout':>10} {'x bare':>7}")
        for workers in (int(w) for w in args.workers.split(",")):
            cfg = RolloutConfig(group_size=args.rollouts)
            with LocalExecutor(workers) as pool:
                t0 = time.perf_counter()
                batch = run_rollouts([task], envs=[env], home=home, settings=settings,
                                     model=f"scripted:{script}", policy=f"bench-{workers}",
                                     config=cfg, executor=pool)
                wall = time.perf_counter() - t0
            ok = [r for r in batch.results if r.reward and r.reward.value == 1.0]
            assert len(ok) == args.rollouts, [r.reward for r in batch.results]
            per = wall / args.rollouts
            print(f"{f'workers={workers}':40} {args.rollouts:4d} {wall:8.2f} "
                  f"{60 / per:8.1f} {per:10.3f} {per / bare:7.1f}")
            figures.append(figure(f"scripted rollouts (three-turn fix), graded, {workers} "
                                  "worker(s)", 60 / per, "per minute", rollouts=args.rollouts,
                                  s_per_rollout=round(per, 2), x_bare=round(per / bare, 2)))
    write_result("rewards", "Grading and rollouts on the toy project", figures, measures=(
        "Grading latency on the toy project (`tests/rewards/toyproject.py`) against a bare run "
        "of the same test selection, both timed from opening the sandbox, interleaved: a "
        "correct fix, an unfixed diff, and a diff that exits at import (no results, so the "
        "gold patch is graded too: the gold check). Then scripted, graded rollouts per minute."))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
