"""Suites: named, versioned sets of tasks plus how to run them.

A suite is chosen from task rows (validated tasks of chosen projects, imported SWE-bench
instances, or the tasks ``codemill run .`` made on a user's own repository: a private
eval) by project, kind, difficulty and strength, optionally sampled down with a seed. Its
``suite_id`` is the content id of its name, version, member task ids and run config, so a
suite is immutable: defining the same name and version with other members is an error
(``codemill.factory.evaluation`` checks), and a new membership needs a new version.

This module is pure: the factory reads the rows and persists ``SuiteSpec`` as ``suites``
and ``suite_tasks`` rows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codemill.core.ids import content_id
from codemill.tasks.patch_context import LISTING_FUNCTIONS, listing_key

DIFFICULTIES = ("easy", "medium", "hard")
OBSERVATION_LIMIT = 10_000
"""The agent's own default (``codemill.agent.config.AgentConfig``), a layer above."""


class SuiteRunConfig(BaseModel):
    """How every variant is run on the suite (part of the suite's identity, so two
    variants on one suite are always compared under the same budgets and seeds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(1, ge=1)
    """Attempts per task (samples); pass@k is reported for every k' <= k."""
    max_turns: int = Field(6, ge=1)
    """Model calls per attempt at most."""
    max_tokens: int = Field(256, ge=1)
    """Completion tokens per model call at most."""
    temperature: float = 0.0
    """Sampling temperature; with k > 1 use > 0 so attempts differ."""
    seed: int = 0
    """Attempt i samples with seed + i: the same seeds for every variant (paired)."""
    wall_time_s: float = 600.0
    """Wall-clock budget of one attempt."""
    mode: Literal["agent", "patch"] = "agent"
    """``agent``: the multi-turn agent with tools; ``patch``: one answer (an edit of the code
    the failing tests run, ``codemill.rollouts.patch_mode``). Every variant on the suite
    runs in this mode."""
    answer_format: Literal["lines", "search_replace"] = "lines"
    """Patch mode: the edit form the prompt asks for (line edits or search/replace)."""
    listing_functions: int = Field(LISTING_FUNCTIONS, ge=1)
    """Patch mode: functions the listing shows at most, the most suspicious first."""
    observation_limit: int = Field(OBSERVATION_LIMIT, ge=200)
    """Agent mode: characters of one tool output the agent is shown (the rest is cut with a
    note). Evaluate a trained policy at the limit its training data had (``codemill train``'s
    agent data use 1,500): longer observations put it off the distribution it learned
    from, and every character is prompt the sampler must prefill."""


class SuiteSelection(BaseModel):
    """Which tasks: every filter left empty accepts all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    projects: tuple[str, ...] = ()
    """Project names (snapshot names, e.g. ``toolz``)."""
    kinds: tuple[str, ...] = ()
    """Task kinds: ``synth``, ``feature``, ``mined``, ``imported``."""
    difficulties: tuple[str, ...] = ()
    """``easy`` | ``medium`` | ``hard`` (see ``difficulty``)."""
    strong_only: bool = False
    """Leave out tasks whose tests were measured weak (or not measured)."""
    env_ids: tuple[str, ...] = ()
    """Environment id prefixes (a user's own repository: ``codemill run .`` then eval)."""
    task_ids: tuple[str, ...] = ()
    """Task id prefixes (an explicit list, e.g. a slice of a bigger suite)."""
    limit: int | None = None
    """Sample at most this many tasks (seeded, stratified by project)."""
    sample_seed: int = 0


class SuiteTask(BaseModel):
    """One member, with the attributes results are broken down by."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str
    env_id: str
    project: str
    kind: str
    difficulty: str
    strength: str


class SuiteSpec(BaseModel):
    """A defined suite: its identity, members and run config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suite_id: str
    name: str
    version: str
    selection: SuiteSelection
    run: SuiteRunConfig
    tasks: tuple[SuiteTask, ...]
    description: str = ""

    def row(self) -> dict[str, Any]:
        return {"suite_id": self.suite_id, "name": self.name, "version": self.version,
                "k": self.run.k, "n_tasks": len(self.tasks),
                "selection": self.selection.model_dump_json(),
                "run_config": self.run.model_dump_json(), "description": self.description}

    def member_rows(self) -> list[dict[str, Any]]:
        return [{"suite_id": self.suite_id, **t.model_dump()} for t in self.tasks]

    @classmethod
    def from_rows(cls, suite: Mapping[str, Any], members: Iterable[Mapping[str, Any]]
                  ) -> SuiteSpec:
        tasks = tuple(sorted((SuiteTask(**{k: m[k] for k in SuiteTask.model_fields})
                              for m in members), key=lambda t: t.task_id))
        return cls(suite_id=suite["suite_id"], name=suite["name"], version=suite["version"],
                   selection=SuiteSelection.model_validate_json(suite["selection"]),
                   run=SuiteRunConfig.model_validate_json(suite["run_config"]), tasks=tasks,
                   description=suite.get("description") or "")


def difficulty(metadata: Mapping[str, Any]) -> str:
    """A coarse difficulty from the gold change's size: ``easy`` (one file, <= 2 changed
    lines), ``medium`` (<= 10 lines, <= 2 files), ``hard`` otherwise or when unknown size
    is large; tasks without size metadata (some imports) count as ``medium``."""
    lines, files = metadata.get("lines_changed"), metadata.get("files_changed")
    if lines is None:
        return "medium"
    if lines <= 2 and (files or 1) <= 1:
        return "easy"
    if lines <= 10 and (files or 1) <= 2:
        return "medium"
    return "hard"


def suite_task(row: Mapping[str, Any], project: str) -> SuiteTask:
    """A member from a ``tasks`` row and the project its environment belongs to."""
    meta = row.get("metadata") or {}
    if isinstance(meta, str):
        meta = json.loads(meta or "{}")
    strength = meta.get("strength") or ("weak" if meta.get("weak") else "unmeasured")
    return SuiteTask(task_id=row["task_id"], env_id=row["env_id"], project=project,
                     kind=str(row["kind"]), difficulty=difficulty(meta), strength=strength)


def select_tasks(candidates: Iterable[SuiteTask], selection: SuiteSelection
                 ) -> list[SuiteTask]:
    """The members ``selection`` picks from ``candidates`` (deduped by task id), sorted by
    id; with ``limit``, a seeded sample that takes projects in turn so each keeps a share."""
    seen: dict[str, SuiteTask] = {}
    for t in candidates:
        if t.task_id in seen:
            continue
        if selection.projects and t.project not in selection.projects:
            continue
        if selection.kinds and t.kind not in selection.kinds:
            continue
        if selection.difficulties and t.difficulty not in selection.difficulties:
            continue
        if selection.strong_only and t.strength != "strong":
            continue
        if selection.env_ids and not any(t.env_id.startswith(p) for p in selection.env_ids):
            continue
        if selection.task_ids and not any(t.task_id.startswith(p)
                                          for p in selection.task_ids):
            continue
        seen[t.task_id] = t
    chosen = sorted(seen.values(), key=lambda t: t.task_id)
    if selection.limit is not None and len(chosen) > selection.limit:
        rng = random.Random(selection.sample_seed)
        by_project: dict[str, list[SuiteTask]] = {}
        for t in chosen:
            by_project.setdefault(t.project, []).append(t)
        for items in by_project.values():
            rng.shuffle(items)
        picked: list[SuiteTask] = []
        while len(picked) < selection.limit:
            for name in sorted(by_project):
                if by_project[name] and len(picked) < selection.limit:
                    picked.append(by_project[name].pop())
        chosen = sorted(picked, key=lambda t: t.task_id)
    return chosen


def make_suite(name: str, version: str, members: Iterable[SuiteTask],
               selection: SuiteSelection, run: SuiteRunConfig, description: str = ""
               ) -> SuiteSpec:
    """A suite with its content id: same name, version, members and run config, same id."""
    tasks = tuple(sorted(members, key=lambda t: t.task_id))
    # a suite hashes its run config as before the settings it leaves at their defaults
    # existed (same id): an agent-mode suite without the modes, any suite without the
    # default listing or the default observation limit
    exclude = set() if listing_key(run.listing_functions) else {"listing_functions"}
    if run.observation_limit == OBSERVATION_LIMIT:
        exclude.add("observation_limit")
    if run.mode == "agent":
        exclude |= {"mode", "answer_format", "listing_functions"}
    key = run.model_dump(mode="json", exclude=exclude)
    sid = content_id("suite", name, version, [t.task_id for t in tasks], key)
    return SuiteSpec(suite_id=sid, name=name, version=version, selection=selection, run=run,
                     tasks=tasks, description=description)
