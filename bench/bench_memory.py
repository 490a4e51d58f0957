"""What a process holds in memory when it samples through the batched engine, then trains.

Runbook::

    .venv/bin/python bench/bench_memory.py                    # both engines, 32 rows
    .venv/bin/python bench/bench_memory.py --rows 8 --update-len 1024   # quick look

An engine lives as long as its backend, and a process keeps a local model's backend for
good (the rollout runner caches it; ``model serve``): the demo evaluates the base model and
then trains in the same process. (The factory's GRPO closes its sampler's backend after
each draw, and a closed engine gives its storage back at once; each GRPO round logs the
process's resident set, ``resident_gb``.) This benchmark runs that shape on the
embedded SmolLM2-135M, sampling a GRPO round's rows and then a GRPO update, each
configuration in a fresh child process so one's peak does not hide the other's:

1. **load** the policy as ``train grpo`` does (full-parameter fp32, AdamW);
2. **sample** ``--rows`` one-turn conversations at once, each a ``--prompt-len``-token
   prompt (a patch-mode prompt's size) and ``--tokens`` sampled tokens, through the
   engine, as the rollout threads do;
3. **idle**: the engine waits ``--idle`` seconds with no row (the update starting);
4. **update**: ``codemill.train.steps.grpo_step`` on ``--update-seqs`` sequences of
   ``--update-len`` tokens (two optimizer steps and the log-probs before them, one
   sequence a micro-batch, as ``bench_learn``'s GRPO recipe), the engine still open.

Configurations: ``kept`` (the engine never gives its storage back, as before
``RELEASE_AFTER_S``) and ``released`` (the engine's default). For each: the resident set
after each phase and its peak within each phase (sampled every 50 ms), and the bytes of
keys and values the engine holds when the update starts. The last line is ``peak resident
set through the update: kept X GB, released Y GB``. Results: ``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampler import rss_mb  # noqa: E402
from record import figure, write_result  # noqa: E402

GB = 1024 ** 3


def rss_bytes() -> float:
    return rss_mb() * 1024 * 1024


class PeakWatch:
    """The largest resident set seen since the last ``phase`` call (a sampling thread)."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.peak = max(self.peak, rss_bytes())

    def phase(self) -> dict[str, float]:
        now = rss_bytes()
        out = {"peak_gb": max(self.peak, now) / GB, "end_gb": now / GB}
        self.peak = now
        return out


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration (module docstring), in this process."""
    import torch

    from codemill.agent.models.engine import BatchedEngine
    from codemill.agent.models.smollm2 import convert_smollm2
    from codemill.core.records import SamplingConfig
    from codemill.train.config import TrainConfig
    from codemill.train.data import TrainSeq
    from codemill.train.policy import load_policy
    from codemill.train.steps import grpo_step

    watch = PeakWatch()
    phases: dict[str, Any] = {}
    config = TrainConfig(steps=1, lr=5e-5, updates=2, threads=2, max_len=args.update_len)
    policy = load_policy(convert_smollm2(args.home), config)
    phases["load"] = watch.phase()

    release = args.idle / 2 if args.config == "released" else 10 ** 9
    policy.model.eval()
    engine = BatchedEngine(policy.model, release_after_s=release)
    vocab = policy.model.config.vocab_size
    sampling = SamplingConfig(temperature=1.0, max_tokens=args.tokens, top_p=1.0, top_k=0)
    outs: list[Any] = [None] * args.rows

    def one(i: int) -> None:
        g = torch.Generator().manual_seed(i)
        ids = torch.randint(100, vocab - 100, (args.prompt_len,), generator=g).tolist()
        outs[i] = engine.generate(ids, None, sampling, set())

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.rows)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phases["sample"] = {**watch.phase(), "seconds": time.monotonic() - started,
                        "engine_gb": engine.held_bytes / GB}
    outs.clear()  # the rollouts' stashes leave with their conversations

    time.sleep(args.idle)
    phases["idle"] = {**watch.phase(), "engine_gb": engine.held_bytes / GB,
                      "releases": engine.releases}

    g = torch.Generator().manual_seed(0)
    seqs = []
    for i in range(args.update_seqs):
        ids = torch.randint(100, vocab - 100, (args.update_len,), generator=g).tolist()
        answer = args.update_len // 16
        seqs.append(TrainSeq(ids=tuple(ids), mask=(0,) * (len(ids) - answer) + (1,) * answer,
                             old_logprobs=(0.0,) * len(ids),
                             advantage=1.0 if i % 2 else -1.0))
    started = time.monotonic()
    grpo_step(policy, seqs)
    phases["update"] = {**watch.phase(), "seconds": time.monotonic() - started}
    engine.close()
    return {"config": args.config, "phases": phases}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--idle", type=float, default=4.0)
    parser.add_argument("--update-seqs", type=int, default=2)
    parser.add_argument("--update-len", type=int, default=2048)
    parser.add_argument("--home", default=".codemill", help="where the model is cached")
    parser.add_argument("--config", choices=("kept", "released"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.config:  # a child: one configuration, its result on the last line
        print(json.dumps(child(args)))
        return 0
    results = {}
    for config in ("kept", "released"):
        cmd = [sys.executable, __file__, *argv, "--config", config]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        results[config] = json.loads(out.stdout.strip().splitlines()[-1])["phases"]
        print(config, json.dumps(results[config]))
    shape = {"rows": args.rows, "prompt_len": args.prompt_len, "tokens": args.tokens,
             "update_seqs": args.update_seqs, "update_len": args.update_len}
    figures = []
    for config, phases in results.items():
        figures += [
            figure(f"{config}: keys and values the engine holds when the update starts",
                   round(phases["idle"]["engine_gb"], 2), "GB", **shape),
            figure(f"{config}: peak resident set while sampling",
                   round(phases["sample"]["peak_gb"], 2), "GB",
                   seconds=round(phases["sample"]["seconds"], 1)),
            figure(f"{config}: peak resident set through the update",
                   round(phases["update"]["peak_gb"], 2), "GB",
                   seconds=round(phases["update"]["seconds"], 1),
                   loaded_gb=round(phases["load"]["end_gb"], 2)),
        ]
    write_result("memory", "Memory through a GRPO round (SmolLM2-135M, fp32)", figures,
                 measures="The resident set of one process that samples a GRPO round's "
                 "rollouts through the batched engine over the policy's weights and then "
                 "updates those weights (grpo_step), with the engine keeping its cache "
                 "storage and with it giving the storage back once idle.")
    kept, rel = (results[c]["update"]["peak_gb"] for c in ("kept", "released"))
    print(f"peak resident set through the update: kept {kept:.2f} GB, released {rel:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
