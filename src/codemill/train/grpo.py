"""GRPO's data side: which tasks to roll out, and a round's graded rollouts -> sequences.

A round samples G rollouts per task with the current weights (the factory runs them through
``codemill.rollouts`` with the same agent users run, and grades them), then:

1. leaves out rollouts that cannot teach: masked rewards (infrastructure errors are not
   failures), rollouts without a token trace, and cut-off ones (``DROP_STOPS``: a run
   stopped by its token or time budget never finished, so its reward says little);
2. per group, advantage ``A_i = r_i - b_i`` with ``b`` the group mean (or the mean of the
   *other* samples, leave-one-out); no std scaling unless asked (Dr. GRPO);
3. drops groups whose rewards are all equal (zero variance: no signal) and counts them;
4. gives every kept rollout's model tokens its advantage (``TrainSeq``).

``choose_tasks`` prefers tasks the policy solves sometimes, not always or never: a group
of G on a task with pass rate p is dead with probability p^G + (1-p)^G.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codemill.core.records import TokenTrace
from codemill.train.config import TrainConfig
from codemill.train.data import TrainSeq, from_trace, keep

DROP_STOPS = frozenset({"max_tokens", "wall_time", "model_error", "sandbox_error"})
"""Stop reasons whose trajectories are left out of a GRPO update."""


@dataclass(frozen=True)
class Sample:
    """One graded rollout of a round, as the trainer needs it."""

    rollout_id: str
    task_id: str
    group_id: str
    trace: TokenTrace | None
    reward: float | None
    """None when masked (an infrastructure error)."""
    stop_reason: str = "submitted"


@dataclass(frozen=True)
class RoundData:
    """What a round's samples give the update, and what was left out and why."""

    seqs: list[TrainSeq]
    groups: int
    dead_groups: int
    left_out: dict[str, int]
    reward_mean: float | None
    resolved_rate: float | None


def advantages(values: Sequence[float], baseline: str = "mean",
               scale_std: bool = False) -> list[float]:
    """Group-relative advantages of one group's rewards (see the module docstring)."""
    n = len(values)
    mean = sum(values) / n
    if baseline == "loo" and n > 1:
        adv = [v - (sum(values) - v) / (n - 1) for v in values]
    else:
        adv = [v - mean for v in values]
    if scale_std:
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        adv = [a / (std + 1e-6) for a in adv]
    return adv


def round_data(samples: Sequence[Sample], config: TrainConfig) -> RoundData:
    """Sequences with advantages from one round's samples (module docstring, 1-4)."""
    left: dict[str, int] = defaultdict(int)
    groups: dict[str, list[Sample]] = defaultdict(list)
    scored = [s.reward for s in samples if s.reward is not None]
    for s in samples:
        if s.reward is None:
            left["masked"] += 1
        elif s.trace is None:
            left["no_tokens"] += 1
        elif s.stop_reason in DROP_STOPS:
            left["truncated"] += 1
        else:
            groups[s.group_id].append(s)
    seqs: list[TrainSeq] = []
    dead = 0
    for members in groups.values():
        values = [float(m.reward) for m in members if m.reward is not None]
        if len(values) < 2 or max(values) - min(values) < 1e-9:
            dead += 1
            continue
        for m, adv in zip(members, advantages(values, config.baseline, config.scale_std),
                          strict=True):
            assert m.trace is not None
            seqs.append(from_trace(m.trace, advantage=adv, rollout_id=m.rollout_id))
    kept, too_long = keep(seqs, config.max_len)
    if too_long:
        left["too_long_or_empty"] += too_long
    return RoundData(
        seqs=kept, groups=len(groups), dead_groups=dead, left_out=dict(left),
        reward_mean=sum(scored) / len(scored) if scored else None,
        resolved_rate=(sum(1 for r in scored if r >= 1.0) / len(scored)) if scored else None)


def choose_tasks(task_ids: Sequence[str], history: Mapping[str, tuple[int, int]], k: int,
                 config: TrainConfig, rng: random.Random) -> list[str]:
    """``k`` tasks for a round: those whose pass rate (passes, tries) so far is strictly
    inside (``pass_rate_low``, ``pass_rate_high``), or untried, first (shuffled); then the
    rest, so a round is never empty while tasks exist."""
    def useful(task: str) -> bool:
        passes, tries = history.get(task, (0, 0))
        if tries == 0:
            return True
        rate = passes / tries
        return config.pass_rate_low < rate < config.pass_rate_high

    good = [t for t in task_ids if useful(t)]
    rest = [t for t in task_ids if not useful(t)]
    rng.shuffle(good)
    rng.shuffle(rest)
    return (good + rest)[:k]
