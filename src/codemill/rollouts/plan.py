"""Planning rollout groups: which samples to run, each with a stable, content-derived id.

A GRPO group is ``group_size`` samples of one policy on one task. Sample ``i`` uses the
group's sampling settings with ``seed + i`` when a seed is set (the agent applies the same
rule from ``sample_index``), so samples differ yet each one is reproducible.

``rollout_id = content_id("rollout", task_id, policy, sampling, sample_index)``: the same
task, policy, sampling settings and index always give the same id. A rerun after a crash
passes the ids already recorded (``existing``) and plans only the missing samples; a
sample is never run twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from codemill.core.ids import content_id
from codemill.core.records import SamplingConfig, TaskSpec


class RolloutConfig(BaseModel):
    """How many samples per task and how to sample them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_size: int = Field(4, ge=1)
    """G: samples per task (one GRPO group)."""
    sampling: SamplingConfig = SamplingConfig(temperature=1.0, seed=0)
    """Group sampling settings; sample ``i`` uses ``seed + i`` when ``seed`` is set."""
    grade: bool = True
    """Grade each rollout's final diff right after the run."""


def sample_sampling(base: SamplingConfig, index: int) -> SamplingConfig:
    """The sampling settings sample ``index`` of a group actually uses."""
    if base.seed is None:
        return base
    return base.model_copy(update={"seed": base.seed + index})


def rollout_id(task_id: str, policy: str, sampling: SamplingConfig, sample_index: int) -> str:
    """The id of one sample: a hash of what defines it (``sampling`` is the group's)."""
    return content_id("rollout", task_id, policy, sampling, sample_index)


def group_id(task_id: str, policy: str, sampling: SamplingConfig) -> str:
    """The id of a GRPO group: the samples of one policy on one task with one setting."""
    return content_id("group", task_id, policy, sampling)


@dataclass(frozen=True)
class RolloutItem:
    """One planned sample: everything a worker needs besides the environment."""

    rollout_id: str
    task: TaskSpec
    policy: str
    sample_index: int
    sampling: SamplingConfig
    """The group's settings (the agent derives the per-sample seed from the index)."""

    @property
    def group_id(self) -> str:
        return group_id(self.task.task_id, self.policy, self.sampling)


def plan_rollouts(
    tasks: Iterable[TaskSpec],
    policy: str,
    config: RolloutConfig,
    existing: Collection[str] = (),
) -> list[RolloutItem]:
    """Every sample of every task's group whose id is not in ``existing``, in task order."""
    done = set(existing)
    items: list[RolloutItem] = []
    for task in tasks:
        for index in range(config.group_size):
            rid = rollout_id(task.task_id, policy, config.sampling, index)
            if rid not in done:
                done.add(rid)  # a task listed twice still yields each sample once
                items.append(RolloutItem(rid, task, policy, index, config.sampling))
    return items
