"""CRF against brute-force enumeration of every tag sequence."""

from __future__ import annotations

import itertools

import torch

from gpner.crf import CRF


def brute(crf, em, length):
    T = em.shape[-1]
    scores = {}
    for path in itertools.product(range(T), repeat=length):
        s = crf.start[path[0]] + crf.end[path[-1]] + sum(em[t, p] for t, p in enumerate(path))
        s = s + sum(crf.trans[a, b] for a, b in zip(path, path[1:]))
        scores[path] = s
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    return scores, log_z


def test_nll_and_viterbi_match_enumeration():
    torch.manual_seed(0)
    T, L = 3, 4
    crf = CRF(T)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    em = torch.randn(2, L, T)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    nll = crf.nll(em, tags, mask)
    paths = crf.viterbi(em, mask)
    for b, length in enumerate([4, 3]):
        scores, log_z = brute(crf, em[b], length)
        gold = tuple(tags[b, :length].tolist())
        assert torch.allclose(nll[b], log_z - scores[gold], atol=1e-5)
        assert tuple(paths[b]) == max(scores, key=lambda p: scores[p].item())


def test_empty_sequence_costs_nothing():
    crf = CRF(3)
    em = torch.randn(1, 2, 3)
    mask = torch.zeros(1, 2, dtype=torch.bool)
    assert crf.nll(em, torch.zeros(1, 2, dtype=torch.long), mask).item() == 0.0
    assert crf.viterbi(em, mask) == [[]]
