"""Multilabel categorical cross-entropy for GlobalPointer scores, and the GP divergence.

For each (example, type) with valid cells A, gold cells P and N = A - P:

    L = log(1 + sum_N exp(s)) + log(1 + sum_P exp(-s))

``reduction="mean"`` (default) sums over types and averages over examples; ``"none"`` returns
(B, C). All arithmetic is in fp32 or wider, whatever the score dtype; cells at -inf (impossible
spans) are excluded with ``torch.where`` before any arithmetic, so no inf - inf reaches a gradient.
"""

from __future__ import annotations

import torch

NEG_INF = float("-inf")


def _work(x: torch.Tensor) -> torch.Tensor:
    """Upcast fp16/bf16 to fp32 (logsumexp over thousands of cells); keep fp64 as is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _reduce(per_type: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_type  # (B, C)
    if reduction == "sum":
        return per_type.sum()
    if reduction == "mean":
        return per_type.sum(-1).mean()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _lse1(x: torch.Tensor) -> torch.Tensor:
    """log(1 + sum exp(x)) over the last dim; -inf entries contribute nothing."""
    return torch.logaddexp(torch.logsumexp(x, dim=-1), x.new_zeros(()))


def mcce_dense(scores: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"
               ) -> torch.Tensor:
    """Dense form. scores (B, C, L, L) with -inf at impossible cells; labels (B, C, L, L) 0/1.

    Meant for small inputs and tests: training builds no dense labels (see :func:`mcce_sparse`).
    """
    s = _work(scores).flatten(2)  # (B, C, L*L)
    pos = labels.flatten(2).bool()
    if bool((pos & torch.isneginf(s)).any()):
        raise ValueError("a gold label sits on a masked cell (start > end, padding or special)")
    neg_term = _lse1(torch.where(pos, NEG_INF, s))
    pos_term = _lse1(torch.where(pos, -torch.where(pos, s, 0.0), NEG_INF))
    return _reduce(neg_term + pos_term, reduction)


def _scatter_lse1(x: torch.Tensor, group: torch.Tensor, size: int) -> torch.Tensor:
    """log(1 + sum_{k: group[k] = g} exp(x[k])) for every g in range(size). x, group: (P,)."""
    m = x.new_zeros(size).scatter_reduce(
        0, group, x.detach(), reduce="amax", include_self=True)  # >= 0: includes the "1 +"
    total = torch.exp(-m).index_add(0, group, torch.exp(x - m[group]))
    return torch.log(total) + m


def mcce_sparse(scores: torch.Tensor, positives: torch.Tensor, reduction: str = "mean"
                ) -> torch.Tensor:
    """Sparse form: no label tensor. positives (P, 4) long rows ``(b, c, i, j)`` of gold cells.

    The published sparse form derives the negative term as a + log(1 - exp(b - a)) and clips
    the inner term at an epsilon; once gold scores dominate (late in training) that clip is active
    and biases both value and gradient. Here the gold cells are removed from a copy of the scores
    instead (one score-sized copy, no labels), which is exact: equal to :func:`mcce_dense`.
    """
    B, C, L, _ = scores.shape
    s = _work(scores)
    if positives.numel() == 0:
        positives = positives.reshape(0, 4)
    b, c, i, j = positives.long().unbind(-1)
    gold = s[b, c, i, j]  # (P,)
    if bool(torch.isneginf(gold).any()):
        k = int(torch.isneginf(gold).nonzero()[0])
        raise ValueError(f"gold cell {positives[k].tolist()} (b, c, i, j) is masked "
                         "(start > end, padding or special token)")
    without_gold = s.index_put((b, c, i, j), s.new_tensor(NEG_INF))
    neg_term = _lse1(without_gold.flatten(2))  # (B, C)
    pos_term = _scatter_lse1(-gold, b * C + c, B * C).view(B, C)
    return _reduce(neg_term + pos_term, reduction)


def mcce_soft(scores: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
              eps: float = 1e-6) -> torch.Tensor:
    """Soft-label form, targets (B, C, L, L) in [0, 1] (label smoothing, mixup, distillation):

        L = log(1 + sum t exp(-s)) + log(1 + sum (1 - t) exp(s))   over valid cells.

    Its optimum is t = sigmoid(2 s). Targets below ``eps`` / above ``1 - eps`` count as exactly
    0 / 1, so masked cells stay closed.
    """
    s = _work(scores)
    t = _work(targets)
    valid = ~torch.isneginf(s)
    s = torch.where(valid, s, 0.0)
    t = torch.where(t < eps, 0.0, torch.where(t > 1 - eps, 1.0, t))
    has_t, has_1mt = valid & (t > 0), valid & (t < 1)
    pos = torch.where(has_t, torch.log(torch.where(has_t, t, 1.0)) - s, NEG_INF)
    neg = torch.where(has_1mt, torch.log(torch.where(has_1mt, 1 - t, 1.0)) + s, NEG_INF)
    return _reduce(_lse1(pos.flatten(2)) + _lse1(neg.flatten(2)), reduction)


def gp_divergence(s: torch.Tensor, t: torch.Tensor, reduction: str = "mean",
                  norm: str = "sum") -> torch.Tensor:
    """D(s, t) = sum_cells (sigmoid(s) - sigmoid(t)) * (s - t), over cells valid in both.

    The symmetric binary KL per cell: >= 0, symmetric, zero iff s == t on valid cells. For
    R-Drop (two dropout passes) and virtual adversarial training on GlobalPointer outputs.

    ``norm="sum"`` is the published form: summed over the cells of each (text, type), so it grows
    with L^2 while the loss grows with log L. ``norm="mean"`` divides each (text, type) sum by the
    number of its valid cells, so its weight is the same for short and long texts.
    """
    if norm not in ("sum", "mean"):
        raise ValueError(f"norm must be 'sum' or 'mean', got {norm!r}")
    s, t = _work(s), _work(t)
    valid = ~(torch.isneginf(s) | torch.isneginf(t))
    s, t = torch.where(valid, s, 0.0), torch.where(valid, t, 0.0)
    per_type = ((torch.sigmoid(s) - torch.sigmoid(t)) * (s - t)).flatten(2).sum(-1)  # (B, C)
    if norm == "mean":
        per_type = per_type / valid.flatten(2).sum(-1).clamp(min=1)
    return _reduce(per_type, reduction)


def flood(loss: torch.Tensor, level: float) -> torch.Tensor:
    """Flooding (Ishida et al., ICML 2020): |L - b| + b. Equal to L above the flood level b;
    below it the gradient flips sign, so the training loss hovers at b instead of reaching 0."""
    return (loss - level).abs() + level
