"""Grading recorded rollouts again from their rows: the one regrading rule.

A rollout's reward counts only when it was graded under today's ``HARNESS_VERSION``; a
recorded rollout without such a reward (graded under older rules, or never) is graded
from its ``rollouts`` and ``steps`` rows (the diff and the trajectory read back), never
resampled. ``regrade`` applies that rule; its callers (the ``rewards`` asset, evals,
training data) only decide which rows to read and where the rewards go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from codemill.core.records import Reward
from codemill.factory.executor_base import ItemError
from codemill.rewards.config import HARNESS_VERSION


def grade_one(item: tuple[Any, ...]) -> Any:
    """Grade one recorded rollout (a picklable executor item)."""
    from codemill.rollouts.runner import reward_for

    task, env, traj, home, settings = item
    return reward_for(task, env, traj, home=home, settings=settings)


def grading_items(rows: Mapping[str, dict[str, Any]], steps: Mapping[str, list[dict[str, Any]]],
                  tasks: Mapping[str, Any], envs: Mapping[str, Any], settings: Any
                  ) -> list[tuple[Any, ...]]:
    """``grade_one`` items for recorded rollouts (``rollout_id -> rollouts row``, their
    ``steps`` rows), the diff and trajectory read back from the rows; rollouts whose task or
    environment is not given are left out."""
    from codemill.store.rows import trajectory_from_rows

    return [(tasks[r["task_id"]], envs[r["env_id"]], trajectory_from_rows(r, steps.get(rid, [])),
             settings.home, settings) for rid, r in sorted(rows.items())
            if r["task_id"] in tasks and r.get("env_id") in envs]


def current_rewards(reward_rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """``rollout_id -> reward row`` of the ``reward_rows`` graded under today's harness
    version (rows of older rules are not rewards any more)."""
    return {r["rollout_id"]: r for r in reward_rows if r["harness_version"] == HARNESS_VERSION}


def current_ids(reward_rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """The rollout ids among ``reward_rows`` graded under today's harness version."""
    return set(current_rewards(reward_rows))


def regrade(rollouts: Iterable[Mapping[str, Any]], steps: Iterable[Mapping[str, Any]],
            reward_rows: Iterable[Mapping[str, Any]], tasks: Sequence[Any] | Mapping[str, Any],
            envs: Mapping[str, Any], settings: Any, *, executor: Any = None,
            warn: Callable[[str], None] | None = None,
            progress: Callable[[int, int], None] | None = None) -> Iterator[Reward]:
    """Grade the recorded ``rollouts`` rows that have no reward under the current harness
    version among ``reward_rows`` (rows with ``rollout_id`` and ``harness_version``), each
    from its ``steps`` rows; yield the new rewards as they are made.

    Rollouts whose task (``tasks``: records, or ``task_id -> record``) or environment
    (``env_id -> EnvSpec``) is not given are left out. With an ``executor`` the grading is
    spread over it and a failed item is reported to ``warn`` and yields nothing (the
    rollout stays ungraded, so a later call grades it again); without one it runs here and
    a failure raises. Nothing is written: the caller records the rewards.
    """
    graded = current_ids(reward_rows)
    todo: dict[str, dict[str, Any]] = {}
    for r in rollouts:
        if r["rollout_id"] not in graded:
            todo.setdefault(r["rollout_id"], dict(r))
    by_rollout: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        if s["rollout_id"] in todo:
            by_rollout.setdefault(s["rollout_id"], []).append(dict(s))
    by_task = tasks if isinstance(tasks, Mapping) else {t.task_id: t for t in tasks}
    items = grading_items(todo, by_rollout, by_task, envs, settings)
    results = (executor.map(grade_one, items) if executor is not None
               else map(grade_one, items))
    for done, reward in enumerate(results, 1):
        if progress is not None:
            progress(done, len(items))
        if isinstance(reward, ItemError):  # no row: graded again by a later call
            if warn is not None:
                warn(f"grading failed in its worker: {reward}")
            continue
        yield reward
