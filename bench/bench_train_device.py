"""The trainer and the batched engine on an accelerator: SFT and GRPO steps and sampling at
SmolLM2-135M's size, with the engine's log-probs against the trainer's on that device.

Runbook (on a GPU machine; ``--device cpu --quick`` is a smoke run anywhere)::

    PYTHONPATH=src python3 bench/bench_train_device.py --model DIR --out DIR

``--model`` is a transformers directory. One with weights is loaded as is; one with only
``config.json`` and the tokenizer (SmolLM2-135M's are 4 MB, where its weights are 540 MB
and the lent GPU machine takes 64 MB and reaches no network) gets seeded random weights
of that architecture. Speed does not depend on the weights' values; so that the log-prob
comparison runs on peaked distributions, not the flat ones of a random model, the SFT phase
first trains the weights on real code (this repository's own ``src/``).

Phases, each timed with the device synchronized:

1. **SFT** (``codemill.train.steps.sft_step``): ``--batch`` sequences of ``--length`` tokens
   of code, the last 30% of each trained on (about an agent trajectory's model share), full
   weights in fp32, then under bf16 autocast, then a LoRA adapter (r 16, attention and MLP)
   under bf16; tokens/s over the timed steps, the loss before and after, peak memory.
2. **GRPO** (``grpo_step``): one round of the same sequences with advantages of +-1 and the
   trainer's own log-probs as the sampler's, two updates (so the clip does its work).
3. **Engine** (``codemill.agent.models.engine.BatchedEngine`` on the SFT-trained fp32
   weights): 1, 16 and 64 rows of ``--new`` tokens after 512-token code prompts at T = 1,
   tokens/s; the same at 64 rows over a bf16 copy. Then its log-probs of 8 sampled rows
   against the trainer's forward on the device (largest gap), and whether a row draws the
   same tokens alone as in the batch.

Results: ``<out>/train-device.json`` (default ``bench/results``); the CPU figures of the
same steps are in ``bench/results/train.json`` and ``engines.json``.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from bench_engines import engine_run  # noqa: E402
from record import figure, write_result  # noqa: E402

MODEL_SHARE = 0.3
"""The trained tail of each sequence (an agent trajectory's model tokens are about 30%)."""


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_dir(given: Path, scratch: Path, seed: int) -> Path:
    """``given`` when it holds weights; else a copy with seeded random weights."""
    if any(given.glob("*.safetensors")):
        return given
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(given))
    out = scratch / "model"
    shutil.copytree(given, out)
    model.save_pretrained(out)
    return out


def code_sequences(tokenizer: Any, n: int, length: int) -> list[Any]:
    """``n`` windows of ``length`` tokens of this repository's Python source."""
    from codemill.train.data import TrainSeq

    text = "\n".join(p.read_text() for p in sorted((ROOT / "src").rglob("*.py")))
    ids = tokenizer(text)["input_ids"]
    head = int(length * (1 - MODEL_SHARE))
    seqs = []
    for i in range(n):
        window = tuple(ids[i * length:(i + 1) * length])
        if len(window) < length:
            raise SystemExit(f"not enough source text for {n} x {length} tokens")
        seqs.append(TrainSeq(ids=window, mask=(0,) * head + (1,) * (length - head),
                             old_logprobs=(0.0,) * length))
    return seqs


def timed_sft(policy: Any, seqs: list[Any], steps: int, warmup: int) -> dict[str, Any]:
    import torch

    from codemill.train.steps import sft_step

    if policy.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    losses = [sft_step(policy, seqs)["loss"] for _ in range(warmup)]
    sync(policy.device)
    started = time.perf_counter()
    for _ in range(steps):
        losses.append(sft_step(policy, seqs)["loss"])
    sync(policy.device)
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() / 2**30 if policy.device.startswith("cuda")
            else None)
    return {"tokens_per_s": steps * sum(len(s.ids) for s in seqs) / seconds,
            "step_s": round(seconds / steps, 4), "steps": steps,
            "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
            "peak_gib": round(peak, 2) if peak is not None else None}


def trainer_logprobs(model: Any, prompt: list[int], sampled: list[int], device: str
                     ) -> list[float]:
    """The trainer's fp32 log-probs of ``sampled`` after ``prompt`` (T = 1) on ``device``."""
    import torch

    from codemill.train.losses import token_logprobs

    ids = torch.tensor([prompt + sampled], device=device)
    mask = torch.zeros_like(ids, dtype=torch.float32)
    mask[0, len(prompt):] = 1
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "targets": ids[:, 1:], "mask": mask[:, 1:]}
    with torch.inference_mode():
        logp = token_logprobs(model, batch)
    return logp[0, len(prompt) - 1:].tolist()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--rows", default="1,16,64")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.length, args.steps, args.new, args.rows = 2, 64, 2, 4, "1,2"
    import torch

    from codemill.agent.models.engine import BatchedEngine
    from codemill.core.records import SamplingConfig
    from codemill.train.config import LORA_ATTENTION_AND_MLP, TrainConfig
    from codemill.train.policy import load_policy
    from codemill.train.steps import grpo_step, with_prox

    device = args.device
    figs: list[dict[str, Any]] = []
    where = {"device": (torch.cuda.get_device_name(0) if device.startswith("cuda")
                        else "cpu"), "torch": torch.__version__}
    scratch = Path(tempfile.mkdtemp(prefix="codemill-device-"))
    path = model_dir(args.model, scratch, seed=0)
    shape = f"{args.batch} x {args.length} tokens"

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # 1. SFT: fp32 full weights (these weights go on to GRPO and the engine), bf16, LoRA.
    full = TrainConfig(lr=3e-4, micro_batch=args.batch, device=device)
    policy = load_policy(path, full)
    seqs = code_sequences(policy.tokenizer, args.batch, args.length)
    for what, config in (
            ("full weights, fp32", None),
            ("full weights, bf16 autocast", full.model_copy(update={"precision": "bf16"})),
            ("LoRA r16 attention+MLP, bf16 autocast", full.model_copy(update={
                "precision": "bf16", "lora": True, "lora_targets": LORA_ATTENTION_AND_MLP}))):
        pol = policy if config is None else load_policy(path, config)
        result = timed_sft(pol, seqs, args.steps, warmup=2)
        log(f"SFT {what}: {result['tokens_per_s']:.0f} tokens/s")
        figs.append(figure(f"SFT step, {what}: {shape}", result.pop("tokens_per_s"),
                           "tokens/s", **result, **where))
        del pol
    # 2. GRPO on the fp32 policy: the trainer's own log-probs stand for the sampler's.
    grpo = replace(policy, config=full.model_copy(update={"updates": 2}))
    rollouts = [replace(s, advantage=1.0 if i % 2 else -1.0, old_logprobs=s.prox_logprobs,
                        prox_logprobs=None) for i, s in enumerate(with_prox(grpo, seqs))]
    grpo_step(grpo, rollouts)  # warm-up
    sync(device)
    started = time.perf_counter()
    stats = grpo_step(grpo, rollouts)
    sync(device)
    seconds = time.perf_counter() - started
    log(f"GRPO round: {seconds:.2f} s")
    figs.append(figure(f"GRPO round, {shape}, 2 updates, fp32", round(seconds, 3), "s",
                       tokens_per_s=round(stats["tokens"] / seconds),
                       clip_frac=round(stats["clip_frac"], 4), **where))
    # 3. The engine on the trained weights.
    model = policy.model.eval()
    prompts = [list(s.ids[:min(512, args.length)]) for s in code_sequences(
        policy.tokenizer, 64, max(64, min(512, args.length)))]
    half = copy.deepcopy(model).to(torch.bfloat16)
    for label, weights, counts in (("fp32", model, [int(r) for r in args.rows.split(",")]),
                                   ("bf16", half, [int(args.rows.split(",")[-1])])):
        engine = BatchedEngine(weights, device=device, max_batch=max(counts))
        try:
            engine_run(engine, prompts[:1], 2)  # warm-up
            for n in counts:
                sync(device)
                started = time.perf_counter()
                engine_run(engine, prompts[:n], args.new)
                sync(device)
                seconds = time.perf_counter() - started
                rate = n * args.new / seconds
                log(f"engine {label} {n} rows: {rate:.0f} tokens/s")
                figs.append(figure(f"engine {label}: {n} rows x {args.new} tokens after "
                                   f"{len(prompts[0])}-token prompts", rate, "tokens/s",
                                   **where))
        finally:
            engine.close()
    # Token-exactness on the device: 8 rows together, then each alone.
    engine = BatchedEngine(model, device=device, max_batch=8)
    try:
        together = engine_run(engine, prompts[:8], args.new)
        alone = []
        for i, p in enumerate(prompts[:8]):  # row i's own seed, as engine_run gives it
            turn = engine.generate(p, None, SamplingConfig(temperature=1.0,
                                                           max_tokens=args.new, seed=i), set())
            alone.append((turn.ids, turn.logprobs))
    finally:
        engine.close()
    worst = max(max(abs(a - b) for a, b in zip(
        trainer_logprobs(model, p, ids, device), logps, strict=True))
        for p, (ids, logps) in zip(prompts, together, strict=False))
    same = sum(a[0] == b[0] for a, b in zip(together, alone, strict=True))
    batch_gap = max(max((abs(x - y) for x, y in zip(a[1], b[1], strict=False)), default=0.0)
                    for a, b in zip(together, alone, strict=True))
    log(f"log-prob gap to the trainer {worst:.2e}; same tokens alone {same}/8")
    figs.append(figure("engine fp32 log-probs against the trainer's forward, 8 rows",
                       f"{worst:.2e}", "max |gap|", same_tokens_alone=f"{same} of 8",
                       max_gap_alone_vs_batch=f"{batch_gap:.2e}", **where))
    shutil.rmtree(scratch, ignore_errors=True)
    out = write_result("train-device", "Training and sampling on an accelerator", figs,
                       measures=("SmolLM2-135M's architecture (seeded random weights, first "
                                 "trained by the SFT phase on this repository's code) on one "
                                 "device: SFT and GRPO steps through codemill.train, the "
                                 "batched engine's tokens/s and its log-probs against the "
                                 "trainer's"), out_dir=args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
