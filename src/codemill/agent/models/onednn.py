"""Linear layers through oneDNN's inner product, on the sampler's thread only.

    with onednn_linear():
        model(input_ids=...)   # each fp32 F.linear runs as oneDNN's inner product

torch computes ``F.linear`` on a CPU as an MKL GEMM, which is slow at the shapes a sampler
runs: a decode step multiplies every weight by one row or a few dozen, and the output head
(the vocabulary times the hidden size) by every row. oneDNN's inner product, which torch
ships for its own CPU inference paths, runs those shapes faster here, and a prefill no
slower; ``bench/bench_engines.py`` measures decode steps and a prefill both ways, so the
choice can be checked on another CPU.

Both sum the same products in a different order, so results differ by float32 rounding
only; the batched engine's log-probs stay within the trainer's tolerance
(``tests/agent/test_agent_engine.py``). The mode is a ``TorchFunctionMode``, which is
thread-local: only the thread that enters it (the sampler's scheduler) computes this way,
and a trainer sharing the model computes, and differentiates, as before. Inputs that need
a gradient, are not fp32 on the CPU, or a torch built without oneDNN, keep torch's path.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any


def onednn_linear(enabled: bool = True) -> AbstractContextManager[Any]:
    """Within the block, on this thread, fp32 CPU ``F.linear`` without gradients runs
    through oneDNN (module docstring). ``enabled`` False, or no oneDNN in this torch: a
    block that changes nothing."""
    return _mode_type()() if enabled and available() else nullcontext()


@cache
def available() -> bool:
    """Whether this torch has oneDNN's linear kernel."""
    import torch

    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn,
                                                            "_linear_pointwise")


@cache
def _mode_type() -> type:
    """The mode's class, made once (torch is imported on first use, not at import time)."""
    import torch
    from torch.overrides import TorchFunctionMode

    linear = torch.nn.functional.linear
    kernel = torch.ops.mkldnn._linear_pointwise

    class OneDnnLinear(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                               kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            if func is linear:
                x, weight = args[0], args[1]
                bias = args[2] if len(args) > 2 else kwargs.get("bias")
                if _fits(x, weight, bias):
                    return kernel(x, weight, bias, "none", [], "")
            return func(*args, **kwargs)

    def _fits(x: Any, weight: Any, bias: Any) -> bool:
        tensors = (x, weight) if bias is None else (x, weight, bias)
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return False  # oneDNN's kernel has no backward
        return (x.dim() >= 2 and weight.dim() == 2 and x.shape[-1] > 0
                and all(t.dtype == torch.float32 and t.device.type == "cpu"
                        for t in tensors))

    return OneDnnLinear
