"""Joint entity and relation extraction with GlobalPointer (GPLinker).

The score of a triple (subject tokens s_h..s_t, relation p, object tokens o_h..o_t) factorises as

    S = S_ent(s_h, s_t) + S_ent(o_h, o_t) + S_head(s_h, o_h | p) + S_tail(s_t, o_t | p)

Three heads over one encoder, each a GlobalPointer (``gp``) or Efficient GlobalPointer (``egp``):

* ``entities`` (B, C, L, L): typed entity spans, as in NER (RoPE, start <= end);
* ``heads`` (B, R, L, L): cell (i, k) of channel p links a subject starting at token i to an
  object starting at token k;
* ``tails`` (B, R, L, L): the same for the subject's and object's last tokens.

The link heads score the full square (an object may come before its subject) and have no RoPE,
as published. Training: the sparse multilabel loss on each head, summed. Decoding keeps a
triple when all four parts score above the threshold; its score is the smallest of the four, so
``score > threshold`` means kept and ``prob = sigmoid(2 * score)`` as for entities.
Targets: ``positives`` (P, 4) rows (b, c, i, j) as for NER, ``head_links`` and ``tail_links``
(Q, 4) rows (b, p, i, k), duplicates removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from gpner.contracts import Outputs, Triple, WindowSpans
from gpner.tasks import head_info
from gpner.tasks.decoding import as_array, decode_rows
from gpner.text.alignment import TokenSpan
from gpner.text.windows import spans_from_rows

if TYPE_CHECKING:
    import torch
    from torch import nn

PAIR_BUDGET = 1 << 22  # link scores gathered at once when pairing candidates (R * subjects * E)
CANDIDATES_PER_TOKEN = 2  # entity candidates paired per window token, the best scoring


class RelationTask:
    """Joint entity and relation extraction (GPLinker; the :class:`~gpner.contracts.Task`
    contract): an entity head and two link heads, each a GlobalPointer or Efficient
    GlobalPointer, decoded into spans and the triples between them."""

    name = "relations"
    output = "entities"
    span_head = True
    has_relations = True

    def __init__(self, labels: Sequence[str], head: str = "egp", head_size: int = 64,
                 relations: Sequence[str] = ()):
        self.labels, self.relations = list(labels), list(relations)
        self.head, self.head_size = head, head_size
        self.info = head_info(head)
        if self.info.kind != "span":
            raise ValueError(f"relation extraction needs a span head (gp or egp), got {head!r}")
        if not self.relations:
            raise ValueError("relation extraction needs at least one relation label")

    def build_heads(self, hidden: int) -> dict[str, "nn.Module"]:
        cls, d, R = self.info.cls(), self.head_size, len(self.relations)
        return {"entities": cls(hidden, len(self.labels), d),
                "heads": cls(hidden, R, d, rope=False, full_square=True),
                "tails": cls(hidden, R, d, rope=False, full_square=True)}

    # ------------------------------------------------------------ training

    def targets(self, spans: Sequence[Sequence[TokenSpan]], batch: Mapping[str, Any],
                relations: Sequence[Sequence[tuple[int, int, int]]] = ()
                ) -> dict[str, "torch.Tensor"]:
        """Per example: gold spans (window tokens, label ids) and relations (index of the
        subject in its spans, index of the object, relation id) -> the three heads' gold cells."""
        import torch

        ents, heads, tails = [], set(), set()
        for b, ex in enumerate(spans):
            ents += [(b, sp.label, sp.start, sp.end - 1) for sp in ex]
            for h, t, p in (relations[b] if relations else ()):
                s, o = ex[h], ex[t]
                heads.add((b, p, s.start, o.start))
                tails.add((b, p, s.end - 1, o.end - 1))

        def rows(x: Any) -> "torch.Tensor":
            return torch.tensor(sorted(x), dtype=torch.long).reshape(-1, 4)

        return {"positives": rows(set(ents)), "head_links": rows(heads), "tail_links": rows(tails)}

    def loss(self, outputs: Outputs, batch: dict[str, "torch.Tensor"]) -> "torch.Tensor":
        from gpner.model.losses import mcce_sparse

        return (mcce_sparse(outputs["entities"], batch["positives"])
                + mcce_sparse(outputs["heads"], batch["head_links"])
                + mcce_sparse(outputs["tails"], batch["tail_links"]))

    def divergence(self, a: Outputs, b: Outputs, norm: str = "sum") -> "torch.Tensor":
        """The GP divergence summed over the three heads (R-Drop, VAT)."""
        from gpner.model.losses import gp_divergence

        return (gp_divergence(a["entities"], b["entities"], norm=norm)
                + gp_divergence(a["heads"], b["heads"], norm=norm)
                + gp_divergence(a["tails"], b["tails"], norm=norm))

    # ------------------------------------------------------------ prediction

    def decode(self, outputs: Outputs, batch: Mapping[str, Any], threshold: float = 0.0,
               max_width: int | None = None) -> list[WindowSpans]:
        """Per window: nested entity candidates and the triples linking them (window
        tokens)."""
        heads, tails = outputs["heads"], outputs["tails"]
        out = []
        for b, (rows, v) in enumerate(decode_rows(outputs["entities"], threshold, max_width)):
            out.append(WindowSpans(rows, v, link(spans_from_rows(rows, v), heads[b], tails[b],
                                                 threshold)))
        return out


def link(spans: Sequence[TokenSpan], heads: Any, tails: Any, threshold: float = 0.0
         ) -> list[Triple]:
    """The triples of one window: every ordered pair of candidate entity positions (a span may
    be both subject and object, and its own object) and relation p with head-link and tail-link
    scores above ``threshold``. heads, tails: (R, L, L) arrays or tensors. Sorted by position.

    At most 2L candidate positions (the best scoring) are paired: a trained model proposes far
    fewer, and an untrained one would otherwise cost R * E^2 for thousands of E."""
    best: dict[tuple[int, int], float] = {}
    for sp in spans:  # an entity's part of the score: its best label at that position
        key = (sp.start, sp.end)
        best[key] = max(best.get(key, float("-inf")), sp.score)
    if not best:
        return []
    pos = sorted(best)
    cap = CANDIDATES_PER_TOKEN * heads.shape[-1]
    if len(pos) > cap:  # a barely trained model: pair its best 2L candidates, not E^2 of them
        pos = sorted(sorted(pos, key=lambda k: (-best[k], k))[:cap])
    starts = np.array([p[0] for p in pos], dtype=np.int64)
    lasts = np.array([p[1] - 1 for p in pos], dtype=np.int64)
    ent = np.array([best[p] for p in pos], dtype=np.float64)
    E, R = len(pos), heads.shape[0]
    chunk = max(1, PAIR_BUDGET // max(1, R * E))
    out: list[Triple] = []
    for a in range(0, E, chunk):
        sub = slice(a, min(E, a + chunk))
        hs = _gather(heads, starts[sub], starts)  # (R, n, E): head link of subject x, object y
        ts = _gather(tails, lasts[sub], lasts)
        keep = (hs > threshold) & (ts > threshold)
        for p, x, y in np.argwhere(keep).tolist():
            score = min(ent[a + x], ent[y], hs[p, x, y], ts[p, x, y])
            (ss, se), (os_, oe) = pos[a + x], pos[y]
            out.append(Triple(ss, se, os_, oe, p, float(score)))
    out.sort()
    return out


def _gather(scores: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """scores[:, rows][:, :, cols] as a float64 array (R, len(rows), len(cols)); on the scores'
    own device for a tensor, so only the gathered cells leave a GPU."""
    if isinstance(scores, np.ndarray):
        return scores[:, rows[:, None], cols[None, :]].astype(np.float64)
    import torch

    r = torch.as_tensor(rows, device=scores.device)
    c = torch.as_tensor(cols, device=scores.device)
    return as_array(scores[:, r[:, None], c[None, :]]).astype(np.float64)
