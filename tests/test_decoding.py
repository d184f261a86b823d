"""Decoding against a naive scan over every cell, flat selection against a naive greedy loop,
window merging and character offsets against values written here."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gpner.model.heads import mask_scores
from gpner.tasks.decoding import decode, decode_rows, prob, select_flat, to_entities
from gpner.text.alignment import TokenSpan as Span
from gpner.text.tokenization import CharWordTokenizer
from gpner.text.windows import merge_best


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
                        found.append(Span(i, j + 1, c, s))  # cell (i, j) is tokens i..j
        out.append(sorted(found, key=lambda x: (x.start, x.end, x.label)))
    return out


def naive_flat(spans):
    """Repeatedly take the best remaining span and discard every span overlapping it."""
    left, kept = list(spans), []
    while left:
        best = max(left, key=lambda s: (s.score, -s.start, -s.end, -s.label))
        kept.append(best)
        left = [s for s in left if s.end <= best.start or s.start >= best.end]
    return sorted(kept, key=lambda x: (x.start, x.end, x.label))


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
    assert [[s[:3] for s in ex] for ex in got] == [[s[:3] for s in ex] for ex in want]
    for ex_got, ex_want in zip(got, want, strict=True):
        assert [s.score for s in ex_got] == pytest.approx([s.score for s in ex_want])
    assert [[s[:3] for s in ex] for ex in decode(scores, threshold, max_width=2)] == \
        [[s[:3] for s in ex] for ex in naive_nested(scores, threshold, 2)]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("as_array", [False, True])
def test_rows_list_every_cell_above_the_threshold_in_cell_order(seed, as_array):
    scores = random_scores(seed)
    for max_width in (None, 2):
        want = [[] for _ in range(scores.shape[0])]  # a loop over cells, row-major
        for b, c, i, j in itertools.product(*map(range, scores.shape)):
            s = scores[b, c, i, j].item()
            if s > 0.0 and (max_width is None or j - i < max_width):
                want[b].append((c, i, j + 1, s))
        got = decode_rows(scores.numpy() if as_array else scores, 0.0, max_width)
        assert len(got) == len(want)
        for (rows, v), ex in zip(got, want, strict=True):
            assert rows.shape == (len(ex), 3) and v.shape == (len(ex),)
            assert rows.tolist() == [list(w[:3]) for w in ex]
            assert v.tolist() == pytest.approx([w[3] for w in ex])


@pytest.mark.parametrize("seed", range(8))
def test_flat_equals_naive_greedy_and_never_overlaps(seed):
    scores = random_scores(seed, L=12)
    flat = decode(scores, 0.0, flat=True)
    for ex_flat, ex_nested in zip(flat, naive_nested(scores, 0.0), strict=True):
        assert [s[:3] for s in ex_flat] == [s[:3] for s in naive_flat(ex_nested)]
        assert [s[:3] for s in select_flat(ex_nested)] == [s[:3] for s in ex_flat]
        for a, b in zip(ex_flat, ex_flat[1:], strict=False):
            assert a.end <= b.start


def test_flat_ties_decode_the_same_whatever_the_input_order():
    """Equal scores: the earlier start wins, then the earlier end, then the lower label id;
    worked by hand on six candidates of score 1.0, then checked over all 720 input orders."""
    import numpy as np

    from gpner.tasks.decoding import select_flat_rows

    rows = [(1, 2, 5), (0, 0, 3), (0, 2, 4), (2, 0, 2), (1, 5, 7), (0, 5, 7)]  # (label, s, e)
    # by hand: (2, 0, 2) [start 0, end 2] beats (0, 0, 3) [start 0, end 3], which it overlaps;
    # (0, 2, 4) beats (1, 2, 5); of the two spans 5..7, label 0 beats label 1
    want = [(0, 2, 2), (2, 4, 0), (5, 7, 0)]  # (start, end, label), in text order
    for order in itertools.permutations(range(len(rows))):
        got = select_flat_rows(np.array([rows[k] for k in order], dtype=np.int64),
                               np.ones(len(rows)))
        assert [s[:3] for s in got] == want, order


def test_flat_worked_example():
    scores = torch.full((1, 2, 5, 5), -5.0)
    scores[0, 0, 0, 2] = 3.0  # type 0, tokens 0..2
    scores[0, 1, 1, 1] = 4.0  # type 1, token 1: overlaps and wins
    scores[0, 0, 3, 4] = 0.5
    scores[0, 1, 3, 3] = 0.2  # overlaps the 0.5 span and loses
    # (start, end exclusive, label)
    assert [s[:3] for s in decode(scores, flat=True)[0]] == [(1, 2, 1), (3, 5, 0)]
    assert [s[:3] for s in decode(scores)[0]] == [(0, 3, 0), (1, 2, 1), (3, 4, 1), (3, 5, 0)]
    assert [s[:3] for s in decode(scores, max_width=1)[0]] == [(1, 2, 1), (3, 4, 1)]


def test_prob_is_sigmoid_2s_and_stable():
    for s in (-3.0, -0.2, 0.0, 0.7, 5.0):
        assert prob(s) == pytest.approx(1 / (1 + math.exp(-2 * s)))
    assert prob(1e4) == 1.0 and prob(-1e4) == 0.0


def test_to_entities_gives_exact_offsets():
    text = "  Angela   Merkel\tin 北京 👍🏽"
    enc = CharWordTokenizer.build([text]).encode(text)
    # tokens: Angela, Merkel, in, 北, 京, 👍🏽
    ents = to_entities(text, enc, [Span(0, 2, 0, 2.0), Span(3, 5, 1, 0.1), Span(5, 6, 1, -1.0)],
                       ["PER", "LOC"])
    assert [(e["start"], e["end"], e["label"], e["text"]) for e in ents] == [
        (2, 17, "PER", "Angela   Merkel"), (21, 23, "LOC", "北京"), (24, 26, "LOC", "👍🏽")]
    assert [e["prob"] for e in ents] == [0.982, 0.5498, 0.1192]  # sigmoid(2s), by hand
    assert [e["score"] for e in ents] == [2.0, 0.1, -1.0]


def test_merge_keeps_the_best_score_in_text_coordinates():
    found: dict = {}
    merge_best(found, [Span(1, 3, 0, 0.5), Span(4, 5, 1, 2.0)], shift=0)  # window at token 0
    merge_best(found, [Span(0, 2, 0, 1.5), Span(3, 4, 1, 0.7)], shift=1)  # window at token 1
    merge_best(found, [Span(0, 1, 1, 0.1)], shift=4)  # a weaker copy arrives last
    assert found == {(0, 1, 3): 1.5, (1, 4, 5): 2.0}
