"""Patch mode with a real model on real tasks: how often the answer parses, how often it fixes.

    CODEMILL_HOME=/tmp/pm/home python bench/bench_patch_mode.py --tasks 6 --samples 3

Runbook: a ledger with validated tasks first (``codemill env build pypi:parse==1.19.0``, then
``codemill tasks synth ENV --max 10``). For each answer format (line edits ``N: text``,
search/replace blocks) the script runs ``--samples`` patch-mode rollouts of ``--model``
(default: the embedded SmolLM2-135M) on each of the first ``--tasks`` tasks, through the real
runner (``codemill.rollouts``: the context from a sandboxed covered run of the broken state,
one model call, the same grader), and reports per format: the share of answers read as an
edit (parse rate), the share resolved (pass rate), why the others were malformed, and the
seconds. First it checks localization on up to ``--localize`` tasks: how many listings hold
every line the gold patch changes (measured with the gold patch, never shown to a model).
Nothing is written to the ledger; the figures go to ``bench/results/patch-mode.json``
(``bench/record.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import figure, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--localize", type=int, default=40,
                    help="Tasks whose listing is checked for the gold lines.")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--formats", default="lines,search_replace")
    ap.add_argument("--no-record", action="store_true", help="Print only.")
    args = ap.parse_args()

    from codemill.core.config import load_settings
    from codemill.core.records import SamplingConfig, StopReason
    from codemill.factory.lookup import find_env, load_tasks
    from codemill.rollouts.patch_data import expert_examples
    from codemill.rollouts.plan import RolloutConfig
    from codemill.rollouts.runner import run_rollouts
    from codemill.store.reader import LedgerReader

    settings = load_settings(None)
    with LedgerReader.open(settings) as reader:
        every = sorted(load_tasks(reader), key=lambda t: t.task_id)[: args.localize]
        envs = {t.env_id: find_env(reader, t.env_id) for t in every}
    tasks = every[: args.tasks]
    if not tasks:
        raise SystemExit("no tasks in the ledger (see the runbook)")
    # Localization: does the listing (built without the gold patch) hold every line the
    # gold patch changes? Measured with the gold patch, which no prompt ever sees.
    shown = expert_examples(every, envs=envs, home=settings.home, settings=settings)
    print(f"gold change inside the listing: {len(shown.examples)} of {len(every)} tasks; "
          f"{dict(shown.skipped)}")
    figures = [figure("tasks whose listing holds every line the gold patch changes",
                      f"{len(shown.examples)} of {len(every)}",
                      skipped=dict(shown.skipped))]
    sampling = SamplingConfig(temperature=args.temperature, max_tokens=args.max_tokens, seed=0)
    for fmt in args.formats.split(","):
        started = time.monotonic()
        batch = run_rollouts(tasks, envs=envs, home=settings.home, settings=settings,
                             model=args.model, policy=f"bench-patch:{args.model}",
                             config=RolloutConfig(group_size=args.samples, sampling=sampling,
                                                  mode="patch", answer_format=fmt))
        seconds = time.monotonic() - started
        results = batch.results
        parsed = [r for r in results if r.trajectory.stop_reason == StopReason.SUBMITTED]
        graded = [r for r in results if r.reward is not None and not r.reward.masked]
        resolved = [r for r in graded if r.reward.resolved]
        why = Counter((r.trajectory.error or "").removeprefix("malformed answer: ")[:60]
                      for r in results if r.trajectory.stop_reason == StopReason.FORMAT_ERROR)
        masked = len(results) - len(graded)
        print(f"{fmt}: {len(results)} answers, parsed {len(parsed)}, resolved "
              f"{len(resolved)}/{len(graded)} graded, masked {masked}, {seconds:.0f}s; "
              f"malformed: {dict(why)}")
        for r in results[:2]:
            print("  sample answer:", repr(r.trajectory.steps[0].reply.message.content[:200])
                  if r.trajectory.steps else r.trajectory.error)
        figures += [
            figure(f"{fmt}: answers read as an edit", f"{len(parsed)} of {len(results)}",
                   tasks=len(tasks), samples=args.samples),
            figure(f"{fmt}: resolved", f"{len(resolved)} of {len(graded)}", masked=masked),
            figure(f"{fmt}: seconds", round(seconds, 1), "s",
                   malformed=dict(why.most_common(4))),
        ]
    if not args.no_record:
        write_result("patch-mode", "Patch mode: answer formats with a real model", figures,
                     measures=f"{args.model}, T={args.temperature}, {args.max_tokens} tokens "
                     "an answer, on the ledger's first tasks by id; parse rate and pass rate "
                     "per answer format")


if __name__ == "__main__":
    main()
