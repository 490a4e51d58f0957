"""``release_openmp_threads``: a thread gives its OpenMP workers back and can compute again."""

from __future__ import annotations

import os
import threading
import time


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _in_a_thread(fn):
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join()
    return out[0]


def test_a_thread_gives_its_openmp_workers_back_and_computes_again():
    import torch

    from codemill.agent.models.omp import release_openmp_threads

    x = torch.randn(64, 512, 512)  # big enough for a parallel region on every core

    def work() -> dict:
        expected = x.sum(dim=(1, 2))
        (x * 2.0).sum()
        with_pool = _threads()
        released = release_openmp_threads()
        deadline = time.monotonic() + 5
        while _threads() > with_pool - (torch.get_num_threads() - 1) \
                and time.monotonic() < deadline:
            time.sleep(0.01)  # the pool's workers exit on their own schedule
        without_pool = _threads()
        again = x.sum(dim=(1, 2))  # the pool comes back by itself
        return {"released": released, "with": with_pool, "without": without_pool,
                "same": torch.equal(expected, again)}

    got = _in_a_thread(work)
    assert got["released"] is True  # torch on Linux runs on libgomp
    assert got["same"]
    assert got["without"] == got["with"] - (torch.get_num_threads() - 1)
