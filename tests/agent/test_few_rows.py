"""``few_rows_linear``: a decode step's linear layers as ``W @ x^T``, on one thread only."""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from codemill.agent.models.few_rows import few_rows_linear


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


def test_few_rows_give_torchs_result_up_to_rounding_and_many_rows_are_untouched():
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(96, 48, generator=gen), torch.randn(96, generator=gen)
    for shape in ((2, 48), (4, 1, 48), (3, 5, 48)):
        x = torch.randn(*shape, generator=gen)
        with few_rows_linear(rows=16):
            got = F.linear(x, weight, bias)
            no_bias = torch.nn.functional.linear(x, weight)
        assert got.shape == (*shape[:-1], 96) and got.is_contiguous()
        assert _rel(got, F.linear(x, weight, bias)) < 1e-6
        assert _rel(no_bias, F.linear(x, weight)) < 1e-6
    many = torch.randn(17, 48, generator=gen)
    with few_rows_linear(rows=16):
        assert torch.equal(F.linear(many, weight, bias), torch.addmm(bias, many, weight.t()))


def test_gradients_flow_through_the_few_rows_order():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    with few_rows_linear():
        out = layer(x)
        many, one = layer(torch.randn(300, 8)), layer(torch.randn(1, 8))
    # the few rows went through W @ x^T plus the bias; many rows, and one row (a
    # matrix-vector product, as fast in torch's order), through torch's addmm
    assert out.grad_fn.next_functions[0][0].name() == "AddBackward0"
    assert many.grad_fn.name() == "AddmmBackward0" and one.grad_fn.name() == "AddmmBackward0"
    out.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    expected = torch.ones(3, 4) @ layer.weight
    assert _rel(x.grad, expected) < 1e-6


def test_the_mode_is_this_threads_only():
    from torch.overrides import _get_current_function_mode_stack

    seen: list[int] = []
    with few_rows_linear():
        assert len(_get_current_function_mode_stack()) == 1
        def depth():
            return len(_get_current_function_mode_stack())
        other = threading.Thread(target=lambda: seen.append(depth()))
        other.start()
        other.join()
    assert seen == [0]  # a trainer's thread sharing the model computes as before
    assert _get_current_function_mode_stack() == []
