"""Planning rollout groups: which samples to run, each with a stable, content-derived id.

A GRPO group is ``group_size`` samples of one policy on one task. Sample ``i`` uses the
group's sampling settings with ``seed + i`` when a seed is set (the agent applies the same
rule from ``sample_index``), so samples differ yet each one is reproducible.

``rollout_id = content_id("rollout", task_id, policy, sampling, sample_index)``: the same
task, policy, sampling settings and index always give the same id. A patch-mode sample
(one turn, ``codemill.rollouts.patch_mode``) also hashes its mode, answer format and the
patch-mode version, so the two modes of one task never share an id; agent-mode ids are
unchanged. A rerun after a crash
passes the ids already recorded (``existing``) and plans only the missing samples; a
sample is never run twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from codemill.agent.config import AGENT_VERSION
from codemill.core.ids import content_id
from codemill.core.records import SamplingConfig, TaskSpec
from codemill.rollouts.patch_mode import PATCH_MODE_VERSION
from codemill.tasks.patch_context import CONTEXT_VERSION, LISTING_FUNCTIONS, listing_key


class RolloutConfig(BaseModel):
    """How many samples per task and how to sample them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_size: int = Field(4, ge=1)
    """G: samples per task (one GRPO group)."""
    sampling: SamplingConfig = SamplingConfig(temperature=1.0, seed=0)
    """Group sampling settings; sample ``i`` uses ``seed + i`` when ``seed`` is set."""
    grade: bool = True
    """Grade each rollout's final diff right after the run."""
    mode: Literal["agent", "patch"] = "agent"
    """``agent``: the multi-turn agent with tools in a workspace fork; ``patch``: one turn
    from the problem, the failing output and the code the failing tests reach, answered
    with an edit (``codemill.rollouts.patch_mode``)."""
    answer_format: Literal["lines", "search_replace"] = "lines"
    """Patch mode: the edit form the prompt asks for (both are read either way)."""
    listing_functions: int = Field(LISTING_FUNCTIONS, ge=1)
    """Patch mode: functions the listing shows at most, the most suspicious first
    (``PatchContextConfig.max_functions``); fewer is a shorter prompt that misses the bug
    more often (``bench/bench_localization.py`` measures how often)."""


def prompt_version(mode: str) -> str:
    """The version of what a rollout of ``mode`` is asked: the patch-mode prompt, answer
    reader and the context they show, or the agent's. Part of the cache keys of what is
    made from such rollouts (evals of patch suites, checkpoints), so a new prompt is new
    data though the job, suite and model are the same."""
    if mode == "patch":
        return f"patch-{PATCH_MODE_VERSION}.{CONTEXT_VERSION}"
    return f"agent-{AGENT_VERSION}"


def sample_sampling(base: SamplingConfig, index: int) -> SamplingConfig:
    """The sampling settings sample ``index`` of a group actually uses."""
    if base.seed is None:
        return base
    return base.model_copy(update={"seed": base.seed + index})


def _mode_key(mode: str, answer_format: str, listing_functions: int) -> tuple[str, ...]:
    if mode == "agent":
        return ()  # agent-mode ids predate the modes: keep them
    return (mode, answer_format, PATCH_MODE_VERSION, *listing_key(listing_functions))


def rollout_id(task_id: str, policy: str, sampling: SamplingConfig, sample_index: int,
               mode: str = "agent", answer_format: str = "lines",
               listing_functions: int = LISTING_FUNCTIONS) -> str:
    """The id of one sample: a hash of what defines it (``sampling`` is the group's)."""
    return content_id("rollout", task_id, policy, sampling, sample_index,
                      *_mode_key(mode, answer_format, listing_functions))


def group_id(task_id: str, policy: str, sampling: SamplingConfig, mode: str = "agent",
             answer_format: str = "lines", listing_functions: int = LISTING_FUNCTIONS) -> str:
    """The id of a GRPO group: the samples of one policy on one task with one setting."""
    return content_id("group", task_id, policy, sampling,
                      *_mode_key(mode, answer_format, listing_functions))


@dataclass(frozen=True)
class RolloutItem:
    """One planned sample: everything a worker needs besides the environment."""

    rollout_id: str
    task: TaskSpec
    policy: str
    sample_index: int
    sampling: SamplingConfig
    """The group's settings (the agent derives the per-sample seed from the index)."""
    mode: str = "agent"
    answer_format: str = "lines"
    listing_functions: int = LISTING_FUNCTIONS

    @property
    def group_id(self) -> str:
        return group_id(self.task.task_id, self.policy, self.sampling, self.mode,
                        self.answer_format, self.listing_functions)


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
            rid = rollout_id(task.task_id, policy, config.sampling, index, config.mode,
                             config.answer_format, config.listing_functions)
            if rid not in done:
                done.add(rid)  # a task listed twice still yields each sample once
                items.append(RolloutItem(rid, task, policy, index, config.sampling,
                                         config.mode, config.answer_format,
                                         config.listing_functions))
    return items
