"""GRPO advantages: centred and scaled per group; masked rows excluded; flat groups zero."""

import math

import pytest

from codemill.core.records import Reward
from codemill.rewards.advantages import group_advantages, normalize


def reward(rid, task, value, policy="p"):
    return Reward(reward_id="w" + rid, rollout_id=rid, task_id=task, env_id="e", policy=policy,
                  value=value, resolved=None if value is None else value == 1.0,
                  masked=value is None, error_type="infra:sandbox" if value is None else None)


def test_normalize_centres_and_scales():
    adv = normalize([1.0, 0.0, 0.0, 1.0])
    assert adv == [1.0, -1.0, -1.0, 1.0]
    adv = normalize([1.0, 0.0, 0.0])
    assert sum(adv) == pytest.approx(0.0)
    assert math.sqrt(sum(a * a for a in adv) / 3) == pytest.approx(1.0)


def test_groups_masked_rows_and_flat_groups():
    rows = [
        reward("a1", "A", 1.0), reward("a2", "A", 0.0), reward("a3", "A", None),
        reward("b1", "B", 1.0), reward("b2", "B", 1.0),
        reward("c1", "C", None),
        reward("a9", "A", 1.0, policy="other"),
    ]
    adv = group_advantages(rows)
    assert adv["a1"] == pytest.approx(1.0) and adv["a2"] == pytest.approx(-1.0)
    assert adv["a3"] is None and adv["c1"] is None
    assert adv["b1"] == adv["b2"] == 0.0
    assert adv["a9"] == 0.0  # another policy is another group (of one)
