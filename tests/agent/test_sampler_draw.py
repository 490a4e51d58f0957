"""The token draw every local-model path samples with (``sampler.draw``): exact against the
distribution it claims, and a row's token independent of the rows beside it."""

import math

import torch

from codemill.agent.models.sampler import TOP_TOKENS, draw
from codemill.core.records import SamplingConfig

RL = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_tokens=8, seed=0)


def _chi2_critical(df: int, z: float = 4.26) -> float:
    """Upper critical value of chi-square with ``df`` degrees of freedom at the normal
    quantile ``z`` (4.26: p = 1e-5), by the Wilson-Hilferty approximation."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _counts(logits: torch.Tensor, n: int, rows: int = 250) -> torch.Tensor:
    """How often each token is drawn in ``n`` draws, ``rows`` rows at a time, each row
    with its own generator (as the engine does)."""
    counts = torch.zeros(logits.shape[0], dtype=torch.long)
    batch = logits.unsqueeze(0).expand(rows, -1)
    for start in range(0, n, rows):
        gens = [torch.Generator().manual_seed(start + r) for r in range(rows)]
        for token, _ in draw(batch, [RL] * rows, gens):
            counts[token] += 1
    return counts


def test_the_draw_samples_the_full_distribution_including_its_tail():
    """Logits whose top tokens hold about 40% of the mass, so the rest of the vocabulary
    (drawn as one competitor, then inside) wins often: the observed frequencies of the top
    tokens and of ten tail bins must fit the softmax (chi-square, p > 1e-5)."""
    gen = torch.Generator().manual_seed(7)
    vocab = 3000
    logits = torch.randn(vocab, generator=gen)
    logits[:40] += torch.linspace(5.0, 2.0, 40)
    probs = torch.softmax(logits, -1).double()
    top = probs.topk(TOP_TOKENS).indices
    assert 0.3 < probs[top].sum() < 0.8  # the tail wins a good share of draws
    n = 20_000
    counts = _counts(logits, n).double()
    tail = torch.ones(vocab, dtype=torch.bool)
    tail[top] = False
    tail_ids = tail.nonzero().squeeze(1)
    bins = [top[i:i + 1] for i in range(TOP_TOKENS)] + list(tail_ids.chunk(10))
    stat = sum(float((counts[b].sum() - n * probs[b].sum()) ** 2 / (n * probs[b].sum()))
               for b in bins)
    assert stat < _chi2_critical(len(bins) - 1), stat
    # and the log-prob recorded with each token is the full-vocabulary one
    [(token, lp)] = draw(logits.unsqueeze(0), [RL], [torch.Generator().manual_seed(1)])
    assert abs(lp - float(torch.log_softmax(logits, -1)[token])) < 1e-6


def test_a_row_draws_the_same_token_alone_or_beside_others():
    gen = torch.Generator().manual_seed(3)
    rows = torch.randn(6, 5000, generator=gen) * 2
    together = draw(rows, [RL] * 6, [torch.Generator().manual_seed(i) for i in range(6)])
    alone = [draw(rows[i:i + 1], [RL], [torch.Generator().manual_seed(i)])[0]
             for i in range(6)]
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert max(abs(a - b) for (_, a), (_, b) in zip(together, alone, strict=True)) < 1e-6


def test_greedy_filtered_and_sampled_rows_share_a_batch():
    """A greedy row takes the argmax; a top-k row stays inside its k; sampled rows beside
    them are unaffected by their presence."""
    gen = torch.Generator().manual_seed(5)
    rows = torch.randn(3, 800, generator=gen)
    greedy = SamplingConfig(temperature=0.0, max_tokens=8)
    top2 = SamplingConfig(temperature=1.0, top_k=2, top_p=1.0, max_tokens=8)
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    got = draw(rows, [greedy, top2, RL], gens)
    assert got[0][0] == int(rows[0].argmax())
    assert got[1][0] in set(rows[1].topk(2).indices.tolist())
    assert got[2][0] == draw(rows[2:], [RL], [torch.Generator().manual_seed(2)])[0][0]
