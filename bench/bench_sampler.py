"""Batched sampler against the one-sequence sampler, on the embedded SmolLM2-135M.

Runbook::

    .venv/bin/python bench/bench_sampler.py                  # 1, 4, 8, 16 sequences, 3 samples
    .venv/bin/python bench/bench_sampler.py --sizes 16 --samples 1 --turns 2   # quick look

``N`` conversations run at once as threads, each a multi-turn exchange as an agent has: a
real agent prompt (the system prompt and a task, different per conversation), ``--turns``
model turns of exactly ``--tokens`` sampled tokens each (no stop token, so both samplers do
the same work), and between turns a tool pause of ``--pause`` seconds after which a tool
observation is appended. Two samplers, interleaved within every sample (order alternating):

- ``single``: the one-sequence sampler (``codemill.agent.models.sampler.sample``) on one
  thread that serves the conversations' turns one at a time, as every local-model path
  sampled before the batched engine (a worker process decoding one sequence), each
  conversation keeping its KV cache across turns;
- ``batched``: ``codemill.agent.models.engine.BatchedEngine``: the turns waiting at the same
  time are decoded together; a conversation keeps its cache across turns as a stash.

Each sampler runs its forward passes on one thread of its own, and the one that is idle
gives its OpenMP workers back (``codemill.agent.models.omp``), so neither is slowed by the
other's idle pool; ``--thread-check`` (on by default) first measures what that costs.

Tokens/s = sampled tokens of all conversations / wall time (prefill and pauses included).
Memory: the process's resident set after the configuration, and the engine's slot storage.
Both samplers draw from per-conversation seeded generators, so they sample the same tokens:
the benchmark checks that too. The engine's prompt-prefix cache is emptied before each
batched configuration, so it reuses only what the conversations of that configuration
share (the system prompt), as a fresh run would. Results: ``bench/results/sampler.json``;
the last line is ``batched/single tokens/s at 16 sequences: X.XXx`` (the median of the
per-sample ratios).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codemill.agent.models.omp import release_openmp_threads  # noqa: E402
from record import figure, write_result  # noqa: E402

OBSERVATION = ("$ python -m pytest -q tests/test_core.py\n"
               "F.....                                                     [100%]\n"
               "FAILED tests/test_core.py::test_parse - AssertionError: assert 3 == 4\n")


def rss_mb() -> float:
    from codemill.core.memory import resident_bytes

    return resident_bytes()[0] / 2**20


def prompts(tokenizer: Any, n: int) -> list[list[int]]:
    """``n`` real agent prompts: the system prompt and a task that differs per index."""
    from codemill.agent.models.sampler import encode, render
    from codemill.agent.prompts import system_prompt
    from codemill.agent.tools import default_tools

    system = system_prompt(None, default_tools(), native=False, workdir="/repo")
    out = []
    for i in range(n):
        task = (f"Issue #{i + 1}: `parse('{{:d}}', '{i}')` returns None instead of {i}. "
                "The test tests/test_core.py::test_parse fails. Find the cause and fix it.")
        chat = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        out.append(encode(tokenizer, render(tokenizer, chat, True)))
    return out


def thread_check(model: Any, rows: int = 16, tokens: int = 16,
                 repeats: int = 5) -> list[dict[str, Any]]:
    """ms per forward pass of ``rows x tokens`` tokens, and the cores it kept busy: on the
    thread that loaded the model, on a second thread while the first keeps its OpenMP
    workers, and on a second thread after the first gave them back
    (``codemill.agent.models.omp``)."""
    import torch

    batch = torch.randint(0, 1000, (rows, tokens))

    def timed() -> tuple[float, float]:
        with torch.inference_mode():
            model(input_ids=batch)
            wall, cpu = time.monotonic(), time.process_time()
            for _ in range(repeats):
                model(input_ids=batch)
            wall = time.monotonic() - wall
            return wall / repeats * 1000, (time.process_time() - cpu) / wall

    def elsewhere() -> tuple[float, float]:
        out: list[tuple[float, float]] = []
        worker = threading.Thread(target=lambda: out.append(timed()))
        worker.start()
        worker.join()
        return out[0]

    figures = []
    for what, measure in (("the loading thread", timed),
                          ("a second thread, workers kept", elsewhere)):
        ms, cores = measure()
        figures.append(figure(f"forward pass on {what}", ms, "ms", cores_busy=round(cores, 2)))
    timed()
    release_openmp_threads()
    ms, cores = elsewhere()
    figures.append(figure("forward pass on a second thread, workers given back", ms, "ms",
                          cores_busy=round(cores, 2)))
    for f in figures:
        print(f"{f['what']}: {f['value']:.0f} ms, {f['detail']['cores_busy']} cores busy",
              flush=True)
    return figures


def converse(generate: Any, first: list[int], seed: int, args: argparse.Namespace,
             observation: list[int]) -> tuple[list[int], int]:
    """One conversation: ``args.turns`` turns with pauses; (all sampled ids, count)."""
    from codemill.core.records import SamplingConfig

    ids, state, sampled = list(first), None, []
    for turn in range(args.turns):
        if turn:
            time.sleep(args.pause)  # the tool runs; other conversations go on
            ids += observation
        sampling = SamplingConfig(temperature=1.0, max_tokens=args.tokens,
                                  seed=seed * 1000 + turn)
        new, state = generate(ids, state, sampling)
        ids += new
        sampled += new
    return sampled, len(sampled)


def run_config(kind: str, n: int, model: Any, engine: Any, one_at_a_time: Any,
               firsts: list[list[int]], args: argparse.Namespace,
               observation: list[int]) -> dict[str, Any]:
    from codemill.agent.models.sampler import TokenConversation, sample

    def single(ids: list[int], conv: Any, sampling: Any) -> tuple[list[int], Any]:
        conv = conv or TokenConversation()
        conv.ids = list(ids)
        new, _, _ = one_at_a_time.submit(sample, model, conv, sampling, set(), "cpu").result()
        conv.ids += new
        return new, conv

    if kind == "batched":
        engine.prefixes.clear()  # every configuration starts cold, as a fresh run would

    def batched(ids: list[int], saved: Any, sampling: Any) -> tuple[list[int], Any]:
        turn = engine.generate(ids, saved, sampling, set())
        return turn.ids, turn.saved

    generate = single if kind == "single" else batched
    results: list[Any] = [None] * n

    def go(i: int) -> None:
        results[i] = converse(generate, firsts[i], i, args, observation)

    started = time.monotonic()
    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    # The idle sampler's thread gives its OpenMP workers back, as the engine's does when
    # idle, so the next configuration's sampler has the cores alone.
    one_at_a_time.submit(release_openmp_threads).result()
    tokens = sum(r[1] for r in results)
    return {"kind": kind, "n": n, "seconds": seconds, "tokens": tokens,
            "tokens_per_s": tokens / seconds, "rss_mb": rss_mb(),
            "sampled": [r[0] for r in results]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8,16")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--home", default=".codemill", help="where the model is cached")
    parser.add_argument("--thread-check", action=argparse.BooleanOptionalAction, default=True,
                        help="first time one forward pass on the loading thread and on a "
                             "second thread, before and after the first gives back its "
                             "OpenMP workers")
    args = parser.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codemill.agent.models.engine import BatchedEngine
    from codemill.agent.models.sampler import encode
    from codemill.agent.models.smollm2 import convert_smollm2

    torch.set_num_threads(args.threads)
    path = convert_smollm2(args.home)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    thread_figures = thread_check(model) if args.thread_check else []
    engine = BatchedEngine(model)
    one_at_a_time = ThreadPoolExecutor(1, thread_name_prefix="single-sampler")
    sizes = [int(s) for s in args.sizes.split(",")]
    firsts = prompts(tokenizer, max(sizes))
    observation = encode(tokenizer, OBSERVATION)
    rows: list[dict[str, Any]] = []
    for sample_no in range(args.samples):
        for n in sizes:
            order = ("single", "batched") if (sample_no + n) % 2 == 0 else ("batched", "single")
            pair = {}
            for kind in order:
                row = run_config(kind, n, model, engine, one_at_a_time, firsts, args,
                                 observation)
                pair[kind] = row
                print(f"sample {sample_no + 1} n={n:2d} {kind:7s} {row['tokens']:5d} tokens "
                      f"{row['seconds']:7.1f} s {row['tokens_per_s']:6.1f} tokens/s "
                      f"rss {row['rss_mb']:.0f} MB", flush=True)
            same = pair["single"]["sampled"] == pair["batched"]["sampled"]
            rows.append({"sample": sample_no, "n": n, "same_tokens": same,
                         "ratio": pair["batched"]["tokens_per_s"]
                         / pair["single"]["tokens_per_s"],
                         **{f"{k}_tokens_per_s": pair[k]["tokens_per_s"] for k in pair},
                         "rss_mb": max(pair[k]["rss_mb"] for k in pair)})
    slot_mb = sum(t.numel() * t.element_size() for t in engine._cache.keys + engine._cache.values)
    engine.close()
    one_at_a_time.shutdown()
    figures = list(thread_figures)
    print(f"\n{'sequences':>9} {'single tok/s':>12} {'batched tok/s':>13} {'ratio':>6} "
          f"{'same tokens':>11}")
    for n in sizes:
        mine = [r for r in rows if r["n"] == n]
        single = statistics.median(r["single_tokens_per_s"] for r in mine)
        batched = statistics.median(r["batched_tokens_per_s"] for r in mine)
        ratio = statistics.median(r["ratio"] for r in mine)
        same = sum(r["same_tokens"] for r in mine)
        print(f"{n:9d} {single:12.1f} {batched:13.1f} {ratio:6.2f} {same:>8d}/{len(mine)}")
        figures += [
            figure(f"single sampler, {n} conversations", single, "tokens/s", samples=len(mine)),
            figure(f"batched engine, {n} conversations", batched, "tokens/s", samples=len(mine)),
            figure(f"batched/single at {n} conversations", ratio, "x",
                   median_of=[round(r["ratio"], 2) for r in mine],
                   same_tokens=f"{same} of {len(mine)}"),
        ]
    figures.append(figure("resident memory, largest configuration",
                          max(r["rss_mb"] for r in rows), "MB"))
    figures.append(figure("engine slot storage at the end", slot_mb / 2**20, "MB"))
    write_result("sampler", "Batched sampler vs one-sequence sampler", figures,
                 measures=(f"SmolLM2-135M fp32 on {args.threads} torch threads; each "
                           f"conversation: a real agent prompt, {args.turns} turns of "
                           f"{args.tokens} sampled tokens, a {args.pause} s tool pause and "
                           "an observation between turns; tokens/s over wall time, prefill "
                           "included; medians over samples, the two samplers interleaved"))
    top = max(sizes)
    ratio = statistics.median(r["ratio"] for r in rows if r["n"] == top)
    print(f"batched/single tokens/s at {top} sequences: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
