"""GlobalPointer heads: every (start, end) span of every entity type scored in one step.

Shapes: B batch, L tokens, D encoder width, C entity types, d head size, T tags.
Cells that can never be an entity (start > end, a padding or special token as start or end) are
set to ``-inf``. Unlike the 1e12 constants of some ports, ``-inf`` survives fp16/bf16, and every
loss and divergence here excludes those cells before doing arithmetic with them.

``full_square=True`` keeps the cells with start > end: GPLinker's head/tail link matrices score
every (i, j) pair, because an object may come before its subject.

The BIO baselines :class:`SoftmaxTagger` and :class:`CRFTagger` live here too: same encoder,
same constructor, named outputs instead of a score square.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gpner.model.crf import CRF


def rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0
         ) -> torch.Tensor:
    """Rotary position embedding along dim 1 of ``x`` (B, L, ..., d), pairs (2k, 2k+1) rotated.

    theta_k = base^(-2k/d), angle = position * theta_k, so rotated q_i . k_j depends on j - i.
    """
    return rotate(x, *rope_tables(x, positions, base))


def rope_tables(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0,
                d: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin (1 or B, L, 1..., d) for :func:`rotate` of tensors shaped like ``x``
    (B, L, ..., d): members 2k and 2k+1 of a pair both at pair k's angle, the sin negative on
    the first. Computed once, they rotate q and k alike. ``d``: the head size as a Python int
    (the heads give it), so an exported graph holds theta as a constant instead of computing it
    from the input's shape at every call."""
    L = x.shape[1]
    d = x.shape[-1] if d is None else d
    if d % 2:
        raise ValueError(f"RoPE needs an even head size, got {d}")
    if positions is None:
        positions = torch.arange(L, device=x.device)
    # at least fp32 even under autocast: positions * theta in fp16 loses the low bits
    work = torch.promote_types(x.dtype, torch.float32)
    theta = base ** (-torch.arange(0, d, 2, device=x.device, dtype=work) / d)
    angle = positions.to(work)[..., None] * theta.repeat_interleave(2)  # (L, d) or (B, L, d)
    if angle.dim() == 2:
        angle = angle[None]
    for _ in range(x.dim() - 3):  # static unsqueezes, not a reshape to a computed shape
        angle = angle.unsqueeze(-2)
    sign = torch.arange(d, device=x.device) % 2 * 2 - 1  # -1, 1, -1, 1, ...
    return angle.cos(), angle.sin() * sign.to(work)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x`` (B, L, ..., d) rotated by :func:`rope_tables`: (x1, x2) of each pair becomes
    (x1 cos - x2 sin, x2 cos + x1 sin), written as x * cos + pair-swapped x * signed sin (the
    same floating-point operations, and a few graph nodes instead of a stack and a flatten)."""
    swap = [k ^ 1 for k in range(int(x.shape[-1]))]  # 1, 0, 3, 2, ...: a constant index
    xw = x.to(cos.dtype)
    return (xw * cos + xw[..., swap] * sin).to(x.dtype)


def span_mask(mask: torch.Tensor, full_square: bool = False) -> torch.Tensor:
    """(B, L) token mask -> (B, 1, L, L) bool: both ends valid tokens and, unless
    ``full_square``, start <= end."""
    cells = mask[:, :, None] & mask[:, None, :]
    if not full_square:
        L = mask.shape[1]
        cells = cells & torch.ones(L, L, dtype=torch.bool, device=mask.device).triu()
    return cells[:, None]


def mask_scores(scores: torch.Tensor, mask: torch.Tensor | None, full_square: bool = False
                ) -> torch.Tensor:
    """Set impossible cells of (B, C, L, L) scores to -inf; ``mask`` is (B, L) bool or None."""
    if mask is None:
        mask = torch.ones(scores.shape[0], scores.shape[-1], dtype=torch.bool,
                          device=scores.device)
    return scores.masked_fill(~span_mask(mask.bool(), full_square), float("-inf"))


class GlobalPointer(nn.Module):
    """s_c(i, j) = q_{i,c} . k_{j,c} / sqrt(d), with per-type projections and RoPE.

    Parameters: D * 2 * d * C weights + 2 * d * C biases.
    """

    def __init__(self, hidden: int, num_types: int, head_size: int = 64, rope: bool = True,
                 full_square: bool = False):
        super().__init__()
        self.num_types, self.head_size, self.use_rope = num_types, head_size, rope
        self.full_square = full_square
        self.proj = nn.Linear(hidden, num_types * 2 * head_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (B, L, D), mask (B, L) bool of tokens that may start/end a span
        -> scores (B, C, L, L)."""
        B, L, _ = hidden.shape
        qk = self.proj(hidden).view(B, L, self.num_types, 2, self.head_size)
        if self.use_rope:  # q and k rotated together: one set of angles (half the graph)
            qk = rotate(qk, *rope_tables(qk, d=self.head_size))
        q, k = qk[..., 0, :], qk[..., 1, :]  # (B, L, C, d)
        scores = torch.einsum("bmcd,bncd->bcmn", q, k) / math.sqrt(self.head_size)
        return mask_scores(scores, mask, self.full_square)


class EfficientGlobalPointer(nn.Module):
    """Efficient GlobalPointer: one shared q/k projection plus per-type start and end terms.

    s_c(i, j) = q_i . k_j / sqrt(d) + w_c . [q_i; k_i; q_j; k_j], where the per-type term reads the
    pre-RoPE features and splits into a start term (from i) and an end term (from j).
    Each added type costs 4d parameters.
    """

    def __init__(self, hidden: int, num_types: int, head_size: int = 64, rope: bool = True,
                 full_square: bool = False):
        super().__init__()
        self.num_types, self.head_size, self.use_rope = num_types, head_size, rope
        self.full_square = full_square
        self.proj = nn.Linear(hidden, 2 * head_size)
        # row 2c is w_c's start half (applied to [q_i; k_i]), row 2c+1 its end half
        self.type_terms = nn.Linear(2 * head_size, 2 * num_types, bias=False)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (B, L, D), mask (B, L) bool -> scores (B, C, L, L)."""
        feats = self.proj(hidden)  # (B, L, 2d) = [q; k], pre-RoPE
        q, k = feats[..., : self.head_size], feats[..., self.head_size:]
        if self.use_rope:  # one set of angles rotates both
            tables = rope_tables(q, d=self.head_size)
            q, k = rotate(q, *tables), rotate(k, *tables)
        shared = q @ k.transpose(1, 2) / math.sqrt(self.head_size)  # (B, L, L)
        terms = self.type_terms(feats).transpose(1, 2)  # (B, 2C, L)
        start, end = terms[:, 0::2], terms[:, 1::2]  # (B, C, L) each
        scores = shared[:, None] + start[:, :, :, None] + end[:, :, None, :]
        return mask_scores(scores, mask, self.full_square)


class SoftmaxTagger(nn.Module):
    """BIO tags per token, scored independently: tag 0 = O, 1 + 2c = B-c, 2 + 2c = I-c.

    forward -> ``{"emissions": (B, L, T)}``, T = 1 + 2C.
    """

    def __init__(self, hidden: int, num_types: int, head_size: int | None = None,
                 full_square: bool = False):
        super().__init__()
        if full_square:
            raise ValueError("a tag head labels tokens: it has no span square")
        self.num_types = num_types
        self.proj = nn.Linear(hidden, 1 + 2 * num_types)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        return {"emissions": self.proj(hidden)}


class CRFTagger(SoftmaxTagger):
    """BIO tags with a linear-chain CRF over them.

    forward -> ``{"emissions": (B, L, T), "start": (T,), "end": (T,), "transitions": (T, T)}``:
    the CRF's parameters are outputs too, so the loss and Viterbi decoding are pure functions of
    the outputs, whichever runtime produced them.
    """

    def __init__(self, hidden: int, num_types: int, head_size: int | None = None,
                 full_square: bool = False):
        super().__init__(hidden, num_types, head_size, full_square)
        self.crf = CRF(1 + 2 * num_types)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        return {"emissions": self.proj(hidden), "start": self.crf.start, "end": self.crf.end,
                "transitions": self.crf.trans}
