"""Rollout throughput on a real project with an oracle policy, against bare test time.

    .venv/bin/python bench/bench_rollouts_real.py [--source pypi:toolz==0.12.0]
        [--tasks 4] [--group 4] [--home bench/out/rollouts_home]

1. materializes snapshots -> environments -> tasks for ``--source`` through the factory
   (cached after the first run);
2. runs G rollouts per task with a scripted *oracle* policy (benchmark-only: it is handed
   each task's gold patch, applies it with one bash call and submits), so every rollout
   does the full work of a real one (fork, agent loop, tools, diff, grading in a fresh
   sandbox) and should earn 1;
3. measures bare test time: the task's FAIL_TO_PASS + PASS_TO_PASS selection run once by
   the environment's runner in a fresh sandbox over the gold state (the floor any grader
   pays), and prints rollouts per minute and seconds per rollout / bare test seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from codemill.agent.models.scripted import ScriptedBackend
from codemill.core.config import load_settings
from codemill.core.records import TaskSpec
from codemill.envs.builder_verdict import make_runner
from codemill.envs.envstore import sandbox_spec
from codemill.envs.sandbox import open_sandbox
from codemill.factory.lookup import env_for_snapshot
from codemill.factory.pipeline import RunConfig
from codemill.factory.run import resolve_source, run_pipeline
from codemill.rollouts.plan import RolloutConfig
from codemill.rollouts.runner import run_rollouts
from codemill.store.reader import LedgerReader
from codemill.store.rows import row_to_record


def oracle(tasks: list[TaskSpec]) -> ScriptedBackend:
    """A policy that knows each task's gold patch (looked up by its problem statement)."""
    gold = {t.problem_statement: t.gold_patch for t in tasks}

    def policy(messages, tools):  # type: ignore[no-untyped-def]
        prompt = next(m.content for m in messages if m.role == "user")
        if any(m.role == "assistant" for m in messages):
            return '<tool name="submit"></tool>'
        patch = next(p for s, p in gold.items() if s in prompt)
        return f"```bash\ngit apply <<'CODEMILL_EOF'\n{patch}CODEMILL_EOF\n```"

    return ScriptedBackend(policy, name="oracle")


def bare_seconds(task: TaskSpec, env, settings) -> float:  # type: ignore[no-untyped-def]
    runner = make_runner(env.test_command, env.env_vars)
    with open_sandbox(sandbox_spec(env, settings.home, settings.sandbox),
                      settings.home) as sb:
        start = time.perf_counter()
        runner.run(sb, list(task.fail_to_pass) + list(task.pass_to_pass), timeout_s=300)
        return time.perf_counter() - start


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="pypi:toolz==0.12.0")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--home", default="bench/out/rollouts_home")
    args = ap.parse_args(argv)
    settings = load_settings(None, home=Path(args.home).absolute())
    cfg = RunConfig(source=args.source, synth_tasks=args.tasks, feature_tasks=0,
                    model="scripted:submit", group_size=1)
    snap = resolve_source(cfg, settings)
    run_pipeline(cfg, settings, snapshot=snap, command="bench rollouts").raise_for_status()
    with LedgerReader.open(settings) as ledger:
        env = env_for_snapshot(ledger, snap.snapshot_id)
        assert env is not None, "no usable environment"
        rows = ledger.read("tasks", row_filter=f"env_id == '{env.env_id}'").to_pylist()
    tasks = list({r["task_id"]: row_to_record(TaskSpec, r) for r in rows}.values())
    bare = [bare_seconds(t, env, settings) for t in tasks]
    start = time.perf_counter()
    batch = run_rollouts(tasks, envs=[env], home=settings.home, settings=settings,
                         model=oracle(tasks), config=RolloutConfig(group_size=args.group))
    wall = time.perf_counter() - start
    rewards = [r.reward for r in batch.results if r.reward is not None]
    per = wall / max(len(batch.results), 1)
    print(f"project {args.source}: {len(tasks)} tasks x G={args.group}; env {env.env_id[:12]}")
    print(f"rollouts: {len(batch.results)} in {wall:.1f}s = {60 / per:.1f} per minute "
          f"({per:.2f} s each)")
    print(f"resolved by the oracle: {sum(bool(r.resolved) for r in rewards)}/{len(rewards)}; "
          f"masked {sum(r.masked for r in rewards)}")
    print(f"bare selection run: median {statistics.median(bare):.2f}s; "
          f"seconds per rollout / bare = {per / statistics.median(bare):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
