"""What a variant scored on a suite, from its per-attempt sample rows.

Input: ``eval_samples`` rows (one per task x attempt): ``task_id``, ``sample_index``,
``resolved``, ``masked``, ``error_type``, ``stop_reason``, ``tokens``, ``model_seconds``,
``sandbox_seconds``, ``project``, ``kind``, ``difficulty``.

Masked attempts (infrastructure failures) are neither passes nor failures: they leave the
denominators and are counted on their own (``masked``, ``masked_rate``), never folded into
the failure rate. Rates carry 95% Wilson intervals (over graded attempts); pass@k is the
unbiased estimator of Chen et al. averaged over tasks, with a percentile bootstrap interval
over tasks. Costs are per attempt and per resolved attempt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codemill.evals.stats import Rate, bootstrap_ci, mean_pass_at_k, pass_at_k, wilson

BREAKDOWNS = ("project", "kind", "difficulty")


@dataclass(frozen=True)
class PassAtK:
    k: int
    value: float | None
    low: float
    high: float
    n_tasks: int
    """Tasks with at least k graded attempts (the estimate's support)."""

    def __str__(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}] ({self.n_tasks} tasks)"


@dataclass(frozen=True)
class Cost:
    """Mean cost of one attempt, and of one resolved attempt (total / resolved)."""

    tokens: float
    model_seconds: float
    sandbox_seconds: float
    tokens_per_resolved: float | None
    model_seconds_per_resolved: float | None
    sandbox_seconds_per_resolved: float | None


@dataclass
class VariantScore:
    """Everything measured for one variant on one suite."""

    attempts: int
    graded: int
    masked: int
    pass1: Rate
    """Resolved rate over graded attempts (pass@1), Wilson interval."""
    pass_k: list[PassAtK]
    cost: Cost
    stop_reasons: dict[str, int]
    masked_reasons: dict[str, int]
    by: dict[str, dict[str, Rate]] = field(default_factory=dict)
    """``by[dimension][value]``: pass@1 per project, kind and difficulty."""

    @property
    def masked_rate(self) -> float:
        return self.masked / self.attempts if self.attempts else 0.0

    def to_json(self) -> dict[str, Any]:
        def rate(r: Rate) -> dict[str, Any]:
            return {"value": r.value, "low": r.low, "high": r.high, "successes": r.successes,
                    "n": r.n}

        return {"attempts": self.attempts, "graded": self.graded, "masked": self.masked,
                "masked_rate": self.masked_rate, "pass1": rate(self.pass1),
                "pass_k": [p.__dict__ for p in self.pass_k], "cost": self.cost.__dict__,
                "stop_reasons": self.stop_reasons, "masked_reasons": self.masked_reasons,
                "by": {d: {v: rate(r) for v, r in vals.items()} for d, vals in self.by.items()}}


def per_task_counts(samples: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """``task_id -> (graded attempts, resolved attempts)``; masked attempts left out."""
    counts: dict[str, list[int]] = {}
    for s in samples:
        n_c = counts.setdefault(s["task_id"], [0, 0])
        if s.get("masked"):
            continue
        n_c[0] += 1
        n_c[1] += bool(s.get("resolved"))
    return {t: (n, c) for t, (n, c) in counts.items()}


def pass_at_k_with_ci(counts: Mapping[str, tuple[int, int]], k: int, *, seed: int = 0
                      ) -> PassAtK:
    eligible = [(n, c) for n, c in counts.values() if n >= k]
    value = mean_pass_at_k(eligible, k)
    if value is None:
        return PassAtK(k, None, 0.0, 1.0, 0)
    low, high = bootstrap_ci([pass_at_k(n, c, k) for n, c in eligible], seed=seed)
    return PassAtK(k, value, low, high, len(eligible))


def _per(total: float, resolved: int) -> float | None:
    return total / resolved if resolved else None


def score(samples: Iterable[Mapping[str, Any]], k: int = 1) -> VariantScore:
    """Measure one variant's attempts (see the module docstring)."""
    rows = list(samples)
    graded = [r for r in rows if not r.get("masked")]
    resolved = sum(bool(r.get("resolved")) for r in graded)
    counts = per_task_counts(rows)
    n = len(rows) or 1
    tokens = sum(r.get("tokens") or 0 for r in rows)
    model_s = sum(r.get("model_seconds") or 0.0 for r in rows)
    sandbox_s = sum(r.get("sandbox_seconds") or 0.0 for r in rows)
    cost = Cost(tokens / n, model_s / n, sandbox_s / n, _per(tokens, resolved),
                _per(model_s, resolved), _per(sandbox_s, resolved))
    by: dict[str, dict[str, Rate]] = {}
    for dim in BREAKDOWNS:
        groups: dict[str, list[bool]] = {}
        for r in graded:
            groups.setdefault(str(r.get(dim) or "?"), []).append(bool(r.get("resolved")))
        by[dim] = {v: wilson(sum(g), len(g)) for v, g in sorted(groups.items())}
    return VariantScore(
        attempts=len(rows), graded=len(graded), masked=len(rows) - len(graded),
        pass1=wilson(resolved, len(graded)),
        pass_k=[pass_at_k_with_ci(counts, j) for j in range(1, k + 1)],
        cost=cost,
        stop_reasons=dict(Counter(str(r.get("stop_reason") or "?") for r in rows)),
        masked_reasons=dict(Counter(str(r.get("error_type") or "masked")
                                    for r in rows if r.get("masked"))),
        by=by)
