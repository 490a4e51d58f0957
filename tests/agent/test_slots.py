"""``SlotCache`` growth: what it holds survives, slots stop at the batch, capacity in blocks."""

from __future__ import annotations

import torch

from codemill.agent.models.slots import BLOCK, SlotCache


def _cache(**kw) -> SlotCache:
    return SlotCache(2, 3, 4, dtype=torch.float32, device="cpu", **kw)


def test_growth_keeps_every_slots_positions():
    cache = _cache(slots=2, capacity=BLOCK)
    for layer in range(2):
        cache.keys[layer][:] = torch.randn(cache.keys[layer].shape)
        cache.values[layer][:] = torch.randn(cache.values[layer].shape)
    before = cache.stash(1, BLOCK, version=0).kv.clone()
    cache.ensure(5, BLOCK + 1)
    assert torch.equal(cache.stash(1, BLOCK, version=0).kv, before)


def test_slots_double_up_to_the_batch_and_capacity_grows_by_blocks():
    cache = _cache(slots=4, capacity=BLOCK, max_slots=48)
    cache.ensure(33, BLOCK)
    assert cache.slots == 33  # doubling from 4 reaches 8, then the rows asked for
    cache.ensure(34, BLOCK)
    assert cache.slots == 48  # doubled, but never past the batch
    # a conversation of 2,100 positions holds 2,560 of them, not the next power of two
    cache.ensure(34, 2_100)
    assert cache.capacity == 2_560
    # small steps grow by at least a quarter, so the storage is not copied every turn
    cache.ensure(34, 2_561)
    assert cache.capacity == 3_584 and cache.capacity % BLOCK == 0
    cache.ensure(10, 100)
    assert (cache.slots, cache.capacity) == (48, 3_584)  # never shrinks
