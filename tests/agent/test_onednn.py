"""``onednn_linear``: the sampler's linear layers through oneDNN, on one thread only."""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from codemill.agent.models.onednn import available, onednn_linear


def test_the_installed_torch_has_onednns_linear_kernel():
    # every CPU wheel of torch the project installs ships it; without it the sampler
    # would fall back to torch's kernel, and the tests below would fail, not skip
    assert available()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


def _kernel_calls(fn) -> list[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return [e.name for e in prof.events()]


def test_onednn_gives_torchs_result_up_to_rounding_for_one_row_to_a_prefill():
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(96, 48, generator=gen), torch.randn(96, generator=gen)
    for shape in ((1, 48), (1, 1, 48), (2, 48), (4, 1, 48), (3, 5, 48), (300, 48)):
        x = torch.randn(*shape, generator=gen)
        with torch.inference_mode(), onednn_linear():
            got = F.linear(x, weight, bias)
            no_bias = torch.nn.functional.linear(x, weight)
        assert got.shape == (*shape[:-1], 96) and got.is_contiguous()
        assert _rel(got, F.linear(x, weight, bias)) < 1e-6
        assert _rel(no_bias, F.linear(x, weight)) < 1e-6


def test_the_kernel_is_onednns_only_where_no_gradient_is_needed():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)

    def under_inference():
        with torch.inference_mode(), onednn_linear():
            layer(x)

    assert any("linear_pointwise" in name for name in _kernel_calls(under_inference))
    # with gradients on, the parameters need them: torch's kernel, and backward works
    with onednn_linear():
        out = layer(x.requires_grad_())
    assert out.grad_fn.name() == "AddmmBackward0"
    out.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None

    def float64_under_inference():
        wide = torch.nn.Linear(8, 4).to(torch.float64)
        with torch.inference_mode(), onednn_linear():
            assert wide(torch.randn(2, 8, dtype=torch.float64)).dtype == torch.float64

    # only fp32 goes to oneDNN; other dtypes keep torch's kernel
    assert not any("linear_pointwise" in name for name in _kernel_calls(float64_under_inference))


def test_disabled_changes_nothing():
    weight, x = torch.randn(6, 4), torch.randn(3, 4)
    with torch.inference_mode(), onednn_linear(False):
        assert torch.equal(F.linear(x, weight), x @ weight.t())


def test_the_mode_is_this_threads_only():
    from torch.overrides import _get_current_function_mode_stack

    seen: list[int] = []
    with onednn_linear():
        assert len(_get_current_function_mode_stack()) == 1
        def depth():
            return len(_get_current_function_mode_stack())
        other = threading.Thread(target=lambda: seen.append(depth()))
        other.start()
        other.join()
    assert seen == [0]  # a trainer's thread sharing the model computes as before
    assert _get_current_function_mode_stack() == []
