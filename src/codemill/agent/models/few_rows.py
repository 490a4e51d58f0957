"""Linear layers over a few rows, computed as the weight times the rows.

    with few_rows_linear():
        model(input_ids=...)   # each F.linear over 2..FEW_ROWS rows runs as (W @ x^T)^T

A decode step multiplies every weight ``W`` ``[out, in]`` by a handful of rows ``x``
``[rows, in]``. torch computes ``F.linear(x, W)`` as the GEMM ``x @ W^T``, and the CPU BLAS
torch ships (MKL) is slow at that shape when ``rows`` is small. On this machine the same
product computed as ``W @ x^T`` (the rows become the GEMM's narrow side) is faster from two
rows up to a few hundred; at one row (a matrix-vector product) and for prefill-sized inputs
torch's own order is as fast or faster, so those keep it. ``bench/bench_engines.py``
measures both orders (decode steps at several row counts, a prefill, and the engine's
tokens/s), so the choice can be checked on another CPU.

The two orders sum the same products in a different order, so results differ by float32
rounding only; the batched engine's log-probs stay within the trainer's tolerance
(``tests/agent/test_agent_engine.py``). The mode is a ``TorchFunctionMode``, which is
thread-local: only the thread that enters it (the sampler's scheduler) computes this way,
and a trainer sharing the model computes, and differentiates, as before.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any

FEW_ROWS = 256
"""The most rows computed as ``W @ x^T``: a decode step of up to 256 sequences, or a prefill
of a few short turns; longer prefills keep torch's order."""


def few_rows_linear(rows: int = FEW_ROWS) -> AbstractContextManager[Any]:
    """Within the block, on this thread, ``F.linear`` over 2 to ``rows`` rows runs as
    ``(W @ x^T)^T`` (module docstring); anything else runs unchanged. ``rows`` 0: torch's
    order everywhere (a block that changes nothing)."""
    return _mode_type()(rows) if rows else nullcontext()


@cache
def _mode_type() -> type:
    """The mode's class, made once (torch is imported on first use, not at import time)."""
    import torch
    from torch.overrides import TorchFunctionMode

    linear = torch.nn.functional.linear

    class FewRowsLinear(TorchFunctionMode):
        def __init__(self, rows: int) -> None:
            super().__init__()
            self.rows = rows

        def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                               kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            if func is linear:
                x, weight = args[0], args[1]
                bias = args[2] if len(args) > 2 else kwargs.get("bias")
                n = x.numel() // x.shape[-1] if x.dim() >= 2 and x.shape[-1] else 0
                if 2 <= n <= self.rows and weight.dim() == 2:
                    # contiguous, as torch's result is: the layers after view it
                    out = torch.mm(weight, x.reshape(n, x.shape[-1]).t()).t().contiguous()
                    if bias is not None:
                        out = out + bias
                    return out.reshape(*x.shape[:-1], weight.shape[0])
            return func(*args, **kwargs)

    return FewRowsLinear
