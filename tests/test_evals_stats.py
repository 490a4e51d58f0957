"""Wilson intervals and pass@k against values worked by hand."""

import math

import pytest

from codemill.evals.stats import pass_at_k, wilson


def test_wilson_matches_the_textbook_value():
    r = wilson(8, 10)
    # Wilson 95% for 8/10: [0.4902, 0.9433] (standard tables).
    assert math.isclose(r.low, 0.4902, abs_tol=1e-3) and math.isclose(r.high, 0.9433, abs_tol=1e-3)
    assert r.value == 0.8 and "80.0%" in str(r)


def test_wilson_edges_stay_in_range():
    zero, full = wilson(0, 5), wilson(5, 5)
    assert zero.low == 0.0 and 0 < zero.high < 0.6
    assert full.high == 1.0 and 0.4 < full.low < 1
    assert wilson(0, 0).value is None
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_pass_at_k():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert math.isclose(pass_at_k(10, 3, 1), 0.3)
    assert math.isclose(pass_at_k(4, 1, 2), 1 - math.comb(3, 2) / math.comb(4, 2))
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
