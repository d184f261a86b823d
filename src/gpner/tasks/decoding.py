"""From model outputs to spans: pure functions, whichever runtime produced the outputs.

* :func:`decode_rows`: (B, C, L, L) span scores -> per example, the candidates (score >
  threshold) as arrays; :func:`decode` makes them spans, nested or flat.
* :func:`select_flat_rows`: the flat subset: highest score first, each kept span removing the
  candidates that overlap it, whatever their type, so the result never overlaps; ties go to
  the earlier start, then the earlier end, then the lower label id, whatever the input order.
* :func:`decode_tags`: (B, L, T) BIO emissions -> spans, by argmax or CRF Viterbi.
* :func:`to_entities`: token spans -> records with exact character offsets.

Outputs may be NumPy arrays (ONNX Runtime; this module never imports torch) or torch tensors
(span scores are thresholded where they live, so only the candidates leave a GPU). Merging a
text's windows is :mod:`gpner.text.windows`'s.

Spans are :class:`~gpner.text.alignment.TokenSpan` (end exclusive, label id). A span's
probability is sigmoid(2 * score): the soft-label loss is optimal at t = sigmoid(2s), so
threshold 0 is p = 0.5.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from gpner.data.tagging import tags_to_spans
from gpner.records import Entity
from gpner.text.alignment import TokenSpan
from gpner.text.tokenization import Encoding, PackedEncoding
from gpner.text.windows import spans_from_rows


def prob(score: float) -> float:
    """sigmoid(2 * score), safe for large |score|."""
    x = 2.0 * score
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def decode(scores: Any, threshold: float = 0.0, flat: bool = False,
           max_width: int | None = None) -> list[list[TokenSpan]]:
    """scores (B, C, L, L), array or tensor -> per example, spans sorted by (start, end, label).

    ``max_width`` (tokens) drops wider candidates: a model trained on short texts invents wide
    spans on long ones, and the widest gold span is a good cap.
    """
    return [select_flat_rows(rows, v) if flat else spans_from_rows(rows, v)
            for rows, v in decode_rows(scores, threshold, max_width)]


def decode_rows(scores: Any, threshold: float = 0.0, max_width: int | None = None
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """scores (B, C, L, L), array or tensor -> per example, the candidates as arrays: rows
    (K, 3) int64 of (label, start, end exclusive) and scores (K,) float32, in cell order. What
    :func:`decode` makes spans of; the predictor merges these without an object per candidate
    (a barely trained model has thousands per text)."""
    B = scores.shape[0]
    if not isinstance(scores, np.ndarray) and scores.device.type == "cpu" and \
            str(scores.dtype) in ("torch.float32", "torch.float64"):
        scores = scores.detach().numpy()  # no copy; NumPy's few calls beat torch's on small tensors
    if isinstance(scores, np.ndarray):
        idx, vals = _candidates(scores, threshold, max_width)
    else:
        idx, vals = _candidates_torch(scores, threshold, max_width)
    idx[:, 3] += 1  # cell (i, j) is the span [i, j + 1)
    bounds = np.searchsorted(idx[:, 0], np.arange(B + 1)) if len(idx) else np.zeros(B + 1, int)
    return [(idx[bounds[b]:bounds[b + 1], 1:], vals[bounds[b]:bounds[b + 1]])
            for b in range(B)]


def _candidates(scores: np.ndarray, threshold: float, max_width: int | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Cells above the threshold: rows (K, 4) of (b, c, i, j) in row-major order, scores (K,)."""
    # one pass over the (B, C, L, L) cells, the rest on the few candidates: the width rule is
    # applied to them, not as an (L, L) mask over every cell (-inf cells are never candidates)
    flat = np.flatnonzero(scores > threshold)
    vals = scores.reshape(-1)[flat]
    idx = np.stack(np.unravel_index(flat, scores.shape), axis=1).astype(np.int64, copy=False)
    if max_width is not None:
        keep = idx[:, 3] - idx[:, 2] < max_width
        idx, vals = idx[keep], vals[keep]
    return idx, vals.astype(np.float32, copy=False)


def _candidates_torch(scores: Any, threshold: float, max_width: int | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    import torch

    cand = scores > threshold
    if max_width is not None:
        r = torch.arange(scores.shape[-1], device=scores.device)
        cand &= ((r[None, :] - r[:, None]) < max_width)
    return cand.nonzero().cpu().numpy(), scores[cand].float().cpu().numpy()


def as_array(x: Any) -> np.ndarray:
    """A NumPy array for an array or a torch tensor (floats as float32)."""
    if isinstance(x, np.ndarray):
        return x
    x = x.detach().cpu()
    return (x.float() if x.is_floating_point() else x).numpy()


def select_flat(spans: Sequence[TokenSpan]) -> list[TokenSpan]:
    """The flat subset of candidate spans: highest score first, overlapping ones removed."""
    if not spans:
        return []
    rows = np.array([(s.label, s.start, s.end) for s in spans], dtype=np.int64)
    v = np.array([s.score for s in spans], dtype=np.float64)
    return select_flat_rows(rows, v)


def select_flat_rows(rows: np.ndarray, v: np.ndarray) -> list[TokenSpan]:
    """:func:`select_flat` on rows (K, 3) of (label, start, end) and scores (K,)."""
    if not len(rows):
        return []
    return spans_from_rows(*_greedy_flat(rows, v, int(rows[:, 2].max())))


def _greedy_flat(rows: np.ndarray, v: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """rows (K, 3) of (label, start, end); ties broken by position then label, so the result
    does not depend on scan order."""
    order = np.lexsort((rows[:, 0], rows[:, 2], rows[:, 1], -v))
    used = bytearray(L)
    free = L
    keep = []
    for k, (_, i, j) in zip(order.tolist(), rows[order].tolist(), strict=True):
        if 1 not in used[i:j]:
            used[i:j] = b"\x01" * (j - i)
            keep.append(k)
            free -= j - i
            if not free:  # every token taken: no later candidate can fit
                break
    keep_arr = np.array(keep, dtype=np.int64)
    return rows[keep_arr], v[keep_arr]


def pack_spannable(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spannable tokens moved to the left, for the tag heads (a tag sequence has no gaps):
    token positions ``order`` (B, L') and the prefix mask (B, L') of the packed sequences."""
    lengths = mask.sum(1)
    Lp = max(1, int(lengths.max()) if len(lengths) else 1)
    order = np.argsort(~mask, axis=1, kind="stable")[:, :Lp]
    return order, np.arange(Lp)[None] < lengths[:, None]


def viterbi(em: np.ndarray, mask: np.ndarray, start: np.ndarray, end: np.ndarray,
            trans: np.ndarray) -> list[list[int]]:
    """Best tag sequence per example, of its masked length: emissions (B, L, T), mask (B, L)
    a prefix, start/end (T,), trans (T, T) with trans[a, b] the score of a -> b."""
    B, L, T = em.shape
    score = start + em[:, 0]
    back = []
    for t in range(1, L):
        cand = score[:, :, None] + trans  # (B, previous tag, tag)
        idx = cand.argmax(1)
        m = mask[:, t, None]
        score = np.where(m, np.take_along_axis(cand, idx[:, None], 1)[:, 0] + em[:, t], score)
        back.append(np.where(m, idx, np.arange(T)))
    score = score + end
    lengths = mask.sum(1).tolist()
    last = score.argmax(1).tolist()
    out = []
    for b in range(B):
        path = [last[b]]
        for t in range(lengths[b] - 1, 0, -1):
            path.append(int(back[t - 1][b, path[-1]]))
        out.append(path[::-1][: lengths[b]] if lengths[b] else [])
    return out


def decode_tags(emissions: Any, mask: Any, crf: tuple[Any, Any, Any] | None = None
                ) -> list[list[TokenSpan]]:
    """emissions (B, L, T) over tags 0 = O, 1 + 2c = B-c, 2 + 2c = I-c; mask (B, L) spannable
    tokens; ``crf`` = (start, end, transitions) for Viterbi, None for the argmax of each token.

    A span's score is 0.5 * logit(p), p the mean probability of its chosen tags, so that its
    ``prob`` (sigmoid(2 * score)) is p, as for the span heads.
    """
    em, mask = as_array(emissions).astype(np.float64), as_array(mask).astype(bool)
    order, pmask = pack_spannable(mask)
    T = em.shape[-1]
    pem = np.take_along_axis(em, order[..., None], axis=1)  # (B, L', T)
    e = np.exp(pem - pem.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    if crf is not None:
        paths = viterbi(pem, pmask, *(as_array(x).astype(np.float64) for x in crf))
    else:
        paths = [row[: int(n)]
                 for row, n in zip(pem.argmax(-1).tolist(), pmask.sum(1), strict=True)]
    names = ["O"] + [f"{p}-{c}" for c in range((T - 1) // 2) for p in "BI"]
    out = []
    for b, path in enumerate(paths):
        spans = []
        for i, j, lab, _ in tags_to_spans([names[t] for t in path], "bio"):
            p = float(probs[b, np.arange(i, j), np.array(path[i:j])].mean())
            p = min(max(p, 1e-6), 1 - 1e-6)
            score = 0.5 * math.log(p / (1 - p))
            spans.append(TokenSpan(int(order[b, i]), int(order[b, j - 1]) + 1, int(lab), score))
        out.append(spans)
    return out


def to_entities(text: str, encoding: Encoding | PackedEncoding, spans: Sequence[TokenSpan],
                labels: Sequence[str],
                prob_of: Callable[[int, float], float] | None = None) -> list[Entity]:
    """Token spans -> entity records with exact character offsets into ``text``; ``prob_of``
    (label id, score) -> prob: a calibrated map (:mod:`gpner.calibration`), else
    sigmoid(2 * score)."""
    offsets = encoding.offsets  # read directly: an Alignment's maps would cost a long text dear
    out: list[Entity] = []
    for sp in spans:
        start, end = offsets[sp.start][0], offsets[sp.end - 1][1]
        p = prob_of(int(sp.label), sp.score) if prob_of is not None else prob(sp.score)
        out.append({"start": start, "end": end, "label": labels[int(sp.label)],
                    "score": round(sp.score, 4), "prob": round(p, 4),
                    "text": text[start:end]})
    return out
