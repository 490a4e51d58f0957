"""Which engine samples for RL on this CPU: the candidates measured on one workload.

Runbook::

    .venv/bin/python bench/bench_engines.py              # every candidate, 2 samples
    .venv/bin/python bench/bench_engines.py --samples 1 --skip generate_batch   # quick look

The workload is the one a GRPO round or an eval wave puts on the sampler: ``--rows``
conversations, each a real agent prompt (the system prompt and a task that differs per
row), ``--tokens`` tokens sampled at T = 1 (no stop token, so every engine does the same
work). Candidates:

- ``one at a time``: the one-sequence sampler (``codemill.agent.models.sampler.sample``),
  row after row: what every local-model path did before the batched engine.
- ``generate``: transformers' static batch (left-padded prompts, ``do_sample``), the
  log-probs recomputed from the returned logits.
- ``generate_batch``: transformers' own continuous batching (paged attention cache).
- ``engine fp32``: ``codemill.agent.models.engine.BatchedEngine``, the engine every local
  path uses; it computes a step's linear layers through oneDNN
  (``codemill.agent.models.onednn``);
- ``engine fp32, torch's linear kernel``: the same engine computing them with torch's own
  kernel (an MKL GEMM).
- ``engine bf16``: the same engine over a bfloat16 copy of the weights (the sampler
  numerics an RL stack corrects with truncated importance sampling).

Besides tokens/s, each candidate's log-probs of its own sampled tokens are compared with
the trainer's forward pass (fp32, ``log_softmax(logits / T)`` over the vocabulary): the
largest absolute difference over all sampled tokens, so a fast engine whose log-probs an
RL loss cannot use shows it. llama.cpp and CTranslate2 are not measured: neither returns
the full-vocabulary log-prob of a sampled token after temperature, and neither loads a
PEFT adapter between rounds without a conversion step.

The second part measures what bounds the engine: the memory read bandwidth (a 400 MB sum),
the time of one decode step at 1 and ``--rows`` rows (a cached context of ``--context``
tokens, and of ``--long-context`` tokens, an agent's conversation a few turns in), tokens/s
of a decode step at the engine's widest batch and at half again as many (``--wide-context``
cached), and
prefill tokens/s (``--rows`` rows of 51 new tokens after that context), in
fp32 and bf16; and fp32 decode steps at 1, 4, 8 and ``--rows`` rows and a prefill with both
linear kernels (oneDNN's inner product, and torch's MKL GEMM). Results:
``bench/results/engines.json``; the last line names the fastest
candidate whose log-probs match the trainer within 1e-3.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampler import prompts  # noqa: E402
from codemill.agent.models.onednn import onednn_linear  # noqa: E402
from record import figure, write_result  # noqa: E402

KERNELS = (("oneDNN", True), ("torch's MKL GEMM", False))
"""The two linear kernels the decode-step figures compare (``codemill.agent.models.onednn``)."""
MATCH = 1e-3
"""Largest |sampler - trainer| log-prob an RL loss can take as on-policy (fp32 rounding of
a batched forward is ~1e-5; bf16 is ~1e-1)."""


def trainer_logprobs(model: Any, prompt: list[int], sampled: list[int]) -> list[float]:
    """The trainer's fp32 log-probs of ``sampled`` after ``prompt`` (T = 1), one forward."""
    import torch

    with torch.inference_mode():
        ids = torch.tensor([prompt + sampled])
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
        logp = torch.log_softmax(logits, -1)
        return logp.gather(1, torch.tensor(sampled).unsqueeze(1)).squeeze(1).tolist()


def gap(model: Any, firsts: list[list[int]], outs: list[tuple[list[int], list[float]]]) -> float:
    """Largest |engine log-prob - trainer log-prob| over every sampled token."""
    worst = 0.0
    for prompt, (ids, logps) in zip(firsts, outs, strict=True):
        ref = trainer_logprobs(model, prompt, ids)
        worst = max(worst, max(abs(a - b) for a, b in zip(ref, logps, strict=True)))
    return worst


def one_at_a_time(model: Any, firsts: list[list[int]], tokens: int) -> list[Any]:
    from codemill.agent.models.sampler import TokenConversation, sample
    from codemill.core.records import SamplingConfig

    outs = []
    for i, prompt in enumerate(firsts):
        conv = TokenConversation(ids=list(prompt))
        ids, logps, _ = sample(model, conv, SamplingConfig(temperature=1.0, max_tokens=tokens,
                                                           seed=i), set(), "cpu")
        outs.append((ids, logps))
    return outs


def static_generate(model: Any, firsts: list[list[int]], tokens: int) -> list[Any]:
    import torch

    width = max(len(p) for p in firsts)
    ids = torch.zeros((len(firsts), width), dtype=torch.long)
    attn = torch.zeros_like(ids)
    for b, p in enumerate(firsts):
        ids[b, width - len(p):] = torch.tensor(p)
        attn[b, width - len(p):] = 1
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=tokens,
                             min_new_tokens=tokens, do_sample=True, temperature=1.0, top_k=0,
                             top_p=1.0, output_logits=True, return_dict_in_generate=True,
                             pad_token_id=0)
    logits = torch.stack(out.logits, 1).float()              # [rows, tokens, vocab]
    sampled = out.sequences[:, width:]
    logp = torch.log_softmax(logits, -1).gather(2, sampled.unsqueeze(2)).squeeze(2)
    return [(sampled[b].tolist(), logp[b].tolist()) for b in range(len(firsts))]


def continuous_batch(model: Any, firsts: list[list[int]], tokens: int) -> list[Any]:
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    config = GenerationConfig(max_new_tokens=tokens, do_sample=True, temperature=1.0, top_k=0,
                              top_p=1.0, eos_token_id=-1, pad_token_id=0)
    out = model.generate_batch(inputs=firsts, generation_config=config, progress_bar=False,
                               continuous_batching_config=ContinuousBatchingConfig(
                                   return_logprobs=True))
    by_prompt = {tuple(o.prompt_ids): o for o in out.values()}
    rows = []
    for p in firsts:
        o = by_prompt[tuple(p)]
        rows.append((list(o.generated_tokens), [float(x) for x in (o.logprobs or [])]))
    return rows


def engine_run(engine: Any, firsts: list[list[int]], tokens: int) -> list[Any]:
    import threading

    from codemill.core.records import SamplingConfig

    outs: list[Any] = [None] * len(firsts)

    def go(i: int) -> None:
        turn = engine.generate(firsts[i], None, SamplingConfig(temperature=1.0,
                                                               max_tokens=tokens, seed=i),
                               set())
        outs[i] = (turn.ids, turn.logprobs)

    engine.prefixes.clear()
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(firsts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outs


def read_bandwidth() -> float:
    """GB/s of summing a 400 MB tensor (a lower bound on streaming the weights)."""
    import torch

    x = torch.ones(100_000_000)
    x.sum()
    t = time.perf_counter()
    for _ in range(5):
        x.sum()
    return 5 * x.numel() * 4 / (time.perf_counter() - t) / 1e9


def step_ms(model: Any, rows: int, context: int, new: int, repeats: int = 4,
            onednn: bool = True) -> float:
    """ms of one forward of ``rows`` rows x ``new`` tokens after ``context`` cached ones,
    through the engine's slot cache and 4-D mask, with the engine's linear kernel
    (``onednn`` False: torch's)."""
    import torch

    from codemill.agent.models.slots import SlotCache, mask, write_positions

    c = model.config
    cache = SlotCache(c.num_hidden_layers, c.num_key_value_heads,
                      getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
                      dtype=next(model.parameters()).dtype, device="cpu", slots=rows,
                      capacity=context + new + 1)
    lengths, fresh = torch.full((rows,), context), torch.full((rows,), new)
    tokens = torch.randint(0, 1000, (rows, new), generator=torch.Generator().manual_seed(0))
    kv_len = context + new + 1
    positions = write_positions(lengths, fresh, new, context + new)
    attend = mask(lengths, fresh, new, kv_len)

    def forward() -> None:
        cache.bind(0, rows, positions, kv_len)
        with onednn_linear(onednn):
            model(input_ids=tokens, position_ids=positions, attention_mask=attend,
                  use_cache=True, logits_to_keep=1, past_key_values=cache)

    with torch.inference_mode():
        forward()
        t = time.perf_counter()
        for _ in range(repeats):
            forward()
    return (time.perf_counter() - t) / repeats * 1000


def thread_counts(model: Any, context: int) -> list[dict]:
    """Decode steps on one thread and on every core, with the cores free and beside one
    busy process (a sandbox's tests): why the engine picks its thread count before each
    step (``codemill.agent.models.cores``)."""
    import torch

    from codemill.agent.models.engine import MAX_BATCH
    from codemill.core.config import available_cpus

    figures = []
    counts = sorted({1, available_cpus()})
    before = torch.get_num_threads()
    for beside in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if beside else None
        try:
            for n in counts:
                torch.set_num_threads(n)
                for rows in (4, MAX_BATCH):
                    what = (f"fp32 decode step, {rows} rows, {context} cached, {n} thread"
                            + "s" * (n > 1))
                    figures.append(figure(what + (", a busy process beside" if beside else ""),
                                          step_ms(model, rows, context, 1), "ms"))
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    torch.set_num_threads(before)
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--context", type=int, default=560)
    parser.add_argument("--long-context", type=int, default=4096)
    parser.add_argument("--wide-context", type=int, default=1500,
                        help="cached tokens of the widest-batch steps (an agent eval's)")
    parser.add_argument("--skip", default="", help="comma-separated candidates to leave out")
    parser.add_argument("--home", default=".codemill", help="where the model is cached")
    args = parser.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codemill.agent.models.engine import MAX_BATCH, BatchedEngine
    from codemill.agent.models.smollm2 import convert_smollm2

    torch.set_num_threads(2)
    path = convert_smollm2(args.home)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    half = copy.deepcopy(model).to(torch.bfloat16)
    firsts = prompts(tokenizer, args.rows)
    engines = {"engine fp32": BatchedEngine(model), "engine bf16": BatchedEngine(half),
               "engine fp32, torch's linear kernel": BatchedEngine(model, onednn=False)}
    candidates = {
        "one at a time": lambda: one_at_a_time(model, firsts, args.tokens),
        "generate": lambda: static_generate(model, firsts, args.tokens),
        "generate_batch": lambda: continuous_batch(model, firsts, args.tokens),
        "engine fp32": lambda: engine_run(engines["engine fp32"], firsts, args.tokens),
        "engine bf16": lambda: engine_run(engines["engine bf16"], firsts, args.tokens),
        "engine fp32, torch's linear kernel": lambda: engine_run(
            engines["engine fp32, torch's linear kernel"], firsts, args.tokens),
    }
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    speeds: dict[str, list[float]] = {name: [] for name in candidates if name not in skip}
    gaps: dict[str, float] = {}
    for sample_no in range(args.samples):
        for name in speeds:
            if name == "generate_batch" and sample_no:
                continue  # one sample: it is an order of magnitude slower than the rest
            started = time.monotonic()
            outs = candidates[name]()
            seconds = time.monotonic() - started
            made = sum(len(ids) for ids, _ in outs)
            speeds[name].append(made / seconds)
            if name not in gaps:
                gaps[name] = gap(model, firsts, outs)
            print(f"sample {sample_no + 1} {name:15s} {made:5d} tokens {seconds:7.1f} s "
                  f"{made / seconds:6.1f} tokens/s  |logp - trainer| <= {gaps[name]:.1e}",
                  flush=True)
    for engine in engines.values():
        engine.close()
    figures = []
    for name, values in speeds.items():
        figures.append(figure(f"{name}: {args.rows} rows x {args.tokens} tokens",
                              statistics.median(values), "tokens/s", samples=len(values),
                              max_logprob_gap_to_trainer=float(f"{gaps[name]:.2e}")))
    bandwidth = read_bandwidth()
    figures.append(figure("memory read bandwidth (sum of 400 MB)", bandwidth, "GB/s"))
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    figures.append(figure("fp32 weights streamed once at that bandwidth",
                          weights_mb / bandwidth, "ms", weights_mb=round(weights_mb)))
    for label, m in (("fp32", model), ("bf16", half)):
        for rows in (1, args.rows):
            figures.append(figure(f"{label} decode step, {rows} rows, {args.context} cached",
                                  step_ms(m, rows, args.context, 1), "ms"))
        # An agent's conversation grows to thousands of tokens, and each decode step reads
        # every row's keys and values besides the weights.
        figures.append(figure(f"{label} decode step, {args.rows} rows, {args.long_context} "
                              "cached", step_ms(m, args.rows, args.long_context, 1), "ms"))
        ms = step_ms(m, args.rows, args.context, 51)
        figures.append(figure(f"{label} prefill, {args.rows} rows x 51 new tokens",
                              args.rows * 51 / ms * 1000, "tokens/s", step_ms=round(ms)))
    # The engine's widest batch against half again as many rows, at an agent eval's
    # context: whether a wider batch would add tokens/s (``engine.MAX_BATCH``).
    for rows in (MAX_BATCH, MAX_BATCH * 3 // 2):
        ms = step_ms(model, rows, args.wide_context, 1)
        figures.append(figure(f"fp32 decode step, {rows} rows, {args.wide_context} cached",
                              rows / ms * 1000, "tokens/s", step_ms=round(ms)))
    for rows in sorted({1, 4, 8, args.rows}):
        for kernel, onednn in KERNELS:
            figures.append(figure(f"fp32 decode step, {rows} rows, {args.context} cached, "
                                  f"linear by {kernel}",
                                  step_ms(model, rows, args.context, 1, onednn=onednn), "ms"))
    for kernel, onednn in KERNELS:
        ms = step_ms(model, 4, args.context, 51, onednn=onednn)
        figures.append(figure(f"fp32 prefill, 4 rows x 51 new tokens, linear by {kernel}",
                              4 * 51 / ms * 1000, "tokens/s", step_ms=round(ms)))
    figures += thread_counts(model, args.wide_context)
    for f in figures:
        print(f"{f['what']}: {f['value']} {f['unit']}")
    write_result("engines", "Sampling engines for RL on this CPU", figures,
                 measures=(f"SmolLM2-135M on 2 torch threads; {args.rows} real agent prompts "
                           f"sampled {args.tokens} tokens each at T = 1, prefill included; "
                           "each engine's log-probs of its own tokens against the trainer's "
                           "fp32 forward; then decode-step and prefill costs through the "
                           "engine's slot cache, fp32 and bf16"))
    usable = {n: statistics.median(v) for n, v in speeds.items() if gaps[n] <= MATCH}
    best = max(usable, key=lambda n: usable[n])
    print(f"fastest engine with trainer log-probs (|gap| <= {MATCH:g}): {best}, "
          f"{usable[best]:.1f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
