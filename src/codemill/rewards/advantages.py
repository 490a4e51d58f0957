"""GRPO group advantages: each reward relative to its group (same task, same policy).

``A_i = (r_i - mean(r)) / std(r)`` over the *unmasked* rewards of a group, with the
population standard deviation. Rules that keep a bad row from poisoning the update:

- A masked reward (``value is None``: an infrastructure error) gets advantage ``None`` and
  is left out of its group's mean and std; it is neither a success nor a failure.
- A group whose unmasked rewards are all equal (std 0, including a group of one) carries no
  signal: every advantage in it is 0.0.

Non-goal: clipping, KL terms or length normalization; those belong to the trainer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from codemill.core.records import Reward

STD_EPS = 1e-6
"""Below this std a group counts as having no spread (float noise on equal rewards)."""


def normalize(values: Sequence[float | None]) -> list[float | None]:
    """Advantages of one group's values; None in, None out."""
    present = [v for v in values if v is not None]
    if not present:
        return [None] * len(values)
    mean = sum(present) / len(present)
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / len(present))
    if std < STD_EPS:
        return [None if v is None else 0.0 for v in values]
    return [None if v is None else (v - mean) / std for v in values]


def group_key(reward: Reward) -> tuple[str, str]:
    """Rollouts of the same task by the same policy form a GRPO group."""
    return (reward.task_id, reward.policy)


def group_advantages(rewards: Iterable[Reward]) -> dict[str, float | None]:
    """``rollout_id -> advantage`` for every reward, grouped by ``group_key``."""
    groups: dict[tuple[str, str], list[Reward]] = defaultdict(list)
    for reward in rewards:
        groups[group_key(reward)].append(reward)
    out: dict[str, float | None] = {}
    for members in groups.values():
        values = [None if r.masked else r.value for r in members]
        for reward, adv in zip(members, normalize(values), strict=True):
            out[reward.rollout_id] = adv
    return out
