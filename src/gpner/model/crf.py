"""Linear-chain CRF for the BIO baseline: its parameters and negative log-likelihood (Viterbi
decoding is :func:`gpner.tasks.decoding.viterbi`, in NumPy).

Shapes: B batch, L positions, T tags. ``mask`` (B, L) marks real positions and must be a prefix
(left-aligned sequences); the NER task packs spannable tokens to the left first. The loss and
the decoder are functions of (emissions, start, end, transitions), so they run on the outputs of
any backend; :class:`CRF` only holds the parameters.
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    """The CRF's parameters (start, end and transition scores over T tags)."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.trans = nn.Parameter(torch.zeros(num_tags, num_tags))  # trans[a, b]: a -> b


def crf_nll(emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
            start: torch.Tensor, end: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """emissions (B, L, T), tags (B, L) long, mask (B, L) bool prefix -> (B,) -log p(tags).

    An all-masked row costs 0."""
    em = emissions.float()
    return _log_partition(em, mask, start, end, trans) - _score(em, tags, mask, start, end, trans)


def _score(em: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, start: torch.Tensor,
           end: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    m = mask.float()
    emit = em.gather(-1, tags[..., None]).squeeze(-1)  # (B, L)
    pairs = trans[tags[:, :-1], tags[:, 1:]]  # (B, L-1)
    score = (emit * m).sum(1) + (pairs * m[:, 1:]).sum(1)
    last = tags.gather(1, (mask.long().sum(1) - 1).clamp(min=0)[:, None]).squeeze(1)
    return torch.where(mask[:, 0], score + start[tags[:, 0]] + end[last], 0.0)


def _log_partition(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                   trans: torch.Tensor) -> torch.Tensor:
    alpha = start + em[:, 0]  # (B, T)
    for t in range(1, em.shape[1]):
        nxt = torch.logsumexp(alpha[:, :, None] + trans + em[:, t, None, :], dim=1)
        alpha = torch.where(mask[:, t, None], nxt, alpha)
    return torch.where(mask[:, 0], torch.logsumexp(alpha + end, dim=1), 0.0)
