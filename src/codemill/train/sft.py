"""SFT, read top to bottom: resolved trajectories' model tokens, a seeded schedule of
batches, one ``sft_step`` per batch, a resumable state as it goes.

    schedule = sft_schedule(len(seqs), config)      # epochs of seeded shuffles, end to end
    while policy.step < config.steps:               # a resumed policy goes on from its step
        metrics = sft_step(policy, batch of this step)
        save(policy); on_step(metrics)

The data (which trajectories, from where) and the checkpoint's identity and rows are the
factory's (``codemill.factory.training``); this module only trains.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from codemill.train.config import TrainConfig
from codemill.train.data import TrainSeq


def sft_schedule(n: int, cfg: TrainConfig) -> list[list[int]]:
    """Indices of each step's sequences: epochs of seeded shuffles, laid end to end, so
    step ``s`` sees the same batch whether or not the run was resumed."""
    rng = random.Random(cfg.seed)
    order: list[int] = []
    while len(order) < cfg.steps * cfg.batch_size:
        epoch = list(range(n))
        rng.shuffle(epoch)
        order += epoch
    return [order[s * cfg.batch_size:(s + 1) * cfg.batch_size] for s in range(cfg.steps)]


def train_steps(policy: Any, seqs: Sequence[TrainSeq], *,
                save: Callable[[Any], None] | None = None,
                on_step: Callable[[dict[str, Any]], None] | None = None) -> None:
    """SFT steps on ``policy`` (a ``codemill.train.policy.Policy``) until ``policy.step``
    reaches ``config.steps``; each step's metrics go to ``policy.metrics``, then
    ``save(policy)`` (which decides whether to write a state) and ``on_step``."""
    from codemill.train.steps import sft_step

    cfg: TrainConfig = policy.config
    schedule = sft_schedule(len(seqs), cfg)
    while policy.step < cfg.steps:
        metrics = sft_step(policy, [seqs[i] for i in schedule[policy.step]])
        policy.metrics.append(metrics)
        if save is not None:
            save(policy)
        if on_step is not None:
            on_step(metrics)
