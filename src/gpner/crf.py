"""Linear-chain CRF for the BIO baseline: negative log-likelihood and Viterbi decoding.

Shapes: B batch, L positions, T tags. ``mask`` (B, L) marks real positions and must be a prefix
(left-aligned sequences); :class:`gpner.model.TagHead` packs spannable tokens to the left first.
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.trans = nn.Parameter(torch.zeros(num_tags, num_tags))  # trans[a, b]: a -> b

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """emissions (B, L, T), tags (B, L) long, mask (B, L) bool prefix -> (B,) -log p(tags)."""
        emissions = emissions.float()
        return self._log_partition(emissions, mask) - self._score(emissions, tags, mask)

    def _score(self, em: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, _ = em.shape
        m = mask.float()
        emit = em.gather(-1, tags[..., None]).squeeze(-1)  # (B, L)
        trans = self.trans[tags[:, :-1], tags[:, 1:]]  # (B, L-1)
        score = (emit * m).sum(1) + (trans * m[:, 1:]).sum(1)
        last = tags.gather(1, (mask.long().sum(1) - 1).clamp(min=0)[:, None]).squeeze(1)
        has = mask[:, 0]
        return torch.where(has, score + self.start[tags[:, 0]] + self.end[last], 0.0)

    def _log_partition(self, em: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        alpha = self.start + em[:, 0]  # (B, T)
        for t in range(1, em.shape[1]):
            nxt = torch.logsumexp(alpha[:, :, None] + self.trans + em[:, t, None, :], dim=1)
            alpha = torch.where(mask[:, t, None], nxt, alpha)
        return torch.where(mask[:, 0], torch.logsumexp(alpha + self.end, dim=1), 0.0)

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best tag sequence per example, of its masked length."""
        em = emissions.float()
        B, L, T = em.shape
        score = self.start + em[:, 0]
        back = []
        for t in range(1, L):
            cand = score[:, :, None] + self.trans  # (B, T_prev, T)
            best, idx = cand.max(1)
            nxt = best + em[:, t]
            score = torch.where(mask[:, t, None], nxt, score)
            back.append(torch.where(mask[:, t, None], idx, torch.arange(T, device=em.device)))
        score = score + self.end
        lengths = mask.long().sum(1).tolist()
        last = score.argmax(1).tolist()
        out = []
        for b in range(B):
            path = [last[b]]
            for t in range(lengths[b] - 1, 0, -1):
                path.append(int(back[t - 1][b, path[-1]]))
            out.append(path[::-1][: lengths[b]] if lengths[b] else [])
        return out
