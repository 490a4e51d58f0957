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
