"""Rates with honest uncertainty: Wilson score intervals and the unbiased pass@k.

Masked rewards (infrastructure failures) are excluded by the callers before counting: they
are neither passes nor failures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """``successes`` out of ``n`` with a two-sided Wilson interval."""

    successes: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return None if self.n == 0 else self.successes / self.n

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a (0 graded)"
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}] ({self.successes}/{self.n})"


def wilson(successes: int, n: int, z: float = Z95) -> Rate:
    """Wilson score interval for a binomial proportion (95% by default); unlike the
    normal approximation it stays inside [0, 1] and is sane for 0/n and n/n."""
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"bad counts: {successes}/{n}")
    if n == 0:
        return Rate(0, 0, 0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Rate(successes, n, max(0.0, centre - half), min(1.0, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` passed (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: list[tuple[int, int]], k: int) -> float | None:
    """pass@k of a suite: the mean over tasks of ``pass_at_k(n, c, k)`` for each task's
    ``(n graded samples, c passed)``; tasks with fewer than ``k`` graded samples are left
    out (their estimate is undefined), None when none is left."""
    vals = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return sum(vals) / len(vals) if vals else None


def bootstrap_ci(values: list[float], *, reps: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling the items: the
    tasks, which are the unit that varies between suites). Deterministic for a seed."""
    import random

    if not values:
        return (0.0, 1.0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(reps))
    lo = means[int((1 - level) / 2 * reps)]
    hi = means[min(reps - 1, int((1 + level) / 2 * reps))]
    return (lo, hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` pairs won only by A and ``c`` only by B:
    a binomial test of ``min(b, c)`` out of ``b + c`` at one half (1.0 when no pair is
    discordant)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa between two binary raters (agreement beyond chance); None when it is
    undefined (no pairs, or both raters constant and equal)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    pa = sum(a for a, _ in pairs) / n
    pb = sum(b for _, b in pairs) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)
