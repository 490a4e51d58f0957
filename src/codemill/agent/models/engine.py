"""One batched sampler for a local model: many conversations decoded together, token-exact.

    engine = BatchedEngine(model)
    result = engine.generate(ids, saved, sampling, stop_ids)   # from any number of threads

Every caller (an agent's turn, a GRPO sample, a ``model serve`` request) submits the whole
conversation's token ids and the ``KVStash`` its previous turn returned, and blocks until
its turn is sampled. One scheduler thread owns the model and loops:

1. **admit** waiting requests into free slots of a ``SlotCache`` (their stash copied in),
   up to ``max_batch`` rows at once (continuous batching: a row joins when its turn starts);
   a new conversation starts from the cached prefix it shares with a recent prompt
   (``PrefixCache``: the same system prompt, or a GRPO group's identical prompts), so only
   what differs is prefilled;
2. **prefill** the new rows' uncached tokens (tool output, the next header, or a whole
   prompt), several rows in one left-padded forward pass, and sample each row's first token;
3. **decode** one token for every active row in one forward pass;
4. **retire** rows that sampled a stop token or used their budget: their keys and values
   leave as a stash (a conversation waiting on its tools costs no compute), the result goes
   back to the caller, and the last row moves into the freed slot so the batch stays dense.

Numerics are those of the single-sequence sampler (``codemill.agent.models.sampler``): a
row's log-probs are ``log_softmax(logits / T)`` over the full vocabulary at the sampled
token (T = 1 when greedy), top-p / top-k only filter what is drawn, and each request
draws from its own seeded generator, so a sequence's tokens do not depend on who shares
its batch. Padding never leaks: the 4-D mask (``codemill.agent.models.slots.mask``) shows
each row only its own positions. On a CPU the forward passes compute their linear layers
through oneDNN (``codemill.agent.models.onednn``), which runs a decode step's shapes faster
than torch's MKL GEMM; the results differ by rounding only. Each step runs on as many torch
threads as there are cores no other process keeps busy (``codemill.agent.models.cores``):
every core while the rollouts' tools wait, one fewer while a sandbox runs tests beside it.

Once no row has been active for ``RELEASE_AFTER_S`` seconds the engine gives back its slot
storage and prefix cache (32 rows of 4,096 positions of SmolLM2's 30 layers' fp32 keys and
values are 6 GB). An engine lives as long as its backend, and a process keeps a local
model's backend for good (the rollout runner caches it; ``model serve``), so without this
whatever runs next in the process, such as the demo's training after its base-model eval,
would run beside that storage. The next turn allocates it anew. ``bench/bench_memory.py``
measures a process's peak resident set through sampling and then a GRPO update, with and
without the release.

``swap(model, policy)`` replaces the weights between GRPO rounds without a restart: it
waits until no row is active, and stashes computed under older weights are dropped (their
conversations are prefilled again), so no token is sampled from a mix of two policies.

Every forward pass runs on the scheduler thread. The thread that loaded the model gives its
OpenMP workers back when the engine starts (and a trainer's thread at ``swap``), and the
scheduler gives its own back when it goes idle: two threads' idle worker pools on the same
cores make libgomp put every worker to sleep between kernels, which slows every decode
step (``codemill.agent.models.omp``; ``bench/bench_sampler.py`` measures by how much).

Why our own scheduler: transformers' continuous batching (``generate_batch``) returns
log-probs after top-p / top-k filtering, draws from one global generator, and does not keep
a conversation's cache between requests; RL needs all three. The cost of a step is the
model's own forward pass over the batch; the scheduler adds a few small tensor ops.
``bench/bench_engines.py`` measures the alternatives (one sequence at a time, ``generate``,
``generate_batch``, this engine over fp32 and bf16 weights) on one workload, with each one's
log-probs against the trainer's, and what bounds a decode step and a prefill here.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from codemill.agent.models.cores import SpareCores
from codemill.agent.models.omp import release_openmp_threads
from codemill.agent.models.onednn import onednn_linear
from codemill.agent.models.sampler import cache_keyword, draw
from codemill.agent.models.slots import (
    KVStash,
    PrefixCache,
    SlotCache,
    common_prefix,
    mask,
    write_positions,
)
from codemill.core.errors import ModelError
from codemill.core.memory import release_freed_memory
from codemill.core.records import SamplingConfig

MAX_BATCH = 32
"""Rows decoded together at most (the default ``max_batch``); local rollouts run half again
as many at once (``codemill.rollouts.runner.IN_FLIGHT``), the rest waiting in the queue.
Why not wider: a step's attention reads every row's keys and values up to the longest
row's length, so the more rows of different lengths, the more of it is wasted
(``bench/bench_engines.py`` measures a step at this many rows and at half again as many,
rows of equal length, and ``bench/bench_learn.py --stage time:base:agent`` an agent eval)."""
RELEASE_AFTER_S = 10.0
"""Idle this long, the engine gives back its slot storage and prefix cache. Longer than a
tool's pause between an agent's turns (which would make the storage regrow every turn),
far shorter than a training run that follows an eval in the same process."""
PREFILL_TOKENS = 2048
"""Rows x padded length of one prefill forward pass: bounds its attention memory."""


@dataclass
class Generation:
    """One turn's result: the sampled ids and log-probs, whether it ended on a stop token,
    and the stash of every token but the last sampled one (the next turn feeds that one)."""

    ids: list[int]
    logprobs: list[float]
    stopped: bool
    saved: KVStash
    policy: str


@dataclass(eq=False)
class _Row:
    """A request, waiting or in the batch."""

    ids: list[int]
    saved: KVStash | None
    sampling: SamplingConfig
    stops: frozenset[int]
    budget: int
    generator: Any
    length: int = 0                 # positions cached in its slot
    fresh: bool = False             # started without a stash: its prompt joins the prefixes
    pending: list[int] = field(default_factory=list)  # tokens to feed next
    out: list[int] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)
    stopped: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None
    error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.stopped or len(self.out) >= self.budget


class BatchedEngine:
    """The scheduler over one model (module docstring). Thread-safe; ``close`` stops it."""

    def __init__(self, model: Any, *, device: str = "cpu", max_batch: int = MAX_BATCH,
                 policy: str = "", onednn: bool | None = None,
                 threads: int | None = None,
                 release_after_s: float = RELEASE_AFTER_S) -> None:
        """``threads``: torch threads for every step; None (on a CPU) picks them before each
        step from the cores other processes leave free (module docstring).
        ``release_after_s``: idle this long, the engine gives its cache storage back."""
        self.model, self.device, self.max_batch = model, device, max_batch
        self.policy = policy
        # linear layers through oneDNN (``codemill.agent.models.onednn``): a CPU kernel
        # choice, so off on an accelerator; False keeps torch's everywhere
        self.onednn = device == "cpu" if onednn is None else onednn
        self.threads = threads
        self._spare = SpareCores() if threads is None and device == "cpu" else None
        self.thread_steps: dict[int, int] = {}  # forward passes run on n threads (benchmarks)
        self.version = 0
        config = _inner(model).config
        self.context = getattr(config, "max_position_embeddings", None)
        heads = config.num_attention_heads
        self._cache = SlotCache(
            config.num_hidden_layers, getattr(config, "num_key_value_heads", None) or heads,
            getattr(config, "head_dim", None) or config.hidden_size // heads,
            dtype=next(model.parameters()).dtype, device=device, max_slots=max_batch)
        self._cache_kw = cache_keyword(model)
        self.prefixes = PrefixCache()
        self._cond = threading.Condition()
        self._waiting: deque[_Row] = deque()
        self._rows: list[_Row] = []        # slot i holds self._rows[i]
        self._swapping = False
        self._closed = False
        self.release_after_s = release_after_s
        self.releases = 0                   # times the storage went back (benchmarks, tests)
        self.steps = 0                      # forward passes run (for benchmarks)
        self.batch_rows = 0                 # rows summed over decode steps
        self._thread = threading.Thread(target=self._loop, name="codemill-sampler",
                                        daemon=True)
        # The scheduler thread runs every forward pass from now on; the thread that loaded
        # the model gives its OpenMP workers back so the scheduler's are not throttled.
        release_openmp_threads()
        self._thread.start()

    # -- callers ---------------------------------------------------------------------------
    def generate(self, ids: list[int], saved: KVStash | None, sampling: SamplingConfig,
                 stops: set[int] | frozenset[int]) -> Generation:
        """Sample a turn after ``ids`` (the whole conversation); ``saved`` covers a prefix
        of it (or None). Blocks until the turn ends; raises ``ModelError``."""
        import torch

        budget = max(1, sampling.max_tokens)
        if self.context is not None and len(ids) + budget > self.context:
            budget = self.context - len(ids)
            if budget < 1:
                raise ModelError(f"the conversation has {len(ids)} tokens; the model's "
                                 f"context is {self.context}")
        if not ids:
            raise ModelError("nothing to sample after: the prompt has no tokens")
        generator = torch.Generator(device=self.device)
        if sampling.seed is not None:
            generator.manual_seed(sampling.seed)
        else:
            generator.seed()
        row = _Row(list(ids), saved, sampling, frozenset(stops), budget, generator)
        with self._cond:
            if self._closed:
                raise ModelError("the sampler is closed")
            self._waiting.append(row)
            self._cond.notify_all()
        row.done.wait()
        if row.error is not None:
            raise ModelError(f"sampling failed: {row.error}") from row.error
        assert row.result is not None
        return row.result

    def swap(self, model: Any, policy: str = "") -> None:
        """Serve ``model`` from now on; waits until no row is active (module docstring).
        The caller (a trainer between rounds) gives its OpenMP workers back first."""
        release_openmp_threads()
        with self._cond:
            self._swapping = True
            while self._rows:
                self._cond.wait()
            self.model, self.policy = model, policy
            self._cache_kw = cache_keyword(model)
            self.version += 1
            self.prefixes.clear()
            self._swapping = False
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the scheduler; rows still waiting fail with ``ModelError``, and the slot
        storage and prefix cache are given back (``held_bytes`` is 0 once the scheduler
        has ended, whoever still holds the engine). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    # -- the scheduler thread --------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._idle():
                    # Free this thread's OpenMP workers while a trainer may use the cores
                    # (``codemill.agent.models.omp``).
                    release_openmp_threads()
                    if not self._cond.wait_for(lambda: not self._idle(),
                                               timeout=self.release_after_s):
                        self._release()
                while self._idle():
                    self._cond.wait()
                if self._closed:
                    self._fail(self._rows + list(self._waiting), ModelError("closed"))
                    self._rows, self._waiting = [], deque()
                    # A closed engine can outlive its thread for a long while (until the
                    # garbage collector frees whatever still holds its backend), and its
                    # storage with it: a GRPO run, one engine a draw, held several closed
                    # engines' storage at once and was killed for memory rounds later.
                    # Closing gives it back now.
                    self._release()
                    return
                joining = self._joining()
            try:
                self._step(joining)
            except Exception as exc:  # a failed forward fails its rows, never the thread
                with self._cond:
                    admitted = {id(r) for r in self._rows}
                    failed = self._rows + [r for r in joining if id(r) not in admitted]
                    self._rows = []
                    self._fail(failed, exc)
                    self._cond.notify_all()

    def _release(self) -> None:
        """Give back what decoding holds (lock held, no row active): the slot storage and
        the prefix cache, gigabytes at a full batch of long prompts, which a trainer's
        update in the same process needs more (module docstring)."""
        if self.held_bytes:
            self._cache.release()
            self.prefixes.clear()
            self.releases += 1
            release_freed_memory()  # and what prefills left in the allocator's arenas

    @property
    def held_bytes(self) -> int:
        """Bytes of keys and values the engine holds now: its slots and prefix cache
        (benchmarks; read it while the engine is idle)."""
        return self._cache.nbytes + self.prefixes.nbytes

    def _idle(self) -> bool:
        """Nothing to decode or admit, and not closed (lock held)."""
        return not self._closed and not self._rows and (not self._waiting or self._swapping)

    def _joining(self) -> list[_Row]:
        """Waiting rows to admit now (lock held). A new conversation that shares a longer
        prefix with another one admitted now than with any cached prompt waits one step, so
        it starts from that one's cache instead of prefilling the same tokens beside it."""
        joining: list[_Row] = []
        deferred: list[_Row] = []
        while (self._waiting and not self._swapping
               and len(self._rows) + len(joining) < self.max_batch):
            row = self._waiting.popleft()
            if row.saved is None and self._gains_by_waiting(row, joining):
                deferred.append(row)
                continue
            joining.append(row)
        self._waiting.extendleft(reversed(deferred))
        return joining

    def _gains_by_waiting(self, row: _Row, joining: list[_Row]) -> bool:
        cached = self.prefixes.best(row.ids, self.version, count=False)[1]
        shared = max((common_prefix(row.ids, other.ids, len(row.ids) - 1)
                      for other in joining if other.saved is None), default=0)
        return shared >= self.prefixes.min_tokens and shared > cached

    def _step(self, joining: list[_Row]) -> None:
        import torch

        threads = self._spare.spare() if self._spare is not None else self.threads
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        with torch.inference_mode():
            first_new = len(self._rows)
            for row in joining:
                self._admit(row)
            if len(self._rows) > first_new:
                self._prefill(first_new)
            # A row that finished at prefill is retired before the batch decodes again.
            if self._rows and not any(r.finished for r in self._rows):
                self._forward(0, len(self._rows))
            self._retire()

    def _admit(self, row: _Row) -> None:
        saved = row.saved if row.saved is not None and row.saved.version == self.version \
            else None
        if saved is not None and saved.length >= len(row.ids):
            saved = None  # the stash must leave at least one token to feed
        slot = len(self._rows)
        self._cache.ensure(slot + 1, len(row.ids) + row.budget + 1)
        cached = saved.length if saved is not None else 0
        if saved is None:
            row.fresh = True
            saved, cached = self.prefixes.best(row.ids, self.version)
        if saved is not None:
            self._cache.restore(slot, saved, cached)
        row.length, row.pending = cached, row.ids[cached:]
        self._rows.append(row)

    def _prefill(self, lo: int) -> None:
        """Feed rows ``lo:`` their pending tokens, in passes of at most PREFILL_TOKENS."""
        hi = len(self._rows)
        start = lo
        while start < hi:
            end, longest = start, 0
            while end < hi:
                longest_next = max(longest, len(self._rows[end].pending))
                if end > start and (end - start + 1) * longest_next > PREFILL_TOKENS:
                    break
                longest, end = longest_next, end + 1
            self._forward(start, end)
            for slot in range(start, end):
                row = self._rows[slot]
                if row.fresh:  # its prompt's cache, for conversations that start alike
                    self.prefixes.add(row.ids, self._cache.stash(slot, row.length,
                                                                 self.version))
            start = end

    def _forward(self, lo: int, hi: int) -> None:
        """One forward pass over slots ``lo:hi``, then one sampled token per row."""
        import torch

        rows = self._rows[lo:hi]
        steps = max(len(r.pending) for r in rows)
        lengths = torch.tensor([r.length for r in rows])
        new = torch.tensor([len(r.pending) for r in rows])
        scratch = int((lengths + new).max())
        kv_len = scratch + 1
        self._cache.ensure(hi, kv_len)
        tokens = torch.zeros((len(rows), steps), dtype=torch.long)
        for b, r in enumerate(rows):
            tokens[b, steps - len(r.pending):] = torch.tensor(r.pending)
        positions = write_positions(lengths, new, steps, scratch)
        self._cache.bind(lo, hi, positions.to(self.device), kv_len)
        attend = mask(lengths, new, steps, kv_len).to(self.device)
        with onednn_linear(self.onednn):
            out = self.model(input_ids=tokens.to(self.device),
                             position_ids=positions.clamp(max=scratch - 1).clamp(min=0)
                             .to(self.device),
                             attention_mask=attend, use_cache=True, logits_to_keep=1,
                             **{self._cache_kw: self._cache})
        drawn = draw(out.logits[:, -1], [r.sampling for r in rows],
                     [r.generator for r in rows])
        self.steps += 1
        n = torch.get_num_threads()
        self.thread_steps[n] = self.thread_steps.get(n, 0) + 1
        if steps == 1:
            self.batch_rows += len(rows)
        for r, (token, logp) in zip(rows, drawn, strict=True):
            r.length += len(r.pending)
            r.out.append(token)
            r.logps.append(logp)
            r.stopped = token in r.stops
            r.pending = [token]

    def _retire(self) -> None:
        with self._cond:
            for i in range(len(self._rows) - 1, -1, -1):
                row = self._rows[i]
                if not row.finished:
                    continue
                saved = self._cache.stash(i, row.length, self.version)
                row.result = Generation(row.out, row.logps, row.stopped, saved, self.policy)
                row.done.set()
                last = len(self._rows) - 1
                if i != last:
                    self._cache.move(last, i, self._rows[last].length)
                    self._rows[i] = self._rows[last]
                self._rows.pop()
            self._cond.notify_all()

    @staticmethod
    def _fail(rows: list[_Row], exc: BaseException) -> None:
        for row in rows:
            row.error = exc
            row.done.set()


def _inner(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


