"""Losses against brute-force loops over cells; dense == sparse; gradcheck; divergence laws."""

from __future__ import annotations

import math
import random

import pytest
import torch

from gpner.model.heads import mask_scores
from gpner.model.losses import flood, gp_divergence, mcce_dense, mcce_soft, mcce_sparse


def brute_loss(scores, gold):
    """Per (b, c): log(1 + sum_N e^s) + log(1 + sum_P e^-s), by a loop over every cell."""
    B, C, L, _ = scores.shape
    out = torch.zeros(B, C, dtype=torch.float64)
    for b in range(B):
        for c in range(C):
            neg = pos = 0.0
            for i in range(L):
                for j in range(L):
                    s = scores[b, c, i, j].item()
                    if s == float("-inf"):
                        continue
                    if (b, c, i, j) in gold:
                        pos += math.exp(-s)
                    else:
                        neg += math.exp(s)
            out[b, c] = math.log1p(neg) + math.log1p(pos)
    return out


def random_case(B, C, L, seed, scale=3.0, empty_row=True):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(B, C, L, L, generator=g, dtype=torch.float64) * scale
    lengths = [L] + [int(torch.randint(1, L + 1, (1,), generator=g)) for _ in range(B - 1)]
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    if empty_row and B > 2:
        mask[2] = False  # an all-masked example: every cell -inf
    scores = mask_scores(raw, mask)
    rng = random.Random(seed)
    gold = set()
    for b in range(B):
        for c in range(C):
            if rng.random() < 0.3:
                continue  # an empty gold set
            n = lengths[b] if mask[b].any() else 0
            for _ in range(rng.randint(1, 3) if n else 0):
                i = rng.randrange(n)
                gold.add((b, c, i, rng.randrange(i, n)))
    return raw, mask, scores, gold


def dense_labels(shape, gold):
    labels = torch.zeros(shape, dtype=torch.bool)
    for cell in gold:
        labels[cell] = True
    return labels


@pytest.mark.parametrize("seed", range(4))
def test_dense_and_sparse_equal_brute_force(seed):
    _, _, scores, gold = random_case(4, 3, 7, seed)
    expected = brute_loss(scores, gold)
    dense = mcce_dense(scores, dense_labels(scores.shape, gold), reduction="none")
    positives = torch.tensor(sorted(gold), dtype=torch.long).reshape(-1, 4)
    sparse = mcce_sparse(scores, positives, reduction="none")
    torch.testing.assert_close(dense.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sparse.double(), expected, rtol=1e-5, atol=1e-5)
    assert (expected[2] == 0).all()  # all-masked example: log(1 + 0) + log(1 + 0)
    assert mcce_dense(scores, dense_labels(scores.shape, gold)).item() == pytest.approx(
        expected.sum(1).mean().item(), rel=1e-5)


def test_sparse_is_exact_when_gold_dominates():
    """Late in training gold scores dwarf the rest; the epsilon-clipped published sparse form is
    off by about a - log(eps) there. Ours must still equal the brute force."""
    _, _, scores, gold = random_case(2, 2, 6, 7, empty_row=False)
    for cell in gold:
        scores[cell] = 30.0
    positives = torch.tensor(sorted(gold)).reshape(-1, 4)
    torch.testing.assert_close(mcce_sparse(scores, positives, reduction="none").double(),
                               brute_loss(scores, gold), rtol=1e-5, atol=1e-5)


def test_long_sequence_dense_equals_sparse():
    _, _, scores, gold = random_case(2, 2, 300, 3, scale=2.0, empty_row=False)
    scores = scores.float()
    positives = torch.tensor(sorted(gold)).reshape(-1, 4)
    dense = mcce_dense(scores, dense_labels(scores.shape, gold), reduction="none")
    sparse = mcce_sparse(scores, positives, reduction="none")
    torch.testing.assert_close(dense, sparse, rtol=1e-5, atol=1e-4)
    # and a numpy-free brute force on one row, over all 45,150 valid cells
    s = scores[0, 1]
    neg = sum(math.exp(v) for i in range(300) for j in range(i, 300)
              if (0, 1, i, j) not in gold for v in [s[i, j].item()])
    pos = sum(math.exp(-s[i, j].item()) for (b, c, i, j) in gold if (b, c) == (0, 1))
    assert sparse[0, 1].item() == pytest.approx(math.log1p(neg) + math.log1p(pos), rel=1e-4)


def test_no_gold_at_all_and_empty_positives():
    _, _, scores, _ = random_case(3, 2, 5, 11)
    empty = torch.zeros(0, 4, dtype=torch.long)
    torch.testing.assert_close(mcce_sparse(scores, empty, reduction="none").double(),
                               brute_loss(scores, set()))


def test_gold_on_masked_cell_is_an_error():
    _, _, scores, _ = random_case(2, 1, 5, 2, empty_row=False)
    with pytest.raises(ValueError, match="masked"):
        mcce_sparse(scores, torch.tensor([[0, 0, 3, 1]]))  # start > end
    labels = torch.zeros(scores.shape, dtype=torch.bool)
    labels[0, 0, 3, 1] = True
    with pytest.raises(ValueError, match="masked"):
        mcce_dense(scores, labels)


def test_gradcheck_float64():
    raw, mask, _, gold = random_case(3, 2, 5, 5)
    raw = raw.clone().requires_grad_(True)
    positives = torch.tensor(sorted(gold)).reshape(-1, 4)
    labels = dense_labels(raw.shape, gold)
    targets = torch.rand(raw.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    other = torch.randn(raw.shape, dtype=torch.float64)

    def as64(fn):
        return lambda x: fn(mask_scores(x, mask)).double()

    for fn in (lambda s: mcce_sparse(s, positives), lambda s: mcce_dense(s, labels),
               lambda s: mcce_soft(s, targets), lambda s: gp_divergence(s, mask_scores(other, mask))):
        assert torch.autograd.gradcheck(as64(fn), raw)
    loss = mcce_sparse(mask_scores(raw, mask), positives)
    loss.backward()
    assert torch.isfinite(raw.grad).all()
    assert (raw.grad[~torch.isfinite(mask_scores(raw.detach(), mask))] == 0).all()


def brute_soft(scores, t):
    B, C, L, _ = scores.shape
    out = torch.zeros(B, C, dtype=torch.float64)
    for b in range(B):
        for c in range(C):
            a = z = 0.0
            for i in range(L):
                for j in range(L):
                    s = scores[b, c, i, j].item()
                    if s != float("-inf"):
                        a += t[b, c, i, j].item() * math.exp(-s)
                        z += (1 - t[b, c, i, j].item()) * math.exp(s)
            out[b, c] = math.log1p(a) + math.log1p(z)
    return out


def test_soft_loss_brute_force_and_hard_limit():
    _, _, scores, gold = random_case(3, 2, 5, 9)
    t = torch.rand(scores.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t = torch.where(torch.isneginf(scores), 0.0, t)
    torch.testing.assert_close(mcce_soft(scores, t, reduction="none").double(),
                               brute_soft(scores, t), rtol=1e-5, atol=1e-5)
    hard = dense_labels(scores.shape, gold).double()
    torch.testing.assert_close(mcce_soft(scores, hard, reduction="none"),
                               mcce_dense(scores, hard, reduction="none"))
    # tiny target noise on masked cells must not reopen them
    noisy = hard + 1e-9
    assert torch.isfinite(mcce_soft(scores, noisy)).all()


@pytest.mark.parametrize("t", [0.05, 0.3, 0.5, 0.9])
def test_soft_loss_optimum_is_sigmoid_2s(t):
    s = torch.tensor(0.5 * math.log(t / (1 - t)), dtype=torch.float64, requires_grad=True)
    loss = mcce_soft(s.view(1, 1, 1, 1), torch.full((1, 1, 1, 1), t, dtype=torch.float64))
    loss.backward()
    assert abs(s.grad.item()) < 1e-6
    assert torch.sigmoid(2 * s).item() == pytest.approx(t)


def test_divergence_brute_force_and_laws():
    _, mask, s, _ = random_case(3, 2, 6, 4)
    t = mask_scores(torch.randn(s.shape, dtype=torch.float64) * 3, mask)
    expected = 0.0
    for cell in zip(*torch.nonzero(torch.isfinite(s), as_tuple=True), strict=True):
        a, b = s[cell].item(), t[cell].item()
        expected += (1 / (1 + math.exp(-a)) - 1 / (1 + math.exp(-b))) * (a - b)
    d = gp_divergence(s, t, reduction="sum")
    assert d.item() == pytest.approx(expected, rel=1e-5)
    assert gp_divergence(t, s, reduction="sum").item() == pytest.approx(d.item(), rel=1e-6)
    assert d.item() > 0
    assert gp_divergence(s, s).item() == 0.0
    per_cell = gp_divergence(s, s.clone().masked_fill(torch.isfinite(s), 0.0) + torch.where(
        torch.isfinite(s), s, 0.0), reduction="none")
    assert (per_cell == 0).all()  # equal on valid cells, -inf vs -inf elsewhere: zero, no NaN
    nudged = s.clone()
    nudged[0, 0, 0, 0] += 1e-3
    assert gp_divergence(s, nudged).item() > 0


def test_mean_divergence_is_the_per_text_mean_over_valid_cells():
    """norm="mean": each (text, type) sum divided by that text's number of valid cells, by a
    loop; so it does not grow with the square of the length as the published sum does."""
    _, mask, s, _ = random_case(3, 2, 6, 5, empty_row=False)
    t = mask_scores(torch.randn(s.shape, dtype=torch.float64) * 3, mask)
    B, C, L, _ = s.shape
    want = torch.zeros(B, C, dtype=torch.float64)
    for b in range(B):
        for c in range(C):
            total, n = 0.0, 0
            for i in range(L):
                for j in range(L):
                    x, y = s[b, c, i, j].item(), t[b, c, i, j].item()
                    if math.isinf(x) or math.isinf(y):
                        continue
                    total += (1 / (1 + math.exp(-x)) - 1 / (1 + math.exp(-y))) * (x - y)
                    n += 1
            want[b, c] = total / n
    got = gp_divergence(s, t, reduction="none", norm="mean")
    torch.testing.assert_close(got, want)
    assert gp_divergence(s, t, norm="mean").item() == pytest.approx(want.sum(1).mean().item())
    # one text repeated 4x longer (same per-cell differences): the sum grows 16x, the mean not
    a, b = torch.full((1, 1, 4, 4), 1.0), torch.full((1, 1, 4, 4), -1.0)
    big_a, big_b = torch.full((1, 1, 16, 16), 1.0), torch.full((1, 1, 16, 16), -1.0)
    assert gp_divergence(big_a, big_b).item() == pytest.approx(16 * gp_divergence(a, b).item())
    assert gp_divergence(big_a, big_b, norm="mean").item() == pytest.approx(
        gp_divergence(a, b, norm="mean").item())
    with pytest.raises(ValueError, match="norm"):
        gp_divergence(s, t, norm="max")


@pytest.mark.parametrize("loss_value,level", [(0.1, 0.5), (0.9, 0.5), (2.0, 0.0)])
def test_flooding_formula_and_gradient(loss_value, level):
    """|L - b| + b: the same value and gradient above the level, the gradient flipped below."""
    w = torch.tensor(loss_value, dtype=torch.float64, requires_grad=True)
    loss = 3.0 * w  # dL/dw = 3
    flooded = flood(loss, level)
    flooded.backward()
    assert flooded.item() == pytest.approx(abs(3 * loss_value - level) + level)
    assert w.grad.item() == pytest.approx(3.0 if 3 * loss_value > level else -3.0)


def test_loss_worked_example():
    """One text of two tokens, two types; cell (1, 0) is no span (-inf).
    Type 0: gold (0, 0) at 1.0, the others 0.0 and -1.0:
        log(1 + e^0 + e^-1) + log(1 + e^-1) = 1.17526 (worked by hand).
    Type 1: gold (0, 1) at -0.5, (0, 0) at 2.0, (1, 1) no span:
        log(1 + e^2) + log(1 + e^0.5) = 3.10100.
    The loss sums the types and averages over texts: 4.27626."""
    ninf = float("-inf")
    scores = torch.tensor([[[[1.0, 0.0], [ninf, -1.0]], [[2.0, -0.5], [ninf, ninf]]]],
                          dtype=torch.float64)
    labels = torch.zeros_like(scores)
    labels[0, 0, 0, 0] = labels[0, 1, 0, 1] = 1
    positives = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 1]])
    assert mcce_dense(scores, labels, reduction="none").tolist() == [
        [pytest.approx(1.17526, abs=1e-5), pytest.approx(3.10100, abs=1e-5)]]
    assert mcce_dense(scores, labels).item() == pytest.approx(4.27626, abs=1e-5)
    assert mcce_sparse(scores, positives).item() == pytest.approx(4.27626, abs=1e-5)
