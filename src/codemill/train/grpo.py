"""GRPO, read top to bottom: which tasks a round samples, how its groups become sequences,
and the loop of rounds. The sampler is handed in as a function (``SampleFn``); the factory
hands in one that rolls the current weights out through ``codemill.rollouts`` (the same
agent users run), records and grades them; a test can hand in any other.

A round (``collect_round``, then ``grpo_step``):

1. orders the task pool (``choose_tasks``): tasks whose recorded pass rate p is strictly
   inside (``pass_rate_low``, ``pass_rate_high``) first, then untried ones; a group of G on
   a task at rate p is dead (all rewards equal) with probability p^G + (1-p)^G, so a task
   known to be in range is a far better draw than an untried one when most tasks are at 0
   (``task_order="untried_first"`` puts untried tasks first, for breadth);
2. draws ``batch_size`` groups from that order and asks the sampler for them;
3. leaves out rollouts that cannot teach, each counted by reason: masked rewards
   (infrastructure errors are not failures), ungraded ones (no reward row), rollouts
   without a token trace, cut-off ones (``DROP_STOPS``), and attempts whose worker failed
   (the sampler counts those: they have no sample at all);
4. per group, advantage ``A_i = r_i - b_i`` with ``b`` the group mean (or the mean of the
   *other* samples, leave-one-out); no std scaling unless asked (Dr. GRPO); with
   ``format_reward`` set, an unusable answer (stop reason ``format_error``) counts as that
   value instead of its recorded 0 (the recorded reward is not changed);
5. drops groups whose values are all equal (no signal) and, DAPO's dynamic sampling,
   draws further groups from the pool in their place until ``batch_size`` groups carry a
   signal or ``max_draws * batch_size`` groups were drawn; the round records how many
   groups it drew and dropped;
6. makes ``updates`` optimizer steps on the kept sequences (``codemill.train.steps``);
   a round with no live group makes none, and says so.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codemill.core.memory import release_freed_memory, resident_bytes
from codemill.core.records import StopReason, TokenTrace
from codemill.train.config import TrainConfig
from codemill.train.data import TrainSeq, from_trace, keep

ROUNDS_VERSION = "2"
"""Bump when a run's rounds would draw other tasks or groups for the same inputs (part of
GRPO checkpoint ids). 2: tasks known to be in range before untried ones."""
FORMAT_ERROR = StopReason.FORMAT_ERROR.value
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
    """None when unscored: masked (an infrastructure error) or ungraded (no reward row)."""
    stop_reason: str = "submitted"
    status: str = "scored"
    """``scored``, ``masked`` or ``ungraded``: why ``reward`` is None, when it is."""


@dataclass(frozen=True)
class Drawn:
    """What a sampler returns for one draw of tasks."""

    samples: list[Sample]
    failed: int = 0
    """Planned attempts that left no sample (their worker failed): counted, never dropped
    silently."""
    timing: dict[str, float] = field(default_factory=dict)
    """Seconds by where they went (summed over a round's draws into its metrics)."""


SampleFn = Callable[[Sequence[str], str], Drawn]
"""``sample(task_ids, draw)`` -> G graded samples of each task from the current weights.
``draw`` names the round and draw (unique within a run) and should enter the rollouts'
ids, so a resumed run reads back the samples a killed one recorded."""


@dataclass(frozen=True)
class RoundData:
    """What a round's samples give the update, and what was left out and why."""

    seqs: list[TrainSeq]
    groups: int
    dead_groups: int
    left_out: dict[str, int]
    reward_mean: float | None
    resolved_rate: float | None
    drawn: int = 0
    """Groups asked of the sampler this round (dynamic sampling may draw more than
    ``batch_size``)."""
    dropped: int = 0
    """Drawn groups that gave no signal (all rewards equal, or no scored member)."""
    attempts: int = 0
    """Rollouts planned: drawn groups times G; every one is scored or counted in
    ``left_out``."""
    task_results: dict[str, list[int]] = field(default_factory=dict)
    """Per task: [passes, scored tries] this round."""
    format_errors: int = 0
    """Scored samples whose answer could not be used (stop reason ``format_error``)."""


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


def shaped(sample: Sample, config: TrainConfig) -> float:
    """A scored sample's value in its group's advantages: its reward, or
    ``config.format_reward`` when that is set and the answer could not be used."""
    assert sample.reward is not None
    if config.format_reward is not None and sample.stop_reason == FORMAT_ERROR:
        return config.format_reward
    return float(sample.reward)


def round_data(samples: Sequence[Sample], config: TrainConfig) -> RoundData:
    """Sequences with advantages from one round's samples (module docstring, 1-4). A group
    is dead when its members' values (``shaped``) are all equal."""
    left: dict[str, int] = defaultdict(int)
    groups: dict[str, list[Sample]] = defaultdict(list)
    scored = [s.reward for s in samples if s.reward is not None]
    for s in samples:
        if s.reward is None:
            left["ungraded" if s.status == "ungraded" else "masked"] += 1
        elif s.trace is None:
            left["no_tokens"] += 1
        elif s.stop_reason in DROP_STOPS:
            left["truncated"] += 1
        else:
            groups[s.group_id].append(s)
    seqs: list[TrainSeq] = []
    dead = 0
    for members in groups.values():
        values = [shaped(m, config) for m in members]
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
        resolved_rate=(sum(1 for r in scored if r >= 1.0) / len(scored)) if scored else None,
        format_errors=sum(1 for s in samples
                          if s.reward is not None and s.stop_reason == FORMAT_ERROR))


def choose_tasks(task_ids: Sequence[str], history: Mapping[str, tuple[int, int]], k: int,
                 config: TrainConfig, rng: random.Random) -> list[str]:
    """``k`` tasks for a round: those whose recorded pass rate (passes, tries) is strictly
    inside (``pass_rate_low``, ``pass_rate_high``) first, then untried ones, then the rest
    (each part shuffled), so a round is never empty while tasks exist. Tasks in range come
    before untried ones: with a pool of mostly unsolved tasks, an untried task's group is
    almost always dead, and shuffled together the few known live tasks were rarely drawn
    again. ``config.task_order="untried_first"`` swaps the first two parts: a run that
    always finds its live groups on the same few tasks learns those tasks, not repair."""
    def tries(task: str) -> int:
        return history.get(task, (0, 0))[1]

    def in_range(task: str) -> bool:
        passes, n = history.get(task, (0, 0))
        return n > 0 and config.pass_rate_low < passes / n < config.pass_rate_high

    live = [t for t in task_ids if in_range(t)]
    untried = [t for t in task_ids if tries(t) == 0]
    rest = [t for t in task_ids if tries(t) and not in_range(t)]
    for part in (live, untried, rest):
        rng.shuffle(part)
    if config.task_order == "untried_first":
        return (untried + live + rest)[:k]
    return (live + untried + rest)[:k]


def pass_history(prior: Mapping[str, tuple[int, int]],
                 metrics: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """(passes, tries) per task: ``prior`` (e.g. the starting policy's recorded samples)
    plus every earlier round's ``task_results``."""
    history = dict(prior)
    for m in metrics:
        for task, (p, n) in m.get("task_results", {}).items():
            old = history.get(task, (0, 0))
            history[task] = (old[0] + p, old[1] + n)
    return history


def collect_round(task_ids: Sequence[str], history: Mapping[str, tuple[int, int]],
                  sample: SampleFn, config: TrainConfig,
                  round_index: int) -> tuple[RoundData, dict[str, float]]:
    """One round's sequences by dynamic sampling (module docstring, 1-5), and the
    sampler's timing summed over its draws. The pool is walked in ``choose_tasks`` order
    and starts over when exhausted (a task may be drawn again, as a new group); a draw
    holds each task at most once."""
    order = choose_tasks(task_ids, history, len(task_ids), config,
                         random.Random(f"{config.seed}-{round_index}"))
    limit = config.max_draws * config.batch_size
    seqs: list[TrainSeq] = []
    left: dict[str, int] = defaultdict(int)
    results: dict[str, list[int]] = {}
    timing: dict[str, float] = defaultdict(float)
    scored: list[float] = []
    groups = dead = drawn = live = cursor = draw = format_errors = 0
    while order and live < config.batch_size and drawn < limit:
        n = min(config.batch_size - live, limit - drawn, len(order))
        tasks = [order[(cursor + i) % len(order)] for i in range(n)]
        cursor += n
        got = sample(tasks, f"{round_index}.{draw}")
        draw += 1
        drawn += n
        data = round_data(got.samples, config)
        seqs += data.seqs
        groups += data.groups
        dead += data.dead_groups
        live += data.groups - data.dead_groups
        format_errors += data.format_errors
        for reason, count in data.left_out.items():
            left[reason] += count
        if got.failed:
            left["failed"] += got.failed
        for key, value in got.timing.items():
            timing[key] += value
        for s in got.samples:
            if s.reward is not None:
                scored.append(s.reward)
                p, t = results.get(s.task_id, [0, 0])
                results[s.task_id] = [p + int(s.reward >= 1), t + 1]
    return RoundData(
        seqs=seqs, groups=groups, dead_groups=dead, left_out=dict(left),
        reward_mean=sum(scored) / len(scored) if scored else None,
        resolved_rate=(sum(1 for r in scored if r >= 1) / len(scored)) if scored else None,
        drawn=drawn, dropped=drawn - live, attempts=drawn * config.group_size,
        task_results=results, format_errors=format_errors), dict(timing)


def resident_gb() -> dict[str, float]:
    """The process's resident set now (``resident_gb``) and its peak so far
    (``peak_resident_gb``); empty where the system does not say. Logged each round:
    sampling, grading and the update share one process, and a run that keeps a little of
    each round's memory is killed rounds later."""
    now, peak = resident_bytes()
    if not now:
        return {}
    return {"resident_gb": round(now / 2**30, 2), "peak_resident_gb": round(peak / 2**30, 2)}


def train_rounds(policy: Any, task_ids: Sequence[str], sample: SampleFn, *,
                 prior: Mapping[str, tuple[int, int]] | None = None,
                 save: Callable[[Any], None] | None = None,
                 on_round: Callable[[dict[str, Any]], None] | None = None) -> None:
    """GRPO rounds on ``policy`` (a ``codemill.train.policy.Policy``) until
    ``policy.step`` reaches ``config.steps``; each round's metrics go to
    ``policy.metrics``, then ``save(policy)`` (which decides whether to write a state) and
    ``on_round``. A resumed policy goes on from its step."""
    from codemill.train.steps import grpo_step

    cfg: TrainConfig = policy.config
    while policy.step < cfg.steps:
        started = time.monotonic()
        history = pass_history(prior or {}, policy.metrics)
        data, timing = collect_round(task_ids, history, sample, cfg, policy.step)
        sampled_s = time.monotonic() - started
        if data.seqs:
            metrics = grpo_step(policy, data.seqs)
            # the update freed gigabytes of activations the allocator would keep through
            # the next round's sampling (codemill.core.memory)
            release_freed_memory()
        else:  # no group carried a signal: the round teaches nothing, and says so
            policy.step += 1
            metrics = {"step": policy.step, "loss": None, "updates": 0, "sequences": 0,
                       "tokens": 0, "seconds": 0.0, "tokens_per_s": 0.0}
        metrics.update(
            reward_mean=data.reward_mean, resolved_rate=data.resolved_rate,
            groups=data.groups, dead_groups=data.dead_groups, drawn_groups=data.drawn,
            dropped_groups=data.dropped, live_groups=data.drawn - data.dropped,
            attempts=data.attempts, scored=sum(n for _, n in data.task_results.values()),
            left_out=data.left_out, rollouts=data.attempts - data.left_out.get("failed", 0),
            task_results=data.task_results, format_errors=data.format_errors,
            rollout_seconds=sampled_s,
            round_seconds=time.monotonic() - started, **timing, **resident_gb())
        policy.metrics.append(metrics)
        if save is not None:
            save(policy)
        if on_round is not None:
            on_round(metrics)
