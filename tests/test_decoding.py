"""Decoding against a naive scan over every cell, flat selection against a naive greedy loop."""

from __future__ import annotations

import math

import pytest
import torch

from gpner.decoding import Span, decode, prob, to_entities
from gpner.heads import mask_scores
from gpner.tokenization import CharWordTokenizer


def naive_nested(scores, threshold, max_width=None):
    B, C, L, _ = scores.shape
    out = []
    for b in range(B):
        found = []
        for c in range(C):
            for i in range(L):
                for j in range(L):
                    s = scores[b, c, i, j].item()
                    if s > threshold and (max_width is None or j - i < max_width):
                        found.append(Span(c, i, j, s))
        out.append(sorted(found, key=lambda x: (x.start, x.end, x.type)))
    return out


def naive_flat(spans):
    """Repeatedly take the best remaining span and discard every span overlapping it."""
    left, kept = list(spans), []
    while left:
        best = max(left, key=lambda s: (s.score, -s.start, -s.end, -s.type))
        kept.append(best)
        left = [s for s in left if s.end < best.start or s.start > best.end]
    return sorted(kept, key=lambda x: (x.start, x.end, x.type))


def random_scores(seed, B=3, C=3, L=9):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(B, C, L, L, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 0] = False
    return mask_scores(raw, mask)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [-0.5, 0.0, 1.0])
def test_nested_equals_naive_scan(seed, threshold):
    scores = random_scores(seed)
    got = decode(scores, threshold)
    want = naive_nested(scores, threshold)
    assert [[(s.type, s.start, s.end) for s in ex] for ex in got] == \
        [[(s.type, s.start, s.end) for s in ex] for ex in want]
    for ex_got, ex_want in zip(got, want):
        assert [s.score for s in ex_got] == pytest.approx([s.score for s in ex_want])
    assert [[s[:3] for s in ex] for ex in decode(scores, threshold, max_width=2)] == \
        [[s[:3] for s in ex] for ex in naive_nested(scores, threshold, 2)]


@pytest.mark.parametrize("seed", range(8))
def test_flat_equals_naive_greedy_and_never_overlaps(seed):
    scores = random_scores(seed, L=12)
    flat = decode(scores, 0.0, flat=True)
    for ex_flat, ex_nested in zip(flat, naive_nested(scores, 0.0)):
        assert [s[:3] for s in ex_flat] == [s[:3] for s in naive_flat(ex_nested)]
        for a, b in zip(ex_flat, ex_flat[1:]):
            assert a.end < b.start


def test_flat_worked_example():
    scores = torch.full((1, 2, 5, 5), -5.0)
    scores[0, 0, 0, 2] = 3.0  # type 0, tokens 0..2
    scores[0, 1, 1, 1] = 4.0  # type 1, token 1: overlaps and wins
    scores[0, 0, 3, 4] = 0.5
    scores[0, 1, 3, 3] = 0.2  # overlaps the 0.5 span and loses
    assert [s[:3] for s in decode(scores, flat=True)[0]] == [(1, 1, 1), (0, 3, 4)]
    assert [s[:3] for s in decode(scores)[0]] == [(0, 0, 2), (1, 1, 1), (1, 3, 3), (0, 3, 4)]


def test_prob_is_sigmoid_2s_and_stable():
    for s in (-3.0, -0.2, 0.0, 0.7, 5.0):
        assert prob(s) == pytest.approx(1 / (1 + math.exp(-2 * s)))
    assert prob(1e4) == 1.0 and prob(-1e4) == 0.0


def test_to_entities_gives_exact_offsets():
    text = "  Angela   Merkel\tin 北京 👍🏽"
    tok = CharWordTokenizer.build([text])
    enc = tok.encode(text)
    spans = [Span(0, 0, 1, 2.0), Span(1, 3, 4, 0.1)]
    ents = to_entities(text, enc, spans, ["PER", "LOC"])
    assert [(e["text"], e["label"]) for e in ents] == [("Angela   Merkel", "PER"), ("北京", "LOC")]
    for e in ents:
        assert text[e["start"]:e["end"]] == e["text"]
    assert ents[0]["prob"] == pytest.approx(prob(2.0), abs=1e-4)
