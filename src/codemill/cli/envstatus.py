"""How an environment's status reads wherever it is shown: the status, then the pass
fraction of its baseline (``usable, 12/15 pass (80%)``), so that "usable" is never read
without how much of the suite passes."""

from __future__ import annotations


def pass_fraction(n_passing: int | None, n_tests: int | None) -> float | None:
    """Passing / total tests of the baseline; None when no test ran (or an old row holds
    no counts)."""
    if not n_tests:
        return None
    return (n_passing or 0) / n_tests


def passing_text(n_passing: int | None, n_tests: int | None) -> str:
    """``12/15 pass (80%)``, or ``no tests ran``."""
    frac = pass_fraction(n_passing, n_tests)
    if frac is None:
        return "no tests ran"
    return f"{n_passing or 0}/{n_tests} pass ({frac:.0%})"


def status_text(status: str, n_passing: int | None, n_tests: int | None) -> str:
    """``usable, 12/15 pass (80%)``."""
    return f"{status}, {passing_text(n_passing, n_tests)}"
