"""CRF against brute-force enumeration of every tag sequence; the tag heads' decoding (argmax
and Viterbi) on hand-made emissions, spans and scores worked out by hand."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gpner.model.crf import CRF, crf_nll
from gpner.tasks.decoding import decode_tags, viterbi


def brute(start, end, trans, em, length):
    """Score of every tag path of ``length`` and log Z, by enumeration."""
    T = em.shape[-1]
    scores = {}
    for path in itertools.product(range(T), repeat=length):
        s = start[path[0]] + end[path[-1]] + sum(em[t, p] for t, p in enumerate(path))
        scores[path] = s + sum(trans[a, b] for a, b in zip(path, path[1:], strict=False))
    return scores, torch.logsumexp(torch.stack(list(scores.values())), 0)


@pytest.mark.parametrize("B,L,T", [(1, 1, 3), (2, 2, 2), (3, 4, 3), (2, 5, 3), (4, 3, 5)])
def test_nll_and_viterbi_match_enumeration(B, L, T):
    g = torch.Generator().manual_seed(B * 100 + L * 10 + T)
    crf = CRF(T)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    em = torch.randn(B, L, T, generator=g, dtype=torch.float64)
    lengths = [L] + [int(torch.randint(0, L + 1, (1,), generator=g)) for _ in range(B - 1)]
    mask = torch.arange(L)[None] < torch.tensor(lengths)[:, None]  # prefixes, some empty
    tags = torch.randint(0, T, (B, L), generator=g)
    nll = crf_nll(em, tags, mask, crf.start, crf.end, crf.trans)
    with torch.no_grad():
        paths = viterbi(em.numpy(), mask.numpy(), *(x.double().numpy()
                                                     for x in (crf.start, crf.end, crf.trans)))
    for b, n in enumerate(lengths):
        if n == 0:
            assert nll[b].item() == 0.0 and paths[b] == []
            continue
        scores, log_z = brute(crf.start, crf.end, crf.trans, em[b].float(), n)
        gold = tuple(tags[b, :n].tolist())
        assert nll[b].item() == pytest.approx((log_z - scores[gold]).item(), abs=1e-4)
        assert tuple(paths[b]) == max(scores, key=lambda p: scores[p].item())


def logit_half(p: float) -> float:
    return 0.5 * math.log(p / (1 - p))


def test_softmax_tag_decoding_spans_and_scores_by_hand():
    # tags: 0 O, 1 B-0, 2 I-0, 3 B-1, 4 I-1; emissions make each token's winner obvious
    e = [[0, 3, 1, 0, 0],   # B-0
         [0, 0, 2, 0, 0],   # I-0
         [5, 0, 0, 0, 0],   # O  (a whitespace token: masked out, skipped when packing)
         [0, 0, 0, 0, 4],   # I-1 without B-1: starts an entity (repaired), as in BIO readers
         [1, 0, 0, 2, 0]]   # B-1
    em = torch.tensor([e], dtype=torch.float)
    mask = torch.tensor([[True, True, False, True, True]])
    spans = decode_tags(em, mask)[0]
    assert [s[:3] for s in spans] == [(0, 2, 0), (3, 4, 1), (4, 5, 1)]

    def p(row, tag):
        return math.exp(row[tag]) / sum(math.exp(x) for x in row)

    want = [logit_half((p(e[0], 1) + p(e[1], 2)) / 2), logit_half(p(e[3], 4)),
            logit_half(p(e[4], 3))]
    assert [s.score for s in spans] == pytest.approx(want, abs=1e-6)


def test_crf_tag_decoding_follows_the_transitions():
    # alone, token 1 prefers B-0; a transition bonus makes I-0 after B-0 the best path
    em = torch.tensor([[[0.0, 2.0, 0.0], [0.0, 1.5, 1.0]]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    start, end = torch.zeros(3), torch.zeros(3)
    trans = torch.zeros(3, 3)
    assert [s[:3] for s in decode_tags(em, mask)[0]] == [(0, 1, 0), (1, 2, 0)]
    trans[1, 2] = 1.0  # B-0 -> I-0: path (B, I) scores 2 + 1 + 1 = 4 > (B, B) 3.5
    spans = decode_tags(em, mask, (start, end, trans))[0]
    assert [s[:3] for s in spans] == [(0, 2, 0)]
    p0 = math.exp(2.0) / (2 + math.exp(2.0))
    p1 = math.exp(1.0) / (1 + math.exp(1.5) + math.exp(1.0))
    assert spans[0].score == pytest.approx(logit_half((p0 + p1) / 2), abs=1e-6)
