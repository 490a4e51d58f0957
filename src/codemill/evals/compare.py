"""Paired comparison of two variants on one suite.

Both variants ran the same tasks with the same seeds (attempt ``i`` samples with
``seed + i``), so attempts pair by ``(task_id, sample_index)``. A pair where either side
is masked (an infrastructure failure) is dropped and counted, never scored. The test is
the exact McNemar test on the discordant pairs; the difference in resolved rate
(B - A) gets a paired bootstrap interval that resamples tasks (attempts of one task are not
independent). A flipped task is one whose per-task resolved count differs between A and B.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from codemill.evals.stats import mcnemar_exact


@dataclass(frozen=True)
class Flip:
    task_id: str
    project: str
    a_resolved: int
    b_resolved: int
    attempts: int


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    pairs: int
    dropped_masked: int
    unpaired: int
    a_rate: float | None
    b_rate: float | None
    diff: float | None
    """B's resolved rate minus A's over the paired attempts."""
    diff_low: float
    diff_high: float
    only_a: int
    """Discordant pairs resolved by A only."""
    only_b: int
    p_value: float
    flips: tuple[Flip, ...]

    @property
    def verdict(self) -> str:
        if self.diff is None:
            return "no paired attempts"
        if self.p_value >= 0.05:
            return "no significant difference (p >= 0.05)"
        return f"{self.b if self.diff > 0 else self.a} better (p = {self.p_value:.3g})"

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["flips"] = [f.__dict__ for f in self.flips]
        d["verdict"] = self.verdict
        return d


def _index(samples: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], Mapping[str, Any]]:
    return {(s["task_id"], int(s["sample_index"])): s for s in samples}


def compare(a_name: str, a_samples: Iterable[Mapping[str, Any]], b_name: str,
            b_samples: Iterable[Mapping[str, Any]], *, reps: int = 2000, seed: int = 0
            ) -> Comparison:
    """Pair A's and B's attempts and test the difference (see the module docstring)."""
    a, b = _index(a_samples), _index(b_samples)
    keys = sorted(set(a) & set(b))
    unpaired = len(set(a) ^ set(b))
    per_task: dict[str, list[tuple[bool, bool]]] = {}
    project: dict[str, str] = {}
    dropped = 0
    for key in keys:
        sa, sb = a[key], b[key]
        if sa.get("masked") or sb.get("masked"):
            dropped += 1
            continue
        per_task.setdefault(key[0], []).append((bool(sa.get("resolved")),
                                                bool(sb.get("resolved"))))
        project[key[0]] = str(sa.get("project") or sb.get("project") or "?")
    pairs = [p for ps in per_task.values() for p in ps]
    only_a = sum(x and not y for x, y in pairs)
    only_b = sum(y and not x for x, y in pairs)
    flips = tuple(
        Flip(t, project[t], sum(x for x, _ in ps), sum(y for _, y in ps), len(ps))
        for t, ps in sorted(per_task.items())
        if sum(x for x, _ in ps) != sum(y for _, y in ps))
    if not pairs:
        return Comparison(a_name, b_name, 0, dropped, unpaired, None, None, None, 0.0, 0.0,
                          0, 0, 1.0, flips)
    a_rate = sum(x for x, _ in pairs) / len(pairs)
    b_rate = sum(y for _, y in pairs) / len(pairs)
    low, high = _paired_bootstrap(list(per_task.values()), reps, seed)
    return Comparison(a_name, b_name, len(pairs), dropped, unpaired, a_rate, b_rate,
                      b_rate - a_rate, low, high, only_a, only_b,
                      mcnemar_exact(only_a, only_b), flips)


def _paired_bootstrap(tasks: list[list[tuple[bool, bool]]], reps: int, seed: int
                      ) -> tuple[float, float]:
    """95% percentile interval of (B rate - A rate), resampling tasks with replacement."""
    rng = random.Random(seed)
    n = len(tasks)
    diffs = []
    for _ in range(reps):
        total = wins = 0
        for _ in range(n):
            ps = tasks[rng.randrange(n)]
            total += len(ps)
            wins += sum(int(y) - int(x) for x, y in ps)
        diffs.append(wins / total)
    diffs.sort()
    return diffs[int(0.025 * reps)], diffs[min(reps - 1, int(0.975 * reps))]
