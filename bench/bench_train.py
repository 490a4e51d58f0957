"""Training on the embedded SmolLM2-135M, split by project: base vs SFT vs GRPO.

Runbook::

    nice -n 10 .venv/bin/python bench/bench_train.py > bench/out/train.log 2>&1 &
    .venv/bin/python bench/bench_train.py --report        # print what is measured so far

Stages, each resumable (results appended as JSON lines to ``bench/out/train.jsonl``; a
stage already there is skipped; rollouts and training states already recorded in the
home ``bench/out/train_home`` are reused, so a killed run continues where it stopped):

1. ``speed``: train tokens/s of ``codemill.train`` (SFT step on a real expert-length
   sequence) next to a plain PyTorch forward+backward+AdamW loop on the same model and
   length (the ceiling here), and sampling tokens/s of the token-exact sampler next to
   plain ``generate`` on the same prompt. ``speed:precision``: the demo's LoRA step in
   fp32 and bf16 autocast on 1 and 2 threads, and one sampler against two side by side.
2. ``tasks``: environments and validated synthetic tasks for the TRAIN and EVAL projects
   through the CLI (``codemill env build``, ``codemill tasks synth``). No project is in
   both lists.
3. ``eval:base``: the base model on 40 EVAL tasks (10 per project, a seeded sample;
   greedy, one attempt each), through the factory's evals (suite ``held-out@train-40``;
   ``bench_evals.py`` can add variants to the same attempts).
4. ``sft``: ``codemill train sft`` on expert trajectories of the TRAIN tasks.
5. ``eval:sft`` and 6. ``grpo`` (from the SFT checkpoint, on TRAIN tasks) side by side,
   one thread each (two 1-thread jobs sample ~1.4x the tokens of one 2-thread job here);
7. ``eval:grpo``; 8. ``speed:grpo``: the seconds of one GRPO update on a recorded round's
   rollouts (the runs themselves made none: every group was dead), fp32 and bf16.

``--stage NAME`` runs one stage alone (its inputs must be recorded). Resolved rates carry
95% Wilson intervals. The GRPO reward curve is saved as ``bench/out/train_reward_curve.png``
(matplotlib). On 2 CPU cores this is about two and a half hours of compute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stages import cli, done_stages, log, run_stage, split_by_project  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TRAIN = ("cachetools==5.3.1", "more-itertools==10.1.0")
"""Trained on; the demo's project (toolz) is in neither list, so it is held out too."""
EVAL = ("iniconfig==1.1.1", "python-slugify==5.0.2", "semver==2.13.0", "itsdangerous==2.1.2")
TASKS_PER_PROJECT = {"train": 12, "eval": 12}
AGENT = {"max_turns": 6, "max_new_tokens": 256, "observation_limit": 1200}
"""Per-turn budget: 256, not 128: 68 of the 316 turns of the expert trajectories (21%, the
edits) are longer than 128 tokens, so a 128 budget cuts every edit of that size short
(the first recipe ran with 128; its rows are kept as ``r1:*`` in the results)."""
SFT_STEPS = 100
"""~3.3 passes over the 60 expert trajectories (40 steps, the first recipe, left the
model mixing the view and edit arguments)."""


# --- stage 1: speed ---------------------------------------------------------------------


def speed(home: Path) -> dict:
    import torch

    from codemill.agent.models.sampler import TokenConversation, encode, render, sample
    from codemill.agent.models.smollm2 import convert_smollm2
    from codemill.core.records import SamplingConfig
    from codemill.train.config import TrainConfig
    from codemill.train.data import TrainSeq
    from codemill.train.policy import load_policy
    from codemill.train.steps import sft_step

    path = convert_smollm2(home)
    policy = load_policy(path, TrainConfig(lr=1e-5, threads=2))
    n, model_share = 512, 0.3  # an expert-length sequence; ~30% of it model tokens
    ids = tuple(int(x) for x in torch.randint(100, 40000, (n,), generator=torch.Generator()
                                              .manual_seed(0)))
    mask = tuple(1 if i > n * (1 - model_share) else 0 for i in range(n))
    seq = TrainSeq(ids, mask, (0.0,) * n)
    sft_step(policy, [seq])  # warm up
    ours = [sft_step(policy, [seq])["seconds"] for _ in range(3)]
    model, opt = policy.model, policy.optimizer
    x = torch.tensor([ids])

    def plain() -> float:
        t = time.monotonic()
        opt.zero_grad()
        out = model(input_ids=x, labels=x)
        out.loss.backward()
        opt.step()
        return time.monotonic() - t

    plain()
    ceiling = [plain() for _ in range(3)]
    model.eval()
    tok = policy.tokenizer
    prompt = encode(tok, render(tok, [{"role": "user", "content": "Write a Python function "
                                       "that parses an INI file. " * 20}], True))
    s = SamplingConfig(temperature=1.0, max_tokens=64, seed=0)
    conv = TokenConversation(ids=list(prompt))
    t = time.monotonic()
    got, _, _ = sample(model, conv, s, set(), "cpu")
    ours_s = time.monotonic() - t
    t = time.monotonic()
    with torch.inference_mode():
        gen = model.generate(torch.tensor([prompt]), max_new_tokens=64, min_new_tokens=64,
                             do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             pad_token_id=tok.eos_token_id)
    gen_s = time.monotonic() - t
    new = gen.shape[1] - len(prompt)
    return {"train_tokens": n, "train_tok_s": n / min(ours), "plain_tok_s": n / min(ceiling),
            "prompt_tokens": len(prompt), "sample_tok_s": len(got) / ours_s,
            "generate_tok_s": new / gen_s}


def lora_step_seconds(path: Path, precision: str, threads: int) -> float:
    """Best of 3 ``sft_step``s of the demo's LoRA recipe (r=16, attention and MLP of the
    last 8 layers) on two 1,800-token sequences, 30% of them model tokens."""
    import torch

    from codemill.train.config import LORA_ATTENTION_AND_MLP, TrainConfig
    from codemill.train.data import TrainSeq
    from codemill.train.policy import load_policy
    from codemill.train.steps import sft_step

    cfg = TrainConfig(lr=1e-3, lora=True, lora_layers=8, lora_targets=LORA_ATTENTION_AND_MLP,
                      micro_batch=1, threads=threads, precision=precision)
    policy = load_policy(path, cfg)
    n = 1800
    gen = torch.Generator().manual_seed(0)
    seqs = [TrainSeq(tuple(int(x) for x in torch.randint(100, 40000, (n,), generator=gen)),
                     tuple(1 if i > n * 0.7 else 0 for i in range(n)), (0.0,) * n)
            for _ in range(2)]
    sft_step(policy, seqs)  # warm up
    return min(sft_step(policy, seqs)["seconds"] for _ in range(3))


def sample_rate(path: Path, threads: int) -> float:
    """Tokens/s of the token-exact sampler: 64 tokens after a 751-token prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codemill.agent.models.sampler import TokenConversation, encode, render, sample
    from codemill.core.records import SamplingConfig

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    prompt = encode(tok, render(tok, [{"role": "user", "content": "Write a Python function "
                                       "that parses an INI file. " * 60}], True))
    s = SamplingConfig(temperature=1.0, max_tokens=64, seed=0)
    rates = []
    for _ in range(2):
        conv = TokenConversation(ids=list(prompt))
        t = time.monotonic()
        got, _, _ = sample(model, conv, s, set(), "cpu")
        rates.append(len(got) / (time.monotonic() - t))
    return max(rates)


def speed_precision(home: Path) -> dict:
    """Why the demo trains under bf16 autocast on every core and spreads rollouts over
    worker processes: a LoRA step in fp32 and bf16 on 1 and 2 threads, and sampling
    tokens/s of one sampler (1 or 2 threads) next to two 1-thread samplers side by side."""
    import concurrent.futures as cf
    import multiprocessing

    from codemill.agent.models.smollm2 import convert_smollm2

    path = convert_smollm2(home)
    out: dict = {"lora_step_s": {}}
    for threads in (1, 2):
        for precision in ("fp32", "bf16"):
            secs = lora_step_seconds(path, precision, threads)
            out["lora_step_s"][f"{precision}/{threads}t"] = round(secs, 2)
            log(f"speed:precision: LoRA step {precision} {threads} thread(s): {secs:.1f} s")
    ctx = multiprocessing.get_context("spawn")  # fresh processes: torch threads are global
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        one = pool.submit(sample_rate, path, 1).result()
        two_threads = pool.submit(sample_rate, path, 2).result()
        side = [f.result() for f in [pool.submit(sample_rate, path, 1) for _ in range(2)]]
    out.update(sample_tok_s_1t=round(one, 1), sample_tok_s_2t=round(two_threads, 1),
               sample_tok_s_two_1t_processes=round(sum(side), 1))
    return out


def speed_grpo(home: Path, sft_id: str, grpo_id: str) -> dict:
    """Seconds of one GRPO update, which the recorded runs never made (every group was
    dead): the 8 rollouts of the first recorded GRPO round, from the SFT checkpoint, given
    advantages of +-0.5 in turn, one ``grpo_step`` from that checkpoint in fp32 and in bf16
    on 2 threads, with the trainer/sampler log-prob gap each leaves (the sampler ran fp32)."""
    from codemill.agent.models.checkpoints import model_dir
    from codemill.core.config import Settings
    from codemill.factory.train_data import read_graded
    from codemill.train.config import TrainConfig
    from codemill.train.data import from_trace, keep
    from codemill.train.policy import load_policy
    from codemill.train.steps import grpo_step

    graded = [g for g in read_graded(Settings(home=home), policy_prefix=f"grpo:{grpo_id[:16]}@0")
              if g.trace is not None]
    seqs, _ = keep([from_trace(g.trace, advantage=0.5 if i % 2 else -0.5)
                    for i, g in enumerate(graded)], 4096)
    base, adapter = model_dir(f"ckpt:{sft_id}", home)
    out: dict = {"sequences": len(seqs), "tokens": sum(len(q.ids) for q in seqs)}
    for precision in ("fp32", "bf16"):
        policy = load_policy(base, TrainConfig(lr=5e-5, threads=2, precision=precision),
                             adapter_dir=adapter)
        m = grpo_step(policy, seqs)
        out[precision] = {k: round(m[k], 4) for k in ("seconds", "tokens_per_s",
                                                      "logp_gap_mean", "logp_gap_max")}
        log(f"speed:grpo: {precision}: {out[precision]}")
    return out


# --- stage 2: tasks ---------------------------------------------------------------------


def tasks(home: Path) -> dict:
    made = {}
    for split, projects in (("train", TRAIN), ("eval", EVAL)):
        for project in projects:
            log(f"tasks: {project}")
            try:
                env = cli(["env", "build", f"pypi:{project}", "--json"], home)
                env_id = env["env_id"]
                # A resumed stage tops up to the target instead of adding that many more.
                have = len(cli(["tasks", "ls", "--env", env_id, "--json"], home) or [])
                want = TASKS_PER_PROJECT[split] - have
                if want > 0:
                    cli(["tasks", "synth", env_id, "--max", str(want), "--json"], home)
                total = len(cli(["tasks", "ls", "--env", env_id, "--json"], home) or [])
                made[project] = {"split": split, "env_id": env_id, "env": env["status"],
                                 "tasks": total}
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                made[project] = {"split": split, "error": str(exc)[-300:]}
            log(f"tasks: {project}: {str(made[project])[:200]}")
    return made


def split_tasks(home: Path) -> tuple[list, list, dict]:
    """(train tasks, eval tasks, envs): by the project of each task's snapshot."""
    return split_by_project(home, TRAIN, EVAL)


# --- stages 3-7 -------------------------------------------------------------------------


SUITE = "held-out"
SUITE_VERSION = "train-40-256"
SUITE_SIZE = 40
"""The held-out suite: 40 tasks of the EVAL projects (stratified, seeded), one greedy
attempt each with the agent budgets above. ``bench_evals.py --home bench/out/train_home
--suite held-out --version train-40-256 --limit 40 --max-turns 6 --max-tokens 256 --wall-time
900 --project ...`` defines the same suite, so its variants reuse these attempts (and add
scripted and oracle ones). Attempts do not depend on the suite, only on the task,
the model and the sampling settings."""


def evaluate(home: Path, model: str) -> dict:
    """``model`` on the held-out suite through the factory's evals (a cached asset: a
    rerun reuses recorded attempts; a checkpoint goes through the contamination guard)."""
    os.environ["CODEMILL_HOME"] = str(home)
    from codemill.core.config import load_settings
    from codemill.evals.suites import SuiteRunConfig, SuiteSelection
    from codemill.factory import eval_api

    settings = load_settings()
    run = SuiteRunConfig(k=1, max_turns=AGENT["max_turns"], max_tokens=AGENT["max_new_tokens"],
                         temperature=0.0, seed=0, wall_time_s=900)
    names = tuple(p.split("==")[0] for p in EVAL)
    suite = eval_api.define_suite(settings, SUITE, SUITE_VERSION,
                                  SuiteSelection(projects=names, limit=SUITE_SIZE), run)
    res = eval_api.evaluate(settings, f"{SUITE}@{SUITE_VERSION}", model,
                            progress=lambda a, d, t: log(f"eval {model[:17]}: {d}/{t}"))
    p = res.score.pass1
    return {"model": model, "eval_id": res.eval_id, "suite": f"{SUITE}@{SUITE_VERSION}",
            "tasks": len(suite.tasks), "projects": sorted({t.project for t in suite.tasks}),
            "graded": res.score.graded, "resolved": p.successes, "rate": p.value,
            "low": p.low, "high": p.high, "masked": res.score.masked,
            "stops": res.score.stop_reasons,
            **time_shares(home, [s["rollout_id"] for s in res.samples])}


def time_shares(home: Path, rollout_ids: list[str]) -> dict:
    """Where the rollouts' wall time went: model calls, tool commands, the harness (the
    loop itself), from the ``steps`` and ``rollouts`` rows."""
    from codemill.core.config import Settings
    from codemill.store.ledger import Ledger

    ids = set(rollout_ids)
    with Ledger.open(Settings(home=home)) as ledger:
        steps = [r for r in ledger.read("steps", columns=[
            "rollout_id", "latency_s", "tool_seconds", "harness_seconds"]).to_pylist()
            if r["rollout_id"] in ids]
        walls = {r["rollout_id"]: r["wall_seconds"] for r in ledger.read(
            "rollouts", columns=["rollout_id", "wall_seconds"]).to_pylist()
            if r["rollout_id"] in ids}
    wall = sum(walls.values()) or 1.0
    model = sum(r["latency_s"] or 0 for r in steps)
    tools = sum(r["tool_seconds"] or 0 for r in steps)
    harness = sum(r["harness_seconds"] or 0 for r in steps)
    return {"wall_s": wall, "model_share": model / wall, "tools_share": tools / wall,
            "harness_share": harness / wall}


def train_sft(home: Path, threads: int) -> dict:
    train, _, _ = split_tasks(home)
    # LoRA (attention and MLP, last 8 layers) at a LoRA learning rate: the demo's recipe,
    # longer. A full fine-tune is ~3x the step time on CPU and saves 1.6 GB states.
    args = ["train", "sft", "--model", "smollm2", "--data", "expert", "--per-task", "2",
            "--steps", str(SFT_STEPS), "--batch", "2", "--lr", "1e-3", "--lora", "--lora-mlp",
            "--lora-layers", "8", "--max-len", "3072", "--save-every", "5",
            "--threads", str(threads),
            "--json"]
    for t in train:
        args += ["--task", t.task_id]
    return cli(args, home, timeout=6 * 3600)


def train_grpo(home: Path, sft_id: str, threads: int) -> dict:
    train, _, _ = split_tasks(home)
    args = ["train", "grpo", "--model", f"ckpt:{sft_id}", "--rounds", "4",
            "--tasks-per-round", "2", "--group", "4", "--lr", "5e-5",
            "--max-tokens", str(AGENT["max_new_tokens"]), "--max-turns", str(AGENT["max_turns"]),
            "--max-len", "4096", "--threads", str(threads),
            "--json"]
    for t in train:
        args += ["--task", t.task_id]
    return cli(args, home, timeout=8 * 3600)


def curve(metrics: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [m["step"] for m in metrics if m.get("reward_mean") is not None]
    ys = [m["reward_mean"] for m in metrics if m.get("reward_mean") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, ys, marker="o")
    for m in metrics:  # a round whose groups are all dead makes no update: say so
        if m.get("reward_mean") is not None and m.get("groups"):
            ax.annotate(f"dead {m.get('dead_groups', 0)}/{m['groups']}",
                        (m["step"], m["reward_mean"]), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xlabel("GRPO round")
    ax.set_ylabel("mean reward (train tasks)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("SmolLM2-135M GRPO on CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=OUT / "train_home")
    ap.add_argument("--results", type=Path, default=OUT / "train.jsonl")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--until", help="Stop after this stage (e.g. tasks).")
    ap.add_argument("--stage", help="Run this one stage (its inputs must be recorded).")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for evals.")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    args.home.mkdir(parents=True, exist_ok=True)
    have = done_stages(args.results)
    if args.report:
        for name, row in have.items():
            print(name, json.dumps(row)[:600])
        return
    import torch

    torch.set_num_threads(args.threads)
    ckpt = {"sft": lambda: have["sft"]["checkpoint_id"],
            "grpo": lambda: have["grpo"]["checkpoint_id"]}
    stages = {
        "speed": lambda: speed(args.home),
        "speed:precision": lambda: speed_precision(args.home),
        "tasks": lambda: tasks(args.home),
        "eval:base": lambda: evaluate(args.home, "smollm2"),
        "sft": lambda: train_sft(args.home, args.threads),
        "eval:sft": lambda: evaluate(args.home, f"ckpt:{ckpt['sft']()}"),
        "grpo": lambda: train_grpo(args.home, ckpt["sft"](), args.threads),
        "eval:grpo": lambda: evaluate(args.home, f"ckpt:{ckpt['grpo']()}"),
        "speed:grpo": lambda: speed_grpo(args.home, ckpt["sft"](), ckpt["grpo"]()),
    }
    if args.stage:
        run_stage(args.results, have, args.stage, stages[args.stage])
        return
    for name in ("speed", "speed:precision", "tasks"):
        if name not in have:
            run_stage(args.results, have, name, stages[name])
        if name == args.until:
            return
    # Two 1-thread jobs side by side: (base eval, SFT), then (SFT eval, GRPO).
    pairs = (("eval:base", "sft", lambda: train_sft(args.home, 1)),
             ("eval:sft", "grpo", lambda: train_grpo(args.home, ckpt["sft"](), 1)))
    for side_name, main_name, main_fn in pairs:
        side = None
        if side_name not in have:
            side = subprocess.Popen([sys.executable, __file__, "--home", str(args.home),
                                     "--results", str(args.results), "--stage", side_name,
                                     "--threads", "1" if main_name not in have else "2"])
        if main_name not in have:
            run_stage(args.results, have, main_name, main_fn)
        if side is not None and side.wait() != 0:
            raise SystemExit(f"the {side_name} stage failed (see the log above)")
        have = done_stages(args.results)
        if main_name == args.until:
            return
    curve(have["grpo"]["metrics"], OUT / "train_reward_curve.png")
    for name in ("eval:grpo", "speed:grpo"):
        if name not in have:
            run_stage(args.results, have, name, stages[name])


if __name__ == "__main__":
    main()
