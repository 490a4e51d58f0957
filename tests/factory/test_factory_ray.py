"""RayExecutor on a real local Ray (2 CPUs), started once for the module and shut down."""

import pytest

from codemill.core.config import Settings
from codemill.factory.executors import ItemError, make_executor

from .work import square_or_fail

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    ex = make_executor(Settings(executor={"kind": "ray", "workers": 2}))
    yield ex
    ex.close()
    import ray

    assert not ray.is_initialized()


def test_ray_map_in_order_with_a_failing_item(ray_executor):
    seen = []
    results = list(ray_executor.map(square_or_fail, range(12),
                                    progress=lambda d, t: seen.append(d)))
    assert len(results) == 12 and seen == list(range(1, 13))
    assert isinstance(results[3], ItemError) and results[3].error_type == "ValueError"
    assert "no threes" in results[3].message
    assert [r for i, r in enumerate(results) if i != 3] == [i * i for i in range(12) if i != 3]
    assert ray_executor.workers == 2


def test_ray_executor_reused_for_a_second_map(ray_executor):
    assert list(ray_executor.map(square_or_fail, [5, 6])) == [25, 36]
