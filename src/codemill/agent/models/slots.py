"""Key/value storage for many sequences decoded together: one slot a sequence.

Each attention layer keeps ``keys`` and ``values`` of shape ``[slots, kv_heads, capacity,
head_dim]``. Sequence ``i`` occupies slot ``i`` with its tokens at positions ``0..length-1``
(right-padded, so nothing moves when it grows). A forward pass works on a contiguous run of
slots ``lo:hi`` and writes each new token at that row's own position: rows of different
lengths share one batch and one matrix multiply, and the 4-D attention mask (``mask``)
hides every position a row has not written. Positions past a row's length hold stale but
finite numbers, which the mask keeps out of the softmax.

``SlotCache`` is handed to a transformers model as its ``cache``: the model calls
``update(key, value, layer_idx, ...)`` once a layer and attends over what it returns. It
implements only what a causal LM's forward uses; the caller passes ``position_ids`` and a
4-D mask, so transformers neither asks the cache for a length nor builds a mask itself.

A finished turn's keys and values leave the batch as a ``KVStash`` (``stash``) and come
back into any free slot (``restore``) when the conversation's next turn starts, so a
sequence waiting on a tool costs no compute and keeps its cache. ``release`` gives the
storage back while nothing decodes (an idle engine); the next ``ensure`` allocates it anew
at the starting size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class KVStash:
    """A conversation's cache between turns: ``[layers, 2, kv_heads, length, head_dim]``,
    tagged with the weights version it was computed under."""

    kv: Any
    length: int
    version: int


CAPACITY_STEP = 512
"""Capacity grows in multiples of this many positions."""


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


class SlotCache:
    """Per-slot keys and values of every layer. Grows when a row or a position does not
    fit: slots by doubling, up to ``max_slots`` (the engine's ``max_batch``); capacity to
    what is asked, at least half again what it was, in multiples of ``CAPACITY_STEP``,
    without a cap. A growth allocates and copies every slot's storage, gigabytes for a
    full batch of long conversations, so it must be rare: a smaller growth step holds less
    memory but regrows every few turns of a long conversation. Doubling capacity, as slots
    do, held 4,096 positions for a batch of 2,000-token prompts that needs 2,129: nearly
    twice the storage, gigabytes at a full batch."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, *, dtype: Any, device: str,
                 slots: int = 4, capacity: int = 512, max_slots: int | None = None) -> None:
        self.layers, self.kv_heads, self.head_dim = layers, kv_heads, head_dim
        self.dtype, self.device = dtype, device
        self.max_slots = max_slots
        self._start = (slots, capacity)
        self.slots, self.capacity = 0, 0
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self._grow(slots, capacity)
        # Set by ``bind`` before each forward pass.
        self._lo = self._hi = self._kv_len = 0
        self._index: Any = None

    # -- storage -------------------------------------------------------------------------
    def ensure(self, slots: int, capacity: int) -> None:
        """Room for ``slots`` rows of ``capacity`` positions each (class docstring)."""
        if slots > self.slots or capacity > self.capacity:
            grow_s = self.slots
            if not self.keys:  # released: start again from the starting size
                grow_s = max(slots, self._start[0])
            elif slots > self.slots:
                doubled = 2 * self.slots
                if self.max_slots is not None:
                    doubled = min(doubled, self.max_slots)
                grow_s = max(slots, doubled)
            grow_c = self.capacity or self._start[1]
            if capacity > grow_c:
                grow_c = _round_up(max(capacity, grow_c + grow_c // 2), CAPACITY_STEP)
            self._grow(grow_s, grow_c)

    def _grow(self, slots: int, capacity: int) -> None:
        import torch

        shape = (slots, self.kv_heads, capacity, self.head_dim)
        keys, values = [], []
        for layer in range(self.layers):
            k = torch.zeros(shape, dtype=self.dtype, device=self.device)
            v = torch.zeros(shape, dtype=self.dtype, device=self.device)
            if self.keys:  # copy what the old storage held
                k[:self.slots, :, :self.capacity] = self.keys[layer]
                v[:self.slots, :, :self.capacity] = self.values[layer]
            keys.append(k)
            values.append(v)
        self.keys, self.values = keys, values
        self.slots, self.capacity = slots, capacity

    def release(self) -> None:
        """Drop the storage (every slot's positions are lost: call it only when no row is
        active); ``ensure`` allocates it again, from the starting size."""
        self.keys, self.values = [], []
        self.slots, self.capacity = 0, 0

    @property
    def nbytes(self) -> int:
        """Bytes the keys and values hold now."""
        return sum(t.nbytes for t in self.keys) + sum(t.nbytes for t in self.values)

    def stash(self, slot: int, length: int, version: int) -> KVStash:
        """A copy of slot ``slot``'s first ``length`` positions."""
        import torch

        kv = torch.stack([torch.stack((self.keys[n][slot, :, :length],
                                       self.values[n][slot, :, :length]))
                          for n in range(self.layers)])
        return KVStash(kv, length, version)

    def restore(self, slot: int, saved: KVStash, length: int | None = None) -> None:
        """Put the first ``length`` positions of ``saved`` (all by default) into slot
        ``slot``. A prefix of a stash is exact for any sequence with the same first
        ``length`` tokens: a causal model's keys at a position depend only on the tokens
        before it."""
        n = saved.length if length is None else length
        for layer in range(self.layers):
            self.keys[layer][slot, :, :n] = saved.kv[layer, 0, :, :n]
            self.values[layer][slot, :, :n] = saved.kv[layer, 1, :, :n]

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy slot ``src``'s first ``length`` positions into slot ``dst``."""
        for layer in range(self.layers):
            self.keys[layer][dst, :, :length] = self.keys[layer][src, :, :length]
            self.values[layer][dst, :, :length] = self.values[layer][src, :, :length]

    # -- one forward pass ------------------------------------------------------------------
    def bind(self, lo: int, hi: int, write_positions: Any, kv_len: int) -> None:
        """The next forward covers slots ``lo:hi``; its token ``t`` of row ``b`` is written
        at ``write_positions[b, t]``; attention reads positions ``0..kv_len-1``."""
        self._lo, self._hi, self._kv_len = lo, hi, kv_len
        rows, steps = write_positions.shape
        self._index = write_positions.view(rows, 1, steps, 1).expand(
            rows, self.kv_heads, steps, self.head_dim)

    def update(self, key_states: Any, value_states: Any, layer_idx: int,
               *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        keys = self.keys[layer_idx][self._lo:self._hi]
        values = self.values[layer_idx][self._lo:self._hi]
        keys.scatter_(2, self._index, key_states.to(self.dtype))
        values.scatter_(2, self._index, value_states.to(self.dtype))
        return keys[:, :, :self._kv_len], values[:, :, :self._kv_len]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions come from ``position_ids``; transformers needs no length

    # Attributes transformers' mask helpers read from any cache.
    is_compileable = False

    def __len__(self) -> int:
        return self.layers


class PrefixCache:
    """The caches of the last few fresh prompts, so a new conversation that starts the same
    way (the same system prompt; a GRPO group's identical prompts) prefills only what
    differs. ``best(ids)`` is the entry sharing the longest prefix with ``ids``."""

    def __init__(self, entries: int = 8, min_tokens: int = 32) -> None:
        self.entries, self.min_tokens = entries, min_tokens
        self._items: list[tuple[list[int], KVStash]] = []
        self.hits = self.reused_tokens = 0

    def add(self, ids: list[int], saved: KVStash) -> None:
        self._items = [(i, s) for i, s in self._items if i != ids][-(self.entries - 1):]
        self._items.append((list(ids), saved))

    def best(self, ids: list[int], version: int,
             count: bool = True) -> tuple[KVStash | None, int]:
        """``(stash, n)``: the first ``n`` tokens of ``ids`` can be restored from ``stash``
        (``n`` < len(ids), so at least one token is left to feed); (None, 0) if no entry
        shares ``min_tokens``. ``count=False`` looks without counting a hit."""
        best: tuple[KVStash | None, int] = (None, 0)
        for prompt, saved in self._items:
            if saved.version != version:
                continue
            n = common_prefix(prompt, ids, min(saved.length, len(ids) - 1))
            if n > best[1]:
                best = (saved, n)
        if best[1] < self.min_tokens:
            return None, 0
        if not count:
            return best
        self.hits += 1
        self.reused_tokens += best[1]
        return best

    def clear(self) -> None:
        self._items = []

    @property
    def nbytes(self) -> int:
        """Bytes the cached prompts' keys and values hold."""
        return sum(s.kv.nbytes for _, s in self._items)


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    """How many first tokens ``a`` and ``b`` share, at most ``limit``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if n >= limit or x != y:
            break
        n += 1
    return n


def mask(lengths: Any, new: Any, steps: int, kv_len: int) -> Any:
    """The ``[rows, 1, steps, kv_len]`` boolean mask (True = may attend) of one forward.

    Row ``b`` has ``lengths[b]`` positions cached and ``new[b]`` real tokens, left-padded to
    ``steps`` (so every row's last token is at step ``steps - 1``). Real token ``t`` sits at
    position ``lengths[b] + t - (steps - new[b])`` and sees positions up to its own. A pad
    step sees only the scratch position ``kv_len - 1`` (where pads are written), so its
    softmax stays finite and no real token ever sees it.
    """
    import torch

    rows = lengths.shape[0]
    step = torch.arange(steps).view(1, steps)
    pad = step < (steps - new).view(rows, 1)                       # [rows, steps]
    position = lengths.view(rows, 1) + step - (steps - new).view(rows, 1)
    key = torch.arange(kv_len).view(1, 1, kv_len)
    real = (key <= position.unsqueeze(-1)) & ~pad.unsqueeze(-1)
    scratch = pad.unsqueeze(-1) & (key == kv_len - 1)
    return (real | scratch).unsqueeze(1)


def write_positions(lengths: Any, new: Any, steps: int, scratch: int) -> Any:
    """``[rows, steps]`` cache positions of one forward's tokens; pads go to ``scratch``."""
    import torch

    rows = lengths.shape[0]
    step = torch.arange(steps).view(1, steps)
    offset = (steps - new).view(rows, 1)
    position = lengths.view(rows, 1) + step - offset
    return torch.where(step < offset, torch.full_like(position, scratch), position)
