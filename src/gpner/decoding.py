"""From (B, C, L, L) scores to spans: nested or flat, with a score and a probability each.

* nested: every valid cell with score > threshold.
* flat: the same candidates, then highest score first, each kept span removing the candidates
  that overlap it (whatever their type), so the result never overlaps.

A span's probability is sigmoid(2 * score): the soft-label loss is optimal at t = sigmoid(2s),
so threshold 0 means p = 0.5.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch

from gpner.alignment import Alignment
from gpner.records import Entity
from gpner.tokenization import Encoding


class Span(NamedTuple):
    type: int
    start: int  # first token
    end: int  # last token, inclusive
    score: float


def prob(score: float) -> float:
    """sigmoid(2 * score), safe for large |score|."""
    x = 2.0 * score
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def decode(scores: torch.Tensor, threshold: float = 0.0, flat: bool = False,
           max_width: int | None = None) -> list[list[Span]]:
    """scores (B, C, L, L) -> per example, spans sorted by (start, end, type).

    ``max_width`` (tokens) drops wider candidates: a model trained on short texts invents wide
    spans on long ones, and the widest gold span is a good cap.
    """
    B, C, L, _ = scores.shape
    cand = scores > threshold  # -inf cells are never candidates
    if max_width is not None:
        r = torch.arange(L, device=scores.device)
        cand &= ((r[None, :] - r[:, None]) < max_width)
    idx = cand.nonzero()  # (K, 4) rows b, c, i, j in row-major order: grouped by b
    vals = scores[cand].float().cpu().numpy()
    idx = idx.cpu().numpy()
    out: list[list[Span]] = [[] for _ in range(B)]
    bounds = np.searchsorted(idx[:, 0], np.arange(B + 1)) if len(idx) else np.zeros(B + 1, int)
    for b in range(B):
        rows, v = idx[bounds[b]:bounds[b + 1], 1:], vals[bounds[b]:bounds[b + 1]]
        if flat and len(rows):
            rows, v = _greedy_flat(rows, v, L)
        spans = [Span(int(c), int(i), int(j), float(s)) for (c, i, j), s in zip(rows, v)]
        spans.sort(key=lambda s: (s.start, s.end, s.type))
        out[b] = spans
    return out


def select_flat(spans: Sequence[Span]) -> list[Span]:
    """The flat subset of candidate spans: highest score first, overlapping ones removed."""
    if not spans:
        return []
    rows = np.array([(s.type, s.start, s.end) for s in spans], dtype=int)
    v = np.array([s.score for s in spans], dtype=float)
    rows, v = _greedy_flat(rows, v, int(rows[:, 2].max()) + 1)
    kept = [Span(int(c), int(i), int(j), float(s)) for (c, i, j), s in zip(rows, v)]
    return sorted(kept, key=lambda s: (s.start, s.end, s.type))


def _greedy_flat(rows: np.ndarray, v: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    # ties broken by position then type, so the result does not depend on scan order
    order = np.lexsort((rows[:, 0], rows[:, 2], rows[:, 1], -v))
    used = np.zeros(L, dtype=bool)
    keep = []
    for k in order:
        _, i, j = rows[k]
        if not used[i:j + 1].any():
            used[i:j + 1] = True
            keep.append(k)
    keep_arr = np.array(keep, dtype=int)
    return rows[keep_arr], v[keep_arr]


def to_entities(text: str, encoding: Encoding, spans: Sequence[Span],
                labels: Sequence[str]) -> list[Entity]:
    """Token spans -> entity records with exact character offsets into ``text``."""
    al = Alignment(encoding)
    out: list[Entity] = []
    for sp in spans:
        start, end = al.token_to_char(sp.start, sp.end)
        out.append({"start": start, "end": end, "label": labels[sp.type],
                    "score": round(sp.score, 4), "prob": round(prob(sp.score), 4),
                    "text": text[start:end]})
    return out
