"""Executors: results in input order, failures as ItemError values, nothing lost."""

import os

import pytest

from codemill.core.config import Settings
from codemill.core.errors import FactoryError
from codemill.factory.executors import ItemError, LocalExecutor, make_executor

from .work import die_on_two, pid_of, square_or_fail


def _check_squares(results, n):
    assert len(results) == n
    for i, r in enumerate(results):
        if i == 3:
            assert isinstance(r, ItemError)
            assert r.index == 3 and r.error_type == "ValueError" and "no threes" in r.message
            assert "square_or_fail" in r.traceback
        else:
            assert r == i * i


@pytest.mark.parametrize("workers", [1, 2])
def test_local_map_in_order_with_a_failing_item(workers):
    seen = []
    with LocalExecutor(workers) as ex:
        results = list(ex.map(square_or_fail, range(20), progress=lambda d, t: seen.append((d, t))))
        pids = set(ex.map(pid_of, range(8)))
    _check_squares(results, 20)
    assert seen == [(i, 20) for i in range(1, 21)]
    if workers == 1:
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids


def test_local_worker_death_fails_in_flight_items_only_and_pool_recovers():
    with LocalExecutor(2) as ex:
        results = list(ex.map(die_on_two, range(30)))
        again = list(ex.map(square_or_fail, range(5)))
    assert len(results) == 30
    assert isinstance(results[2], ItemError) and results[2].error_type == "WorkerDied"
    # Items in flight when the worker died fail with it; every other item has its value.
    failed = [i for i, r in enumerate(results) if isinstance(r, ItemError)]
    assert all(results[i] == i + 100 for i in range(30) if i not in failed)
    assert len(failed) <= ex.window
    assert results[-1] == 129
    _check_squares(again, 5)


def test_item_error_raises_as_factory_error():
    err = ItemError(4, "KeyError", "'x'")
    with pytest.raises(FactoryError, match="item 4: KeyError"):
        err.raise_()


def test_make_executor_picks_local_by_default():
    with make_executor(Settings(executor={"workers": 3})) as ex:
        assert isinstance(ex, LocalExecutor) and ex.workers == 3
