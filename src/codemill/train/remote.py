"""SFT on another machine: a GPU box that has torch, transformers, peft and pydantic but
no ledger, no sandboxes and no network.

    codemill train sft ... --prepare DIR                    # here: data made, graded, named
    python -m codemill.train.remote DIR --model MODEL_DIR   # there (``PYTHONPATH=src``)
    cp -r DIR/<checkpoint id> <home>/checkpoints/           # back here
    codemill train sft ...                                  # the same job: records it

``--prepare`` (``codemill.factory.training.prepare_sft``) resolves the job exactly as a
run here would: the same sequences in the same order and the same checkpoint id, which
hashes the base, the config and the trajectories' ids. This module reads them and runs the
same loop (``codemill.train.sft.train_steps``) and the same writer (``save_checkpoint``),
so the directory it leaves is what this machine would have written; the job run here
again finds it finished and records its row, lineage and per-step metrics like any other.
A killed remote run resumes from its newest state (``save_every``), as one here does.

``DIR`` holds ``plan.json`` (the checkpoint id, the resolved ``TrainConfig``, the
manifest) and ``sequences.jsonl`` (token ids and loss mask of each sequence, in training
order). ``MODEL_DIR`` is the base as a transformers directory (for ``smollm2``,
``<home>/cache/models/smollm2-135m-instruct``, which ``--prepare`` prints). Only SFT
travels: a GRPO round samples and grades in sandboxes, which stay where the environments
are.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codemill.train.config import TrainConfig
from codemill.train.data import TrainSeq

PLAN = "plan.json"
SEQUENCES = "sequences.jsonl"
FORMAT = 1


def write_prepared(out: Path, ckpt_id: str, cfg: TrainConfig, manifest: dict[str, Any],
                   seqs: Sequence[TrainSeq]) -> None:
    """Write a prepared job into ``out`` (created; an earlier one there is replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / SEQUENCES).open("w") as f:
        for s in seqs:
            f.write(json.dumps({"rollout_id": s.rollout_id, "ids": list(s.ids),
                                "mask": list(s.mask)}) + "\n")
    (out / PLAN).write_text(json.dumps({
        "format": FORMAT, "checkpoint_id": ckpt_id, "config": cfg.model_dump(mode="json"),
        "manifest": manifest, "sequences": len(seqs)}, indent=1, sort_keys=True))


def read_prepared(prepared: Path) -> tuple[str, TrainConfig, dict[str, Any], list[TrainSeq]]:
    """``(checkpoint id, config, manifest, sequences)`` of a prepared job; ``ValueError``
    names what is wrong with it."""
    try:
        plan = json.loads((prepared / PLAN).read_text())
        if plan.get("format") != FORMAT:
            raise ValueError(f"{prepared}: prepared in format {plan.get('format')}, this "
                             f"trainer reads {FORMAT}")
        rows = [json.loads(line) for line in (prepared / SEQUENCES).read_text().splitlines()]
        seqs = [TrainSeq(ids=tuple(d["ids"]), mask=tuple(d["mask"]),
                         old_logprobs=(0.0,) * len(d["ids"]), rollout_id=d["rollout_id"])
                for d in rows]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{prepared}: not a prepared SFT job ({exc!r})") from exc
    if len(seqs) != plan["sequences"]:
        raise ValueError(f"{prepared}: {len(seqs)} sequences, the plan says "
                         f"{plan['sequences']} (a partial copy?)")
    return (plan["checkpoint_id"], TrainConfig.model_validate(plan["config"]),
            plan["manifest"], seqs)


def train_prepared(prepared: Path, model_dir: Path, *, out: Path | None = None,
                   on_step: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train the prepared job from the base in ``model_dir``; the checkpoint directory
    is ``out`` (default ``prepared/<checkpoint id>``), returned."""
    from codemill.train.policy import (
        MANIFEST,
        load_policy,
        resume,
        save_checkpoint,
        state_saver,
    )
    from codemill.train.sft import train_steps

    ckpt_id, cfg, manifest, seqs = read_prepared(prepared)
    run_dir = out or prepared / ckpt_id
    if (run_dir / MANIFEST).is_file():
        return run_dir
    policy = load_policy(model_dir, cfg)
    resume(policy, run_dir)
    train_steps(policy, seqs, save=state_saver(cfg, run_dir), on_step=on_step)
    save_checkpoint(policy, run_dir, {**manifest, "step": policy.step})
    return run_dir


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codemill.train.remote",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("prepared", type=Path, help="what `codemill train sft --prepare` wrote")
    ap.add_argument("--model", type=Path, required=True,
                    help="the base model as a transformers directory")
    ap.add_argument("--out", type=Path, help="checkpoint directory (default: "
                    "PREPARED/<checkpoint id>)")
    args = ap.parse_args(argv)
    try:
        run_dir = train_prepared(args.prepared, args.model, out=args.out, on_step=lambda m: print(
            json.dumps({k: m[k] for k in ("step", "loss", "tokens_per_s") if k in m}),
            flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
