"""Heads against explicit loops over (type, i, j); RoPE's relative property; masks in low
precision; EGP's 4d-per-type parameter cost."""

from __future__ import annotations

import math

import pytest
import torch

from gpner.model.heads import (
    CRFTagger,
    EfficientGlobalPointer,
    GlobalPointer,
    SoftmaxTagger,
    rope,
)
from gpner.model.losses import mcce_sparse

torch.manual_seed(0)


def rotate(vec: list[float], pos: int) -> list[float]:
    """RoPE on one vector by hand: pairs (2k, 2k+1) rotated by pos * 10000^(-2k/d)."""
    d = len(vec)
    out = list(vec)
    for k in range(d // 2):
        a = pos * 10000 ** (-2 * k / d)
        x, y = vec[2 * k], vec[2 * k + 1]
        out[2 * k], out[2 * k + 1] = x * math.cos(a) - y * math.sin(a), y * math.cos(a) + x * math.sin(a)
    return out


def dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def make_inputs(B=2, L=6, D=8):
    hidden = torch.randn(B, L, D, dtype=torch.float64)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 4:] = False  # padding
    mask[0, 0] = False  # a special token ([CLS])
    return hidden, mask


def check_masked(scores, mask, b, i, j, full_square=False):
    return bool(mask[b, i]) and bool(mask[b, j]) and (full_square or i <= j)


@pytest.mark.parametrize("use_rope,full", [(True, False), (False, False), (True, True)])
def test_gp_scores_equal_explicit_loop(use_rope, full):
    C, d = 3, 4
    hidden, mask = make_inputs()
    head = GlobalPointer(8, C, head_size=d, rope=use_rope, full_square=full).double()
    scores = head(hidden, mask)
    if full:  # cells below the diagonal are scored, not masked
        assert torch.isfinite(scores[0, :, 3, 1]).all()
    W, bias = head.proj.weight, head.proj.bias
    B, L, _ = hidden.shape
    for b in range(B):
        for c in range(C):
            for i in range(L):
                for j in range(L):
                    if not check_masked(scores, mask, b, i, j, full):
                        assert scores[b, c, i, j] == float("-inf")
                        continue
                    # projection rows: type c, q then k, each d wide
                    qi = (W[(2 * c) * d:(2 * c + 1) * d] @ hidden[b, i] + bias[(2 * c) * d:(2 * c + 1) * d]).tolist()
                    kj = (W[(2 * c + 1) * d:(2 * c + 2) * d] @ hidden[b, j] + bias[(2 * c + 1) * d:(2 * c + 2) * d]).tolist()
                    if use_rope:
                        qi, kj = rotate(qi, i), rotate(kj, j)
                    expected = dot(qi, kj) / math.sqrt(d)
                    assert scores[b, c, i, j].item() == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("full", [False, True])
def test_egp_scores_equal_explicit_loop(full):
    C, d = 3, 4
    hidden, mask = make_inputs()
    head = EfficientGlobalPointer(8, C, head_size=d, full_square=full).double()
    scores = head(hidden, mask)
    B, L, _ = hidden.shape
    w = head.type_terms.weight  # (2C, 2d)
    for b in range(B):
        feats = [(head.proj.weight @ hidden[b, t] + head.proj.bias).tolist() for t in range(L)]
        for c in range(C):
            w_c = w[2 * c].tolist() + w[2 * c + 1].tolist()  # the 4d vector of type c
            for i in range(L):
                for j in range(L):
                    if not check_masked(scores, mask, b, i, j, full):
                        assert scores[b, c, i, j] == float("-inf")
                        continue
                    qi, kj = rotate(feats[i][:d], i), rotate(feats[j][d:], j)
                    expected = dot(qi, kj) / math.sqrt(d) + dot(w_c, feats[i] + feats[j])
                    assert scores[b, c, i, j].item() == pytest.approx(expected, abs=1e-10)


def test_rope_depends_only_on_relative_offset():
    d = 16
    q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)

    def score(m, n):
        x = torch.zeros(1, max(m, n) + 1, d, dtype=torch.float64)
        y = x.clone()
        x[0, m], y[0, n] = q, k
        return (rope(x)[0, m] @ rope(y)[0, n]).item()

    assert score(2, 7) == pytest.approx(score(40, 45), abs=1e-9)
    assert score(0, 0) == pytest.approx(score(100, 100), abs=1e-9)
    assert abs(score(2, 7) - score(2, 9)) > 1e-6  # and position really matters


@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_shift_inside_padding_keeps_span_scores(cls):
    """A text moved 5 positions right inside a longer padded sequence scores the same spans the
    same: RoPE makes scores depend on j - i only."""
    n, shift, D = 7, 5, 8
    head = cls(D, 4, head_size=8).double()
    h = torch.randn(1, n, D, dtype=torch.float64)
    padded = torch.randn(1, n + shift + 3, D, dtype=torch.float64)  # junk in padding
    padded[0, shift:shift + n] = h[0]
    mask = torch.zeros(1, n + shift + 3, dtype=torch.bool)
    mask[0, shift:shift + n] = True
    a = head(h, torch.ones(1, n, dtype=torch.bool))
    b = head(padded, mask)[:, :, shift:shift + n, shift:shift + n]
    torch.testing.assert_close(a, b)
    assert torch.isneginf(head(padded, mask)[:, :, :shift]).all()


@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masks_hold_in_low_precision(cls, dtype):
    torch.manual_seed(1)
    head = cls(16, 3, head_size=8)
    with torch.no_grad():  # large weights: scores in the thousands, near fp16's range
        for p in head.parameters():
            p.mul_(12)
    head = head.to(dtype)
    hidden = torch.randn(2, 10, 16).to(dtype)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    scores = head(hidden, mask)
    assert scores.dtype == dtype
    valid = torch.ones(10, 10, dtype=torch.bool).triu()
    assert torch.isneginf(scores[:, :, ~valid]).all()
    assert torch.isneginf(scores[1, :, 6:, :]).all() and torch.isneginf(scores[1, :, :, 6:]).all()
    assert not torch.isnan(scores).any()
    assert torch.isfinite(scores[0][:, valid]).all()
    positives = torch.tensor([[0, 0, 1, 3], [1, 2, 0, 5]])
    loss = mcce_sparse(scores, positives)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_egp_costs_4d_parameters_per_type():
    def count(module):
        return sum(p.numel() for p in module.parameters())

    for d in (8, 64):
        base = count(EfficientGlobalPointer(768, 9, head_size=d))
        assert count(EfficientGlobalPointer(768, 10, head_size=d)) - base == 4 * d
    # GlobalPointer pays a full projection per type: 2 * D * d weights + 2 * d biases
    assert count(GlobalPointer(768, 10)) - count(GlobalPointer(768, 9)) == 2 * 768 * 64 + 2 * 64


def test_tag_heads_give_named_outputs():
    hidden, mask = make_inputs(B=2, L=5, D=8)
    out = SoftmaxTagger(8, 3)(hidden.float(), mask)
    assert list(out) == ["emissions"] and out["emissions"].shape == (2, 5, 7)  # T = 1 + 2C
    crf = CRFTagger(8, 3)
    out = crf(hidden.float(), mask)
    assert list(out) == ["emissions", "start", "end", "transitions"]
    assert out["transitions"] is crf.crf.trans  # the parameters themselves: gradients reach them
    with pytest.raises(ValueError, match="no span square"):
        SoftmaxTagger(8, 3, full_square=True)
