"""``SlotCache`` growth: what it holds survives, slots stop at the batch, capacity grows to
what is asked (in steps, at least half again)."""

from __future__ import annotations

import torch

from codemill.agent.models.slots import SlotCache


def _cache(**kw) -> SlotCache:
    return SlotCache(2, 3, 4, dtype=torch.float32, device="cpu", **kw)


def test_growth_keeps_every_slots_positions():
    cache = _cache(slots=2, capacity=512)
    for layer in range(2):
        cache.keys[layer][:] = torch.randn(cache.keys[layer].shape)
        cache.values[layer][:] = torch.randn(cache.values[layer].shape)
    before = cache.stash(1, 512, version=0).kv.clone()
    cache.ensure(5, 513)
    assert torch.equal(cache.stash(1, 512, version=0).kv, before)


def test_slots_double_up_to_the_batch_and_capacity_doubles():
    cache = _cache(slots=4, capacity=512, max_slots=48)
    cache.ensure(33, 512)
    assert cache.slots == 33  # doubling from 4 reaches 8, then the rows asked for
    cache.ensure(34, 512)
    assert cache.slots == 48  # doubled, but never past the batch
    # capacity: what is asked, in steps of 512 (a batch of long prompts holds no double)
    cache.ensure(34, 2_100)
    assert cache.capacity == 2_560
    # ...and at least half again, so a conversation growing turn by turn regrows it rarely
    cache.ensure(34, 2_600)
    assert cache.capacity == 4_096  # 1.5 x 2,560 = 3,840, rounded up to a step
    cache.ensure(34, 4_096)
    assert cache.capacity == 4_096
    cache.ensure(10, 100)
    assert (cache.slots, cache.capacity) == (48, 4_096)  # never shrinks


def test_released_storage_is_allocated_again_from_the_starting_size():
    cache = _cache(slots=4, capacity=512, max_slots=48)
    cache.ensure(33, 2_100)
    assert cache.nbytes == 2 * 2 * 33 * 3 * 2_560 * 4 * 4  # layers, k+v, slots, heads, ...
    cache.release()
    assert cache.nbytes == 0 and (cache.slots, cache.capacity) == (0, 0)
    cache.ensure(1, 600)
    assert (cache.slots, cache.capacity) == (4, 1_024)
    saved = cache.stash(0, 600, version=0)
    assert saved.kv.shape == (2, 2, 3, 600, 4)
