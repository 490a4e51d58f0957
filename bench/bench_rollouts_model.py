"""Graded rollouts per minute with the embedded model on a real project: one at a time
against many in flight around the batched sampler.

    .venv/bin/python bench/bench_rollouts_model.py [--source pypi:toolz==0.12.0] [--tasks 6]
        [--group 2] [--samples 1] [--in-flight 32] [--home bench/out/rollouts_home]

1. materializes snapshots -> environments -> synthesized tasks for ``--source`` through
   the factory (cached in ``--home`` after the first run);
2. loads SmolLM2-135M once (``smollm2``) and runs ``--group`` agent rollouts per task, each
   graded by the real grader in a fresh sandbox, twice per sample, interleaved:
   ``serial`` (one rollout at a time: the engine decodes one sequence, as each sampler
   process did before the batched engine) and ``batched`` (``--in-flight`` rollouts at
   once: the engine decodes the turns that wait together while other rollouts' tools and
   tests run);
3. prints graded rollouts per minute for both and their ratio, and writes
   ``bench/results/rollouts-model.json``.

Both sides sample the same rollouts (same seeds, same policy), so their work is the same up
to when each agent stops. The agent settings are the eval defaults of ``codemill run``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codemill.agent.config import AgentConfig  # noqa: E402
from codemill.agent.models import make_backend  # noqa: E402
from codemill.core.config import load_settings  # noqa: E402
from codemill.core.records import SamplingConfig, TaskSpec  # noqa: E402
from codemill.factory.lookup import env_for_snapshot  # noqa: E402
from codemill.factory.pipeline import RunConfig  # noqa: E402
from codemill.factory.run import resolve_source, run_pipeline  # noqa: E402
from codemill.rollouts.plan import RolloutConfig  # noqa: E402
from codemill.rollouts.runner import IN_FLIGHT, prepare_workspaces, run_rollouts  # noqa: E402
from codemill.store.reader import LedgerReader  # noqa: E402
from codemill.store.rows import row_to_record  # noqa: E402
from record import figure, write_result  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="pypi:toolz==0.12.0")
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--group", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128, help="sampled tokens a turn at most")
    ap.add_argument("--home", default="bench/out/rollouts_home")
    ap.add_argument("--prepare", action="store_true",
                    help="build the environment, tasks and workspaces, then stop (untimed)")
    args = ap.parse_args(argv)
    settings = load_settings(None, home=Path(args.home).absolute())
    cfg = RunConfig(source=args.source, synth_tasks=args.tasks, feature_tasks=0,
                    model="scripted:submit", group_size=1)
    snap = resolve_source(cfg, settings)
    run_pipeline(cfg, settings, snapshot=snap, command="bench rollouts-model").raise_for_status()
    with LedgerReader.open(settings) as ledger:
        env = env_for_snapshot(ledger, snap.snapshot_id)
        assert env is not None, "no usable environment"
        rows = ledger.read("tasks", row_filter=f"env_id == '{env.env_id}'").to_pylist()
    tasks = list({r["task_id"]: row_to_record(TaskSpec, r) for r in rows}.values())
    tasks = sorted(tasks, key=lambda t: t.task_id)[:args.tasks]
    prepare_workspaces(tasks, {env.env_id: env}, settings.home, settings)  # untimed, cached
    if args.prepare:
        print(f"prepared {len(tasks)} tasks of {args.source} in {args.home}")
        return 0
    model = make_backend("smollm2", home=settings.home)
    rates: dict[str, list[float]] = {"serial": [], "batched": []}
    counts: dict[str, list[str]] = {"serial": [], "batched": []}
    for sample in range(args.samples):
        sampling = SamplingConfig(temperature=1.0, max_tokens=args.tokens, seed=100 + sample)
        agent = AgentConfig(max_turns=args.turns, max_tokens=args.turns * args.tokens,
                            sampling=sampling)
        order = ("serial", "batched") if sample % 2 == 0 else ("batched", "serial")
        for kind in order:
            before = dict(model.engine.thread_steps)
            started = time.perf_counter()
            batch = run_rollouts(tasks, envs=[env], home=settings.home, settings=settings,
                                 model=model, policy="smollm2",
                                 config=RolloutConfig(group_size=args.group, sampling=sampling),
                                 agent=agent,
                                 in_flight=1 if kind == "serial" else args.in_flight)
            seconds = time.perf_counter() - started
            graded = [r for r in batch.results if r.reward is not None and not r.reward.masked]
            rate = len(graded) / seconds * 60
            rates[kind].append(rate)
            resolved = sum(bool(r.reward.resolved) for r in graded if r.reward is not None)
            # forward passes by torch threads: the engine uses the cores the sandboxes'
            # tests leave free (``codemill.agent.models.cores``)
            on = {n: c - before.get(n, 0) for n, c in model.engine.thread_steps.items()}
            counts[kind].append(f"{len(graded)} graded of {batch.planned}, "
                                f"{len(batch.failed)} failed, {resolved} resolved; steps "
                                + ", ".join(f"{c} on {n} thread" + "s" * (n > 1)
                                            for n, c in sorted(on.items()) if c))
            print(f"sample {sample + 1} {kind:7s}: {len(graded)}/{batch.planned} graded in "
                  f"{seconds:.0f} s = {rate:.2f} graded rollouts/min "
                  f"({len(batch.failed)} failed, {resolved} resolved)", flush=True)
    serial, batched = statistics.median(rates["serial"]), statistics.median(rates["batched"])
    ratio = statistics.median(b / s for b, s in zip(rates["batched"], rates["serial"],
                                                    strict=True))
    write_result("rollouts-model", "Graded rollouts per minute with SmolLM2-135M", [
        figure("one rollout at a time", serial, "graded rollouts/min",
               samples=args.samples, attempts=counts["serial"]),
        figure(f"{args.in_flight} in flight, one batched sampler", batched,
               "graded rollouts/min", samples=args.samples, attempts=counts["batched"]),
        figure("batched / one at a time", ratio, "x"),
    ], measures=(f"{args.source}: {len(tasks)} synthesized tasks x {args.group} agent "
                 f"rollouts of SmolLM2-135M (fp32, temperature 1, at most {args.turns} "
                 f"turns of {args.tokens} tokens), each graded in a fresh sandbox; the two "
                 "sides interleaved, same seeds"))
    print(f"graded rollouts/min: one at a time {serial:.2f}, {args.in_flight} in flight "
          f"{batched:.2f}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
